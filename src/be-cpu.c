/*
 * be-cpu.c -- the CPU backend: the kernel key, and getting a kernel from
 * the memory cache, the disk cache, or the system C compiler.
 *
 * Compiling: the generated source goes to a unique temporary .c file in
 * the cache directory (or a private temporary directory when there is no
 * disk cache), `cc <flags> -o tmp.so tmp.c` runs through /bin/sh with
 * stdout and stderr sent to a log; the object is sealed (trailer, see
 * be-cache.c), loaded and checked under its temporary name, then renamed
 * into place.  Two processes compiling the same kernel both succeed: each
 * loads its own temporary file and the last rename wins.  The formula
 * text never appears on the command line, only quoted file names.
 */
#define _GNU_SOURCE
#include "be.h"
#include "cg.h"
#include "rk-config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *rk_cpu_compiler(void) {
  return RK_CC;
}
const char *rk_cpu_cflags(void) {
  return RK_KERNEL_CFLAGS;
}
const char *rk_cpu_openmp_flags(void) {
  return RK_OPENMP_FLAGS;
}

/* One line, printable characters only: the generated source embeds it in
   a string literal. */
void rk_kernel_key(const rk_formula *f, int backend, int precision,
                   const char *target, rk_buf *buf) {
  rk_buf_printf(buf, "rkeops %s; %s abi %d; f%d; scheme %d; ",
                RK_VERSION_STRING, backend == RK_BACKEND_GPU ? "cuda" : "cpu",
                backend == RK_BACKEND_GPU ? 0 : RK_CPU_ABI, precision,
                f->scheme);
  if (backend == RK_BACKEND_GPU)
    rk_buf_printf(buf, "target %s; ", target ? target : "");
  else
    rk_buf_printf(buf, "cc %s %s %s; ", RK_CC, RK_KERNEL_CFLAGS,
                  RK_OPENMP_FLAGS);
  /* the developer knobs that change the generated code, when set: a
     kernel made under one is never reused without it, in memory or on disk */
  for (const char *const *k = backend == RK_BACKEND_GPU ? rk_cg_cuda_knobs
                                                        : rk_cg_cpu_knobs;
       *k; k++) {
    const char *v = getenv(*k);
    if (!v) continue;
    rk_buf_printf(buf, "%s=", *k);
    for (int i = 0; v[i] && i < 16; i++) /* printable: digits, ',' */
      rk_buf_putc(buf, (v[i] >= '0' && v[i] <= '9') || v[i] == ',' ? v[i] : '?');
    rk_buf_puts(buf, "; ");
  }
  rk_buf_puts(buf, f->canonical ? f->canonical : "");
}

/* append s to b as one single-quoted shell word */
static void shell_quote(rk_buf *b, const char *s) {
  rk_buf_putc(b, '\'');
  for (; *s; s++) {
    if (*s == '\'')
      rk_buf_puts(b, "'\\''");
    else
      rk_buf_putc(b, *s);
  }
  rk_buf_putc(b, '\'');
}

/* dlopen path and check it is the kernel for key; 1 and *out on success */
static int load_kernel(const char *path, const char *key, rk_kernel **out,
                       char *why, size_t wsize) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *m = dlerror();
    snprintf(why, wsize, "dlopen failed: %s", m ? m : "?");
    return 0;
  }
  int (*abi)(void) = NULL;
  void *abi_sym = dlsym(h, "rk_kernel_abi");
  if (abi_sym) /* object to function pointer, the ISO C way */
    memcpy(&abi, &abi_sym, sizeof abi);
  const char *k = dlsym(h, "rk_kernel_key");
  void *fn = dlsym(h, "rk_kernel_run");
  if (abi == NULL || k == NULL || fn == NULL || abi() != RK_CPU_ABI ||
      strcmp(k, key) != 0) {
    snprintf(why, wsize, "not the expected kernel (ABI or key differ)");
    dlclose(h);
    return 0;
  }
  rk_kernel *kr = calloc(1, sizeof *kr);
  char *kc = strdup(key);
  if (kr == NULL || kc == NULL) {
    free(kr);
    free(kc);
    dlclose(h);
    snprintf(why, wsize, "out of memory");
    return 0;
  }
  kr->key = kc;
  kr->backend = RK_BACKEND_CPU;
  kr->handle = h;
  kr->fn = fn;
  *out = kr;
  return 1;
}

