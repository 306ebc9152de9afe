/*
 * be-kernel.c -- the one get-a-kernel flow, for every backend:
 *
 *   target -> key -> memory cache -> generate the source -> hash of the
 *   source -> disk cache -> compile -> seal / store -> load -> install ->
 *   memory cache
 *
 * and the kernel key.  On disk a kernel is keyed by the full key and a
 * hash of its generated source, so a changed code generator never reuses
 * a stale kernel of the same formula (generating the source takes well
 * under a millisecond, and only happens on a memory-cache miss).  The
 * backend only answers questions (target, source, compile, load); the
 * cache (be-cache.c) only stores.
 *
 * Compiling works in the cache directory, or in a private temporary
 * directory removed afterwards when there is no disk cache.  Two processes
 * compiling the same kernel both succeed: each loads its own temporary
 * file and the last rename wins.
 */
#define _GNU_SOURCE
#include "be.h"
#include "rk-config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#include <sys/utsname.h>

/* ---- the host CPU ---------------------------------------------------------
 * Kernels are compiled for the machine that compiles them (-march=native):
 * a cache shared by machines of different CPUs (a home directory on NFS)
 * must never hand one a kernel built for another.  The identity is the
 * vendor, family / model / stepping and the feature words of cpuid leaves
 * 1 (ecx, edx), 7 (ebx, ecx, edx) and 0x80000001 (ecx, edx) on x86; the
 * machine name and the hardware capability words elsewhere. */

static char host_cpu[256];
static char host_override[256];
static int host_overridden;

static void host_cpu_read(char *buf, size_t size) {
  struct utsname u;
  const char *m = uname(&u) == 0 ? u.machine : "?";
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0, max = __get_cpuid_max(0, NULL);
  char vendor[13] = "";
  if (max >= 1) {
    __cpuid(0, a, b, c, d);
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
  }
  unsigned sig = 0, c1 = 0, d1 = 0, b7 = 0, c7 = 0, d7 = 0, ce = 0, de = 0;
  if (max >= 1)
    __cpuid(1, sig, b, c1, d1);
  if (max >= 7)
    __cpuid_count(7, 0, a, b7, c7, d7);
  if (__get_cpuid(0x80000001u, &a, &b, &ce, &de) == 0)
    ce = de = 0;
  /* leaf 1 ebx holds the APIC id (differs between cores): not used */
  snprintf(buf, size, "%s %s %08x %08x.%08x %08x.%08x.%08x %08x.%08x", m,
           vendor, sig, c1, d1, b7, c7, d7, ce, de);
#elif defined(__linux__) && defined(AT_HWCAP)
  unsigned long h1 = getauxval(AT_HWCAP), h2 = 0;
#ifdef AT_HWCAP2
  h2 = getauxval(AT_HWCAP2);
#endif
  snprintf(buf, size, "%s hwcap %lx.%lx", m, h1, h2);
#else
  snprintf(buf, size, "%s", m);
#endif
  for (char *p = buf; *p; p++) /* one printable line */
    if (*p < 32 || *p > 126 || *p == ';')
      *p = '?';
}

const char *rk_host_cpu(void) {
  if (host_overridden)
    return host_override;
  if (!host_cpu[0])
    host_cpu_read(host_cpu, sizeof host_cpu);
  return host_cpu;
}

void rk_host_cpu_override(const char *s) {
  host_overridden = s != NULL;
  snprintf(host_override, sizeof host_override, "%s", s ? s : "");
  for (char *p = host_override; *p; p++)
    if (*p < 32 || *p > 126 || *p == ';')
      *p = '?';
}

/* ---- the table of backends: one row per backend ---------------------- */

static const rk_backend_i *const backends[] = {
    [RK_BACKEND_CPU] = &rk_backend_cpu,
    [RK_BACKEND_GPU] = &rk_backend_cuda,
};

int rk_backend_count(void) {
  return (int)(sizeof backends / sizeof backends[0]);
}

const rk_backend_i *rk_backend_get(int id) {
  return id >= 0 && id < rk_backend_count() ? backends[id] : NULL;
}

/* ---- the key ------------------------------------------------------------- */

/* One line, printable characters only: the generated source embeds it in
   a string literal. */
void rk_kernel_key(const rk_backend_i *be, const rk_formula *f,
                   const rk_cg_config *c, const char *target, rk_buf *buf) {
  rk_buf_printf(buf, "rkeops %s; %s abi %d; scheme %d; ", RK_VERSION_STRING,
                be->name, be->abi, f->scheme);
  rk_cg_config_key(c, be->cfg_mask, buf);
  rk_buf_printf(buf, "; target %s; ", target ? target : "");
  rk_buf_puts(buf, f->canonical ? f->canonical : "");
  /* the declared variables, used or not: the canonical text names only
     those the formula uses, but every declared one is an argument of the
     generated kernel (a CUDA kernel launched with fewer arguments than it
     declares reads the missing ones from garbage) */
  rk_buf_printf(buf, "; vars %d", f->nvars);
  for (int v = 0; v < f->nvars; v++)
    rk_buf_printf(buf, "%c%d.%d", v ? ',' : ' ', f->vars[v].dim,
                  f->vars[v].cat);
}

