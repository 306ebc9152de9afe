/*
 * be-cpu.c -- the CPU backend (one row of the backend table, be.h): the
 * generated C (cg-cpu.c) compiled by the system C compiler into a shared
 * object, dlopen'ed, and run with OpenMP threads in chunks of rows, with
 * interrupt checks between chunks.
 *
 * Compiling: the generated source goes to a unique temporary .c file in
 * the working directory given by the kernel flow (be-kernel.c), `cc
 * <flags> -o tmp.so tmp.c` runs through /bin/sh with stdout and stderr
 * sent to a log; the flow then seals, loads and installs the object.  The
 * formula text never appears on the command line, only quoted file names.
 * The target (part of the kernel key) is the compiler, its flags and the
 * host CPU (kernels are built with -march=native).
 */
#define _GNU_SOURCE
#include "be.h"
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
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

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
  if (RK_HAVE_OPENMP) {
#ifdef _OPENMP
    int nt = omp_get_max_threads();
#else
    int nt = rk_ncpu();
#endif
    rk_buf_printf(&b, "OpenMP: yes (%s), %d threads\n", rk_cpu_openmp_flags(),
                  nt);
  } else {
    rk_buf_puts(&b, "OpenMP: no (kernels run single-threaded)\n");
  }
  size_t len = b.len;
  if (buf && size > 0) snprintf(buf, size, "%s", b.s ? b.s : "");
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
  return rk_cg_cpu_source(f, c, key, out, e);
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

/* compile src in dir into img->path (a temporary .so, not yet sealed);
   on failure the source stays in dir, named in e->path, with the log */
static int cpu_compile(const rk_options *o, const rk_target *t,
                       const char *src, const char *dir, rk_image *img,
                       rk_error *e) {
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
  int status = run_compiler(cpath.s, opath.s, lpath.s);
  if (status != 0) {
    rc = rk_err(e, RK_ECOMPILE, -1,
                "the C compiler failed (%s %d) on the generated kernel %s",
                status < 0 ? "could not run:" : "exit status", status, cpath.s);
    read_log(lpath.s, e->log, sizeof e->log);
    snprintf(e->path, sizeof e->path, "%s", cpath.s);
    unlink(opath.s);
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
                    const rk_cg_config *c, const rk_image *img,
                    const char *key, rk_kernel *k, rk_error *e) {
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
  if (ss_sym) memcpy(&ssize, &ss_sym, sizeof ssize);
  if (tj_sym) memcpy(&tile, &tj_sym, sizeof tile);
  const char *kk = dlsym(h, "rk_kernel_key");
  void *fn = dlsym(h, "rk_kernel_run"), *mg = dlsym(h, "rk_kernel_merge");
  if (abi == NULL || ssize == NULL || tile == NULL || kk == NULL ||
      fn == NULL || mg == NULL ||
      abi() != RK_CPU_ABI || strcmp(kk, key) != 0) {
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
  if (k->handle) dlclose(k->handle);
  k->handle = k->fn = k->aux = NULL;
}

/* ---- running ---------------------------------------------------------- */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define RK_CHUNK_SECONDS 0.25 /* target time of one chunk            */
#define RK_CHUNK_MAX_SECONDS 1.0 /* interrupts are seen within this  */
#define RK_CHUNK_ROWS_PER_THREAD 1024

/* Rows of [r0, r1) in chunks of about RK_CHUNK_SECONDS each, sized from
   the measured speed of the previous chunk, and of at least
   RK_CHUNK_ROWS_PER_THREAD rows per thread unless that would take longer
   than RK_CHUNK_MAX_SECONDS: the kernel splits a chunk into blocks of rows
   that share each tile of the reduction variables, and blocks of a few rows
   would copy the tiles over and over (kNN D = 50 at 1e5 was 3.5 times
   slower with 75 ms chunks). */
static int cpu_run(rk_kernel *k, const rk_formula *f, const rk_options *o,
                   const rk_data *d, const rk_span *s, rk_error *e) {
  (void)f;
  rk_cpu_entry fn;
  memcpy(&fn, &k->fn, sizeof fn);
  int nthreads = s->nthreads > 0 ? s->nthreads : 1;
  int64_t nred = s->j1 - s->j0;
  double pairs = 5e6 * nthreads; /* first guess: pair evaluations */
  int64_t rows = (int64_t)(pairs / (double)(nred > 0 ? nred : 1));
  int64_t minrows = 4 * (int64_t)nthreads;
  for (int64_t r0 = s->r0; r0 < s->r1;) {
    if (rows < minrows) rows = minrows;
    int64_t r1 = s->r1 - r0 < rows ? s->r1 : r0 + rows;
    double t0 = now();
    int64_t off = r0 - s->r0;
    if (fn(r0, r1, s->j0, s->j1, d->vars, d->ld, s->out ? s->out + off : NULL,
           s->ldo, s->st ? s->st + off : NULL, s->ldst, s->mode,
           nthreads) != 0)
      return rk_err(e, RK_ENOMEM, -1, "out of memory in the CPU kernel");
    double dt = now() - t0;
    int64_t done = r1 - r0;
    r0 = r1;
    if (r0 < s->r1 && o->interrupted && o->interrupted(o->interrupt_data))
      return rk_err(e, RK_EINTERRUPT, -1, "interrupted");
    double rate = (double)done / (dt > 1e-6 ? dt : 1e-6); /* rows / s */
    double want = rate * RK_CHUNK_SECONDS;
    double floor_rows = (double)RK_CHUNK_ROWS_PER_THREAD * nthreads;
    if (floor_rows > rate * RK_CHUNK_MAX_SECONDS)
      floor_rows = rate * RK_CHUNK_MAX_SECONDS;
    if (want < floor_rows) want = floor_rows;
    if (want > 8.0 * (double)done + (double)floor_rows)
      want = 8.0 * (double)done + (double)floor_rows;
    rows = (int64_t)want + 1;
  }
  return RK_OK;
}

static int cpu_merge(rk_kernel *k, const rk_merge_args *m, rk_error *e) {
  rk_cpu_merge fn;
  memcpy(&fn, &k->aux, sizeof fn);
  if (fn(m->n, m->nparts, m->st, m->ldst, m->stpart, m->out, m->ldo,
         m->mode) != 0)
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
};