static int write_text(const char *path, const char *s, size_t n) {
  int fd =
      open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return 0;
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, s + done, n - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    done += (size_t)w;
  }
  return close(fd) == 0 && done == n;
}

/* the end of the log file (at most size - 1 bytes) into log */
static void read_log(const char *path, char *log, size_t size) {
  log[0] = '\0';
  FILE *fp = fopen(path, "rb");
  if (fp == NULL)
    return;
  if (fseek(fp, 0, SEEK_END) == 0) {
    long len = ftell(fp);
    if (len > (long)size - 1)
      fseek(fp, len - ((long)size - 1), SEEK_SET);
    else
      fseek(fp, 0, SEEK_SET);
  }
  size_t n = fread(log, 1, size - 1, fp);
  log[n] = '\0';
  fclose(fp);
}

/* run the compiler; 0 = success, else the exit status (or -1) */
static int run_compiler(const char *src, const char *obj, const char *logp) {
  rk_buf cmd;
  rk_buf_init(&cmd);
  rk_buf_printf(&cmd, "%s %s %s -o ", RK_CC, RK_KERNEL_CFLAGS, RK_OPENMP_FLAGS);
  shell_quote(&cmd, obj);
  rk_buf_putc(&cmd, ' ');
  shell_quote(&cmd, src);
  rk_buf_puts(&cmd, " -lm");
  if (cmd.oom) {
    rk_buf_free(&cmd);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  char *argv[] = {"sh", "-c", cmd.s, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  rk_buf_free(&cmd);
  if (rc != 0)
    return -1;
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -1;
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return -1;
}

/* compile the generated source src, seal, load, install.  key: the key
   embedded in the source (checked after dlopen); dkey: the disk key (the
   file's name and trailer).  dir: the cache directory, or NULL to work in a
   private temporary directory removed afterwards. */
static int compile_kernel(const rk_options *o, const rk_buf *src,
                          const char *key, const char *dkey, const char *dir,
                          rk_kernel **out, rk_error *e) {
  char tmpdir[4096] = "";
  rk_buf cpath, opath, lpath, fpath;
  rk_buf_init(&cpath);
  rk_buf_init(&opath);
  rk_buf_init(&lpath);
  rk_buf_init(&fpath);
  int keep_src = 0, rc = RK_OK;
  if (dir == NULL) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/rkeops-XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
      rc = rk_err(e, RK_ECACHE, -1,
                  "cannot create a temporary directory "
                  "in %s: %s",
                  t && *t ? t : "/tmp", strerror(errno));
      tmpdir[0] = '\0';
      goto done;
    }
    dir = tmpdir;
  }
  rk_cache_tmppath(dir, "c", &cpath);
  rk_buf_printf(&opath, "%.*s.so", (int)(cpath.len - 2), cpath.s);
  rk_buf_printf(&lpath, "%.*s.log", (int)(cpath.len - 2), cpath.s);
  rk_cache_path(dir, dkey, "so", &fpath);
  if (src->oom || cpath.oom || opath.oom || lpath.oom || fpath.oom) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  if (!write_text(cpath.s, src->s, src->len)) {
    rc = rk_err(e, RK_ECACHE, -1, "cannot write the kernel source %s: %s",
                cpath.s, strerror(errno));
    unlink(cpath.s);
    goto done;
  }
  rk_say(o, "compiling a CPU kernel (%s) ...", cpath.s);
  int status = run_compiler(cpath.s, opath.s, lpath.s);
  rk_cache_count_compile();
  if (status != 0) {
    rc = rk_err(e, RK_ECOMPILE, -1,
                "the C compiler failed (%s %d) on the generated kernel %s",
                status < 0 ? "could not run:" : "exit status", status, cpath.s);
    read_log(lpath.s, e->log, sizeof e->log);
    snprintf(e->path, sizeof e->path, "%s", cpath.s);
    keep_src = 1;
    unlink(opath.s);
    goto done;
  }
  rc = rk_cache_seal(opath.s, dkey, e);
  if (rc != RK_OK) {
    unlink(opath.s);
    goto done;
  }
  char why[512];
  if (!load_kernel(opath.s, key, out, why, sizeof why)) {
    rc = rk_err(e, RK_ECOMPILE, -1, "the compiled kernel %s cannot be used: %s",
                opath.s, why);
    unlink(opath.s);
    goto done;
  }
  if (tmpdir[0]) {
    unlink(opath.s); /* loaded: the mapping outlives the name */
  } else if (rk_cache_install(opath.s, fpath.s, e) != RK_OK) {
    rk_say(o, "%s (the kernel is used without being cached)", e->msg);
    rk_err_clear(e);
  }
  rk_say(o, "compiled %s", tmpdir[0] ? "(not cached)" : fpath.s);
done:
  if (cpath.s) {
    if (!keep_src)
      unlink(cpath.s);
    if (lpath.s)
      unlink(lpath.s);
  }
  if (tmpdir[0] && !keep_src)
    rmdir(tmpdir);
  rk_buf_free(&cpath);
  rk_buf_free(&opath);
  rk_buf_free(&lpath);
  rk_buf_free(&fpath);
  return rc;
}