/* ---- a refused cache directory ----------------------------------------------
 * A cache directory that cannot be used safely (world-writable, another
 * user's, read-only, on a full file system, under a missing HOME) is
 * refused, and the kernel is compiled in a private temporary directory
 * instead: the result is computed.  The refusal is said once per
 * directory: rk_cache_notice hands the message to the glue, which warns. */

static char refused_dir[1024];
static char notice[1400];

static void cache_refused(const char *dir, const char *why) {
  if (strcmp(dir, refused_dir) == 0)
    return; /* said already */
  snprintf(refused_dir, sizeof refused_dir, "%s", dir);
  snprintf(
      notice, sizeof notice,
      "%.1200s; compiling in a private temporary directory instead (kernels "
      "are not kept on disk)",
      why);
}

int rk_cache_notice(char *buf, size_t size) {
  if (!notice[0])
    return 0;
  if (buf && size)
    snprintf(buf, size, "%s", notice);
  notice[0] = '\0';
  return 1;
}

/* ---- the flow -------------------------------------------------------------
 */

typedef struct flow {
  const rk_backend_i *be;
  const rk_formula *f;
  const rk_options *o;
  const rk_cg_config *c;
  rk_target t;
  rk_buf key, mkey, src, dkey, path;
  const char *dir; /* the disk cache, or NULL */
} flow;

static void flow_free(flow *w) {
  rk_buf_free(&w->t.text);
  rk_buf_free(&w->key);
  rk_buf_free(&w->mkey);
  rk_buf_free(&w->src);
  rk_buf_free(&w->dkey);
  rk_buf_free(&w->path);
}

static void image_free(rk_image *img) {
  free(img->path);
  free(img->data);
  memset(img, 0, sizeof *img);
}

/* a kernel for the memory key, loaded from img; NULL with e set */
static rk_kernel *flow_load(flow *w, const rk_image *img, rk_error *e) {
  rk_kernel *k = calloc(1, sizeof *k);
  char *kc = strdup(w->mkey.s);
  if (!k || !kc) {
    free(k);
    free(kc);
    rk_err(e, RK_ENOMEM, -1, "out of memory");
    return NULL;
  }
  k->key = kc;
  k->be = w->be;
  if (w->be->load(w->o, w->f, w->c, img, w->key.s, k, e) != RK_OK) {
    free(kc);
    free(k);
    return NULL;
  }
  return k;
}

/* step: the disk cache.  NULL (and no error) when there is nothing usable */
static rk_kernel *flow_disk(flow *w) {
  rk_error e2;
  rk_err_clear(&e2);
  rk_cache_path(w->dir, w->dkey.s, w->t.ext, &w->path);
  if (w->path.oom)
    return NULL;
  struct stat st;
  if (lstat(w->path.s, &st) != 0)
    return NULL;
  rk_image img;
  memset(&img, 0, sizeof img);
  rk_kernel *k = NULL;
  const char *why = "invalid file (owner, mode, trailer or checksum)";
  if (w->be->image_kind == RK_IMAGE_FILE) {
    if (rk_cache_verify(w->path.s, w->dkey.s)) {
      img.path = w->path.s; /* borrowed */
      k = flow_load(w, &img, &e2);
      img.path = NULL;
      if (!k)
        why = e2.msg;
    }
  } else if (rk_cache_read_blob(w->path.s, w->dkey.s, &img.data, &img.size)) {
    k = flow_load(w, &img, &e2);
    if (!k)
      why = e2.msg;
    image_free(&img);
  }
  if (k) {
    rk_cache_count_disk_load();
    rk_say(w->o, "loaded the %s kernel from %s", w->be->name, w->path.s);
    return k;
  }
  rk_say(w->o, "ignoring the cache file %s: %s; rebuilding", w->path.s, why);
  if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))
    unlink(w->path.s);
  return NULL;
}

/* step: compile, then store (a sealed file renamed into place, or the
   image's bytes) and load */
