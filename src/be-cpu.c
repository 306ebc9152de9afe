/*
 * be-cpu.c -- the CPU backend (one row of the backend table, be.h): the
 * generated C (cg-cpu.c) compiled by the system C compiler into a shared
 * object, dlopen'ed, and run by rkeops' thread pool (threads.c) in chunks
 * of rows, with interrupt checks between chunks.
 *
 * Compiling: the generated source goes to a unique temporary .c file in
 * the working directory given by the kernel flow (be-kernel.c), `cc
 * <flags> -o tmp.so tmp.c` runs through /bin/sh (be-cpu-cc.c: a child in
 * its own process group, killed on an interrupt) with stdout and stderr
 * sent to a log; the flow then seals, loads and installs the object.  The
 * formula text never appears on the command line, only quoted file names.
 * The target (part of the kernel key) is the compiler, its flags and the
 * host CPU (kernels are built with -march=native).
 */
#define _GNU_SOURCE
#include "be.h"
#include "rk-config.h"
#include "threads.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *rk_cpu_compiler(void) {
  return RK_CC;
}
const char *rk_cpu_cflags(void) {
  return RK_KERNEL_CFLAGS;
}
const char *rk_cpu_openmp_flags(void) {
  return RK_OPENMP_FLAGS;
}

static int cpu_available(char *why, size_t size) {
  (void)why;
  (void)size;
  return 1;
}

static size_t cpu_describe(char *buf, size_t size) {
  rk_buf b;
  rk_buf_init(&b);
  rk_buf_printf(&b, "C compiler: %s\n", rk_cpu_compiler());
  rk_buf_printf(&b, "kernel flags: %s\n", rk_cpu_cflags());
  const char *why;
  int nt = rk_threads_get(0, &why), na = rk_threads_avail();
  rk_buf_printf(&b, "threads: %d by default (%s), %d core%s available%s\n", nt,
                why, na, na == 1 ? "" : "s",
                rk_threads_forked() ? "; forked process: 1 thread" : "");
  if (RK_HAVE_OPENMP)
    rk_buf_printf(&b, "OpenMP: yes (%s)\n", rk_cpu_openmp_flags());
  else
    rk_buf_puts(&b, "OpenMP: no (not needed: the threads are rkeops' own)\n");
  size_t len = b.len;
  if (buf && size > 0)
    snprintf(buf, size, "%s", b.s ? b.s : "");
  rk_buf_free(&b);
  return len;
}

static int cpu_target(const rk_options *o, rk_target *t, rk_error *e) {
  (void)o;
  rk_buf_printf(&t->text, "cc %s %s %s; host %s", RK_CC, RK_KERNEL_CFLAGS,
                RK_OPENMP_FLAGS, rk_host_cpu());
  t->ext = "so";
  t->per_device = 0;
  return t->text.oom ? rk_err(e, RK_ENOMEM, -1, "out of memory") : RK_OK;
}