int rk_cpu_get(const rk_formula *f, const rk_options *o, rk_cpu_entry *fn,
               int *compiled, rk_error *e) {
  int c = 0, rc = RK_OK;
  rk_buf key, path, src, dkey;
  rk_buf_init(&key);
  rk_buf_init(&path);
  rk_buf_init(&src);
  rk_buf_init(&dkey);
  rk_kernel *k = NULL;
  rk_kernel_key(f, RK_BACKEND_CPU, o->precision, NULL, &key);
  if (key.oom) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  k = rk_memcache_find(key.s);
  if (k)
    goto done;
  /* On disk, a kernel is also keyed by a hash of its generated source, so
     a changed code generator never reuses a stale kernel of the same
     formula.  (Generating the source takes well under a millisecond.) */
  rc = rk_cg_cpu_source(f, o->precision, key.s, &src, e);
  if (rc != RK_OK)
    goto done;
  char srchash[33];
  rk_hash_hex(src.s ? src.s : "", srchash);
  rk_buf_printf(&dkey, "%s gen=%s", key.s, srchash);
  if (src.oom || dkey.oom) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  const char *dir = o->cache_dir && o->cache_dir[0] ? o->cache_dir : NULL;
  if (dir) {
    rc = rk_cache_mkdir(dir, e);
    if (rc != RK_OK)
      goto done;
    rk_cache_path(dir, dkey.s, "so", &path);
    if (path.oom) {
      rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
      goto done;
    }
    struct stat st;
    if (lstat(path.s, &st) == 0) {
      char why[512] = "invalid file (owner, mode, trailer or checksum)";
      if (rk_cache_verify(path.s, dkey.s) &&
          load_kernel(path.s, key.s, &k, why, sizeof why)) {
        rk_cache_count_disk_load();
        rk_say(o, "loaded the CPU kernel from %s", path.s);
      } else {
        rk_say(o, "ignoring the cache file %s: %s; rebuilding", path.s, why);
        if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))
          unlink(path.s);
      }
    }
  }
  if (k == NULL) {
    rc = compile_kernel(o, &src, key.s, dkey.s, dir, &k, e);
    if (rc != RK_OK)
      goto done;
    c = 1;
  }
  rc = rk_memcache_add(k, e);
  k = rc == RK_OK ? rk_memcache_find(key.s) : NULL;
done:
  if (rc == RK_OK && k == NULL)
    rc = rk_err(e, RK_EINTERNAL, -1, "kernel cache lookup failed");
  if (fn) {
    *fn = NULL;
    if (rc == RK_OK)
      memcpy(fn, &k->fn, sizeof *fn);
  }
  if (compiled)
    *compiled = c;
  rk_buf_free(&key);
  rk_buf_free(&path);
  rk_buf_free(&src);
  rk_buf_free(&dkey);
  return rc;
}