static rk_kernel *flow_compile(flow *w, rk_error *e) {
  char tmpdir[4096] = "";
  const char *dir = w->dir;
  if (dir == NULL) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/rkeops-XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
      rk_err(e, RK_ECACHE, -1, "cannot create a temporary directory in %s: %s",
             t && *t ? t : "/tmp", strerror(errno));
      return NULL;
    }
    dir = tmpdir;
  }
  rk_image img;
  memset(&img, 0, sizeof img);
  rk_kernel *k = NULL;
  double t0 = rk_now();
  int rc = w->be->compile(w->o, &w->t, w->src.s, dir, &img, e);
  double secs = rk_now() - t0;
  rk_cache_count_compile();
  if (rc == RK_OK && w->be->image_kind == RK_IMAGE_FILE) {
    rc = rk_cache_seal(img.path, w->dkey.s, e);
    if (rc == RK_OK && !(k = flow_load(w, &img, e))) {
      char msg[sizeof e->msg];
      snprintf(msg, sizeof msg, "%s", e->msg);
      rk_err(e, RK_ECOMPILE, -1, "the compiled kernel %s cannot be used: %s",
             img.path, msg);
    }
    if (k && !tmpdir[0]) {
      rk_buf fpath;
      rk_buf_init(&fpath);
      rk_cache_path(dir, w->dkey.s, w->t.ext, &fpath);
      rk_error e2;
      rk_err_clear(&e2);
      if (fpath.oom || rk_cache_install(img.path, fpath.s, &e2) != RK_OK)
        rk_say(w->o, "%s (the kernel is used without being cached)",
               fpath.oom ? "out of memory" : e2.msg);
      else
        rk_say(w->o, "compiled %s in %.3f s", fpath.s, secs);
      rk_buf_free(&fpath);
    } else {
      unlink(img.path); /* loaded: the mapping outlives the name */
      if (k)
        rk_say(w->o, "compiled in %.3f s (not cached)", secs);
    }
  } else if (rc == RK_OK) {
    k = flow_load(w, &img, e);
    if (k)
      rk_say(w->o, "compiled the %s kernel in %.3f s", w->be->name, secs);
    if (k && w->dir) {
      rk_error e2;
      rk_err_clear(&e2);
      if (rk_cache_write_blob(w->dir, w->dkey.s, w->t.ext, img.data, img.size,
                              &e2) != RK_OK)
        rk_say(w->o, "%s kernel not saved to disk: %s", w->be->name, e2.msg);
    }
  }
  image_free(&img);
  if (tmpdir[0])
    rmdir(tmpdir); /* kept when it holds a failed source */
  return k;
}

/* mode 0: find or compile; 1: the memory cache only; 2: memory or disk */
static int kernel_get(const rk_backend_i *be, const rk_formula *f,
                      const rk_options *o, const rk_cg_config *c,
                      rk_kernel **out, int *compiled, int mode, rk_error *e) {
  flow w;
  memset(&w, 0, sizeof w);
  w.be = be;
  w.f = f;
  w.o = o;
  w.c = c;
  rk_buf_init(&w.t.text);
  *out = NULL;
  if (compiled)
    *compiled = 0;
  int rc = be->target(o, &w.t, e);
  if (rc != RK_OK)
    goto done;
  rk_kernel_key(be, f, c, w.t.text.s, &w.key);
  rk_buf_printf(&w.mkey, "%s", w.key.s ? w.key.s : "");
  if (w.t.per_device)
    rk_buf_printf(&w.mkey, "#device %d", o->device);
  if (w.key.oom || w.mkey.oom) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  rk_kernel *k = rk_memcache_find(w.mkey.s);
  if (k || mode == 1) {
    *out = k;
    goto done;
  }
  rc = be->source(f, c, w.key.s, &w.src, e);
  if (rc != RK_OK)
    goto done;
  char srchash[33];
  rk_hash_hex(w.src.s ? w.src.s : "", srchash);
  rk_buf_printf(&w.dkey, "%s gen=%s", w.key.s, srchash);
  if (w.src.oom || w.dkey.oom) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory generating the source");
    goto done;
  }
  w.dir = o->cache_dir && o->cache_dir[0] ? o->cache_dir : NULL;
  if (w.dir) {
    rk_error e2;
    rk_err_clear(&e2);
    if (rk_cache_mkdir(w.dir, &e2) != RK_OK) {
      rk_say(o, "%s: compiling in a private temporary directory", e2.msg);
      cache_refused(w.dir, e2.msg);
      w.dir = NULL;
    }
  }
  k = w.dir ? flow_disk(&w) : NULL;
  if (k == NULL && mode == 2)
    goto done; /* *out stays NULL */
  if (k == NULL) {
    k = flow_compile(&w, e);
    if (k == NULL) {
      rc = e && e->code ? e->code : RK_EINTERNAL;
      goto done;
    }
    if (compiled)
      *compiled = 1;
  }
  rc = rk_memcache_add(k, e);
  *out = rc == RK_OK ? rk_memcache_find(w.mkey.s) : NULL;
  if (rc == RK_OK && *out == NULL)
    rc = rk_err(e, RK_EINTERNAL, -1, "kernel cache lookup failed");
done:
  flow_free(&w);
  return rc;
}

int rk_kernel_get(const rk_backend_i *be, const rk_formula *f,
                  const rk_options *o, const rk_cg_config *c, rk_kernel **out,
                  int *compiled, rk_error *e) {
  return kernel_get(be, f, o, c, out, compiled, 0, e);
}

int rk_kernel_find(const rk_backend_i *be, const rk_formula *f,
                   const rk_options *o, const rk_cg_config *c, int disk,
                   rk_kernel **out, rk_error *e) {
  return kernel_get(be, f, o, c, out, NULL, disk ? 2 : 1, e);
}