static int cpu_source(const rk_formula *f, const rk_cg_config *c,
                      const char *key, rk_buf *out, rk_error *e) {
  /* a kernel that would need more stack than a thread can have is refused
     before it is compiled (threads.c) */
  int rc = rk_cpu_stack_check(f, e);
  return rc != RK_OK ? rc : rk_cg_cpu_source(f, c, key, out, e);
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

/* run the compiler (be-cpu-cc.c: a child in its own process group that
   an interrupt kills) */
static int run_compiler(const char *src, const char *obj, const char *logp,
                        const rk_options *o, rk_error *e) {
  rk_buf cmd;
  rk_buf_init(&cmd);
  rk_buf_printf(&cmd, "%s %s %s -o ", RK_CC, RK_KERNEL_CFLAGS, RK_OPENMP_FLAGS);
  shell_quote(&cmd, obj);
  rk_buf_putc(&cmd, ' ');
  shell_quote(&cmd, src);
  rk_buf_puts(&cmd, " -lm");
  int rc = cmd.oom ? rk_err(e, RK_ENOMEM, -1, "out of memory")
                   : rk_cc_run(cmd.s, logp, o, e);
  rk_buf_free(&cmd);
  return rc;
}

/* compile src in dir into img->path (a temporary .so, not yet sealed);
   on failure the source stays in dir, named in e->path, with the log */
static int cpu_compile(const rk_options *o, const rk_target *t, const char *src,
                       const char *dir, rk_image *img, rk_error *e) {
  (void)t;
  rk_buf cpath, opath, lpath;
  rk_buf_init(&cpath);
  rk_buf_init(&opath);
  rk_buf_init(&lpath);
  int rc = RK_OK;
  rk_cache_tmppath(dir, "c", &cpath);
  rk_buf_printf(&opath, "%.*s.so", (int)(cpath.len - 2), cpath.s);
  rk_buf_printf(&lpath, "%.*s.log", (int)(cpath.len - 2), cpath.s);
  if (cpath.oom || opath.oom || lpath.oom) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  if (!write_text(cpath.s, src, strlen(src))) {
    rc = rk_err(e, RK_ECACHE, -1, "cannot write the kernel source %s: %s",
                cpath.s, strerror(errno));
    unlink(cpath.s);
    goto done;
  }
  rk_say(o, "compiling a CPU kernel (%s) ...", cpath.s);
  rc = run_compiler(cpath.s, opath.s, lpath.s, o, e);
  if (rc != RK_OK) {
    unlink(opath.s);
    if (rc != RK_ECOMPILE || strncmp(e->msg, "exit status", 11) != 0) {
      /* interrupted, killed by a signal, not started: no file is left */
      unlink(cpath.s);
      unlink(lpath.s);
      goto done;
    }
    char how[64];
    snprintf(how, sizeof how, "%.40s", e->msg);
    rc = rk_err(e, RK_ECOMPILE, -1,
                "the C compiler failed (%s) on the generated kernel %s", how,
                cpath.s);
    read_log(lpath.s, e->log, sizeof e->log);
    snprintf(e->path, sizeof e->path, "%s", cpath.s);
    unlink(lpath.s);
    goto done; /* the source stays for the user to look at */
  }
  unlink(cpath.s);
  unlink(lpath.s);
  img->path = rk_buf_take(&opath);
done:
  rk_buf_free(&cpath);
  rk_buf_free(&opath);
  rk_buf_free(&lpath);
  return rc;
}

/* dlopen the image and check it is the kernel for key */
static int cpu_load(const rk_options *o, const rk_formula *f,
                    const rk_cg_config *c, const rk_image *img, const char *key,
                    rk_kernel *k, rk_error *e) {
  (void)o;
  (void)f;
  (void)c;
  void *h = dlopen(img->path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *m = dlerror();
    return rk_err(e, RK_ECOMPILE, -1, "dlopen failed: %s", m ? m : "?");
  }
  int (*abi)(void) = NULL, (*ssize)(void) = NULL, (*tile)(void) = NULL;
  void *abi_sym = dlsym(h, "rk_kernel_abi");
  void *ss_sym = dlsym(h, "rk_kernel_state_size");
  void *tj_sym = dlsym(h, "rk_kernel_tile");
  if (abi_sym) /* object to function pointer, the ISO C way */
    memcpy(&abi, &abi_sym, sizeof abi);
  if (ss_sym)
    memcpy(&ssize, &ss_sym, sizeof ssize);
  if (tj_sym)
    memcpy(&tile, &tj_sym, sizeof tile);
  const char *kk = dlsym(h, "rk_kernel_key");
  void *fn = dlsym(h, "rk_kernel_run"), *mg = dlsym(h, "rk_kernel_merge");
  if (abi == NULL || ssize == NULL || tile == NULL || kk == NULL ||
      fn == NULL || mg == NULL || abi() != RK_CPU_ABI || strcmp(kk, key) != 0) {
    dlclose(h);
    return rk_err(e, RK_ECOMPILE, -1,
                  "not the expected kernel (ABI or key differ)");
  }
  k->handle = h;
  k->fn = fn;
  k->aux = mg;
  k->state_size = ssize();
  k->granule = tile();
  return RK_OK;
}

static void cpu_unload(rk_kernel *k) {
  if (k->handle)
    dlclose(k->handle);
  k->handle = k->fn = k->aux = NULL;
}

/* ---- running ---------------------------------------------------------- */

/* one block of rows: one call of the kernel on one thread of the pool
   (threads.c); out and st are indexed from the block's first row */
typedef struct cpu_block {
  rk_cpu_entry fn;
  const rk_data *d;
  const rk_span *s;
} cpu_block;

static int cpu_block_run(void *ctx, int64_t a, int64_t b) {
  const cpu_block *c = ctx;
  const rk_span *s = c->s;
  int64_t off = a - s->r0;
  return c->fn(a, b, s->j0, s->j1, c->d->vars, c->d->ld,
               s->out ? s->out + off : NULL, s->ldo, s->st ? s->st + off : NULL,
               s->ldst, s->mode, 1);
}

/* Rows of [r0, r1) in chunks sized by the estimated, then measured, work
   (threads.c rk_chunk_*), each chunk run by the thread pool in blocks;
   the interrupt callback is polled between chunks, so that it is seen
   within about a second whatever the formula costs per pair.  Small
   problems run on one thread (rk_threads_for_work). */
static int cpu_run(rk_kernel *k, const rk_formula *f, const rk_options *o,
                   const rk_data *d, const rk_span *s, rk_error *e) {
  cpu_block cb;
  memcpy(&cb.fn, &k->fn, sizeof cb.fn);
  cb.d = d;
  cb.s = s;
  double cost;
  size_t stack;
  rk_formula_cost(f, &cost, &stack); /* stack: checked by cpu_source */
  rk_chunker c;
  rk_chunk_start(&c, s->nthreads > 0 ? s->nthreads : 1, s->r1 - s->r0,
                 s->j1 - s->j0, cost);
  for (int64_t r0 = s->r0; r0 < s->r1;) {
    int64_t r1 = r0 + rk_chunk_rows(&c, s->r1 - r0);
    double t0 = rk_now();
    int rc = rk_par_rows(c.nthreads, r0, r1, rk_chunk_grain(&c, r1 - r0), stack,
                         cpu_block_run, &cb);
    if (rc == -2)
      return rk_err(e, RK_ENOMEM, -1,
                    "no thread with %.0f MiB of stack could be created for "
                    "the CPU kernel",
                    (double)stack / 1048576.0);
    if (rc != 0)
      return rk_err(e, RK_ENOMEM, -1, "out of memory in the CPU kernel");
    rk_chunk_done(&c, r1 - r0, rk_now() - t0);
    r0 = r1;
    if (r0 < s->r1 && o->interrupted && o->interrupted(o->interrupt_data))
      return rk_err(e, RK_EINTERRUPT, -1, "interrupted");
  }
  return RK_OK;
}

static int cpu_merge(rk_kernel *k, const rk_merge_args *m, rk_error *e) {
  rk_cpu_merge fn;
  memcpy(&fn, &k->aux, sizeof fn);
  if (fn(m->n, m->nparts, m->st, m->ldst, m->stpart, m->out, m->ldo, m->mode) !=
      0)
    return rk_err(e, RK_EINTERNAL, -1, "the CPU merge failed");
  return RK_OK;
}

static void cpu_release(void) {}

const rk_backend_i rk_backend_cpu = {
    .name = "cpu",
    .id = RK_BACKEND_CPU,
    .abi = RK_CPU_ABI,
    .cfg_mask = 1,
    .image_kind = RK_IMAGE_FILE,
    .available = cpu_available,
    .describe = cpu_describe,
    .target = cpu_target,
    .source = cpu_source,
    .compile = cpu_compile,
    .load = cpu_load,
    .run = cpu_run,
    .merge = cpu_merge,
    .unload = cpu_unload,
    .release = cpu_release,
    .bind = NULL,
    .rebind = NULL,
    .unbind = NULL,
    .pin = NULL,
    .unpin = NULL,
};
