/*
 * be-cuda-nvrtc.c -- compiling generated CUDA source with NVRTC.
 *
 * rk_nvrtc_compile makes CUBIN for sm_<major><minor> when NVRTC supports
 * that architecture and can emit CUBIN, else PTX for the newest
 * architecture NVRTC knows (the driver then compiles the PTX when loading
 * it).  On failure the error is RK_ECOMPILE with NVRTC's log in e->log and
 * the source saved to a file named in e->path.
 * rk_formula_nvrtc_check compiles a formula's CUDA source without any GPU
 * (the test suite uses it for sm_80 and sm_90); rk_formula_nvrtc_image
 * returns the image (test-codegen-cuda.R reads the pair).
 * rk_nvrtc_compile_kernel compiles a kernel's two entry points as two
 * programs in parallel (below, "the kernel's two entry points at once").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be-cuda-load.h"
#include "be.h"
#include "cg.h"
#include "threads.h"

/* save a failed source for the user to look at; its path goes to e->path */
static void save_source(const char *src, const char *name, rk_error *e) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp)
    tmp = "/tmp";
  char path[1024];
  snprintf(path, sizeof path, "%s/rkeops-%.40s-XXXXXX.cu", tmp, name);
  int fd = mkstemps(path, 3);
  if (fd < 0)
    return;
  size_t n = strlen(src), off = 0;
  while (off < n) {
    ssize_t w = write(fd, src + off, n - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  close(fd);
  if (e)
    snprintf(e->path, sizeof e->path, "%s", path);
}

/* the NVRTC target for a device of compute capability major.minor:
   returns the arch number to use and whether CUBIN is possible */
int rk_nvrtc_pick_arch(int major, int minor, int maxa, int *cubin) {
  /* a compute capability from the driver, or the caller: bounded before
     the arithmetic (major * 10 + minor must not overflow) */
  if (major < 0 || major > 99 || minor < 0 || minor > 9) {
    *cubin = 0;
    return -1;
  }
  int arch = major * 10 + minor;
  if (maxa > 0 && arch > maxa) {
    arch = maxa; /* GPU newer than NVRTC: PTX, JIT-compiled by the driver */
    *cubin = 0;
  }
  return arch;
}

static int pick_arch(int major, int minor, int *cubin) {
  int can = rk_nvrtc.GetCUBIN != NULL && rk_nvrtc.GetCUBINSize != NULL;
  int arch = rk_nvrtc_pick_arch(major, minor, rk_nvrtc_max_arch(), &can);
  *cubin = can;
  return arch;
}

/* the failure message of NVRTC for the architecture option `archopt`
   ("--gpu-architecture=sm_90" names "sm_90") */
void rk_nvrtc_fail_message(char *buf, size_t size, const char *archopt,
                           const char *why) {
  const char *eq = strchr(archopt, '=');
  snprintf(buf, size, "NVRTC could not compile the CUDA kernel for %s: %s",
           eq ? eq + 1 : archopt, why ? why : "?");
}

/* NVRTC's -Ofast-compile level (NVRTC 12.8 and later): the developer knob
   RKEOPS_NVRTC_FAST = min | mid | max when set, else "mid" for a quick
   kernel (rk_options.quick: the first small call of a formula; H100, a
   Gaussian sum's first call 0.150 -> 0.076 s, its kernel 4.7x slower) and
   none for a full one.  It is part of the target string, so kernels
   compiled at another level are cached apart */
static const char *fast_level(int quick) {
  if (rk_nvrtc_version() < 12080)
    return NULL;
  const char *v = getenv("RKEOPS_NVRTC_FAST");
  if (v && (strcmp(v, "min") == 0 || strcmp(v, "mid") == 0 ||
            strcmp(v, "max") == 0))
    return v;
  return quick ? "mid" : NULL;
}

int rk_nvrtc_target(int major, int minor, int quick, char *buf, size_t size) {
  char why[256];
  if (!rk_nvrtc_load(why, sizeof why))
    return 0;
  int cubin, arch = pick_arch(major, minor, &cubin);
  if (arch < 0)
    return 0;
  int v = rk_nvrtc_version();
  const char *fast = fast_level(quick);
  snprintf(buf, size, "nvrtc%d.%d/%s_%d%s%s", v / 1000, (v % 1000) / 10,
           cubin ? "sm" : "compute", arch, fast ? "/fast-" : "",
           fast ? fast : "");
  return 1;
}

/* NVRTC >= 12.4's -minimal: the builtin header without textures, device
   runtime and launch APIs, none of which generated kernels use (same
   CUBIN, about 9 ms less per program) */
static int nvrtc_minimal(void) {
  return rk_nvrtc_version() >= 12040;
}

/* one program: `define` (or NULL) is an extra -D option */
static int nvrtc_compile_now(const char *src, const char *name,
                             const char *define, int quick, int major,
                             int minor,
                             void **image, size_t *size, int *is_cubin,
                             rk_error *e) {
  char why[1024];
  *image = NULL;
  *size = 0;
  *is_cubin = 0;
  if (!rk_nvrtc_load(why, sizeof why))
    return rk_err(e, RK_EUNSUPPORTED, -1, "%s", why);
  int cubin, arch = pick_arch(major, minor, &cubin);
  if (arch < 0)
    return rk_err(e, RK_EVALUE, -1, "invalid compute capability %d.%d", major,
                  minor);
  char archopt[64];
  snprintf(archopt, sizeof archopt, "--gpu-architecture=%s_%d",
           cubin ? "sm" : "compute", arch);
  char fastopt[32] = "";
  const char *fast = fast_level(quick);
  if (fast)
    snprintf(fastopt, sizeof fastopt, "--Ofast-compile=%s", fast);
  const char *opts[7] = {archopt, "--std=c++14", "--fmad=true",
                         "--extra-device-vectorization"};
  int nopt = 4;
  if (fast)
    opts[nopt++] = fastopt;
  if (nvrtc_minimal())
    opts[nopt++] = "-minimal";
  if (define)
    opts[nopt++] = define;
  nvrtcProgram prog = NULL;
  nvrtcResult r = rk_nvrtc.CreateProgram(&prog, src, name, 0, NULL, NULL);
  if (r != 0)
    return rk_err(e, RK_ECOMPILE, -1, "nvrtcCreateProgram failed: %s",
                  rk_nvrtc.GetErrorString(r));
  r = rk_nvrtc.CompileProgram(prog, nopt, opts);
  if (r != 0) {
    size_t lsz = 0;
    char msg[512];
    rk_nvrtc_fail_message(msg, sizeof msg, archopt, rk_nvrtc.GetErrorString(r));
    int code = rk_err(e, RK_ECOMPILE, -1, "%s", msg);
    if (e) {
      e->log[0] = 0;
      if (rk_nvrtc.GetProgramLogSize(prog, &lsz) == 0 && lsz > 0) {
        char *log = malloc(lsz + 1);
        if (log && rk_nvrtc.GetProgramLog(prog, log) == 0) {
          log[lsz] = 0;
          snprintf(e->log, sizeof e->log, "%s", log);
        }
        free(log);
      }
      save_source(src, name, e);
    }
    rk_nvrtc.DestroyProgram(&prog);
    return code;
  }
  size_t n = 0;
  r = cubin ? rk_nvrtc.GetCUBINSize(prog, &n) : rk_nvrtc.GetPTXSize(prog, &n);
  void *img = (r == 0 && n > 0) ? malloc(n) : NULL;
  if (!img) {
    rk_nvrtc.DestroyProgram(&prog);
    return rk_err(e, r ? RK_ECOMPILE : RK_ENOMEM, -1,
                  "could not get the compiled image from NVRTC");
  }
  r = cubin ? rk_nvrtc.GetCUBIN(prog, img) : rk_nvrtc.GetPTX(prog, img);
  rk_nvrtc.DestroyProgram(&prog);
  if (r != 0) {
    free(img);
    return rk_err(e, RK_ECOMPILE, -1, "nvrtcGet%s failed",
                  cubin ? "CUBIN" : "PTX");
  }
  *image = img;
  *size = n;
  *is_cubin = cubin;
  return RK_OK;
}

/* ---- NVRTC in a thread that an interrupt abandons ---------------------------
 * nvrtcCompileProgram cannot be stopped and may take minutes on a large
 * formula: it runs in a thread of its own (threads.c, rk_run_abandonable)
 * while the caller's interrupt callback is polled.  On an interrupt the
 * call returns RK_EINTERRUPT at once; the thread finishes the compile and
 * frees everything (the job owns copies of its inputs). */
typedef struct nvrtc_job {
  char *src, *name;
  int major, minor, cubin, rc, pair, quick;
  void *image;
  size_t size;
  rk_error e;
} nvrtc_job;

/* ---- the kernel's two entry points at once ---------------------------------
 * rk_merge costs NVRTC a third of rk_main's time (kNN: 0.12 s of 0.39 s on
 * the 2-core CI machine), so a kernel's source is compiled as two programs
 * in parallel, rk_main (-DRK_NO_MERGE) on the job's thread and rk_merge
 * (-DRK_NO_MAIN) on a second one, and the image is the pair: a 32-byte
 * header (RK_CUDA_PAIR_MAGIC, the two sizes as uint64) and the images at
 * offsets 32 and 32 + round16(size of the first). */
#define RK_CUDA_PAIR_MAGIC "rkeops-cu-pair1"
#define RK_PAIR_HDR        32
static size_t round16(size_t n) {
  return (n + 15) & ~(size_t)15;
}

int rk_cuda_pair_split(const void *img, size_t n, const void **a, size_t *na,
                       const void **b, size_t *nb) {
  const unsigned char *p = img;
  uint64_t s1, s2;
  if (img == NULL || n < RK_PAIR_HDR ||
      memcmp(p, RK_CUDA_PAIR_MAGIC, sizeof RK_CUDA_PAIR_MAGIC) != 0)
    return 0;
  memcpy(&s1, p + 16, 8);
  memcpy(&s2, p + 24, 8);
  if (s1 == 0 || s2 == 0 || s1 > n || s2 > n ||
      RK_PAIR_HDR + round16((size_t)s1) + (size_t)s2 != n)
    return -1;
  *a = p + RK_PAIR_HDR;
  *na = (size_t)s1;
  *b = p + RK_PAIR_HDR + round16((size_t)s1);
  *nb = (size_t)s2;
  return 1;
}

static void *pair_pack(const void *a, size_t na, const void *b, size_t nb,
                       size_t *n) {
  *n = RK_PAIR_HDR + round16(na) + nb;
  unsigned char *p = calloc(1, *n);
  if (p == NULL)
    return NULL;
  uint64_t s1 = na, s2 = nb;
  memcpy(p, RK_CUDA_PAIR_MAGIC, sizeof RK_CUDA_PAIR_MAGIC);
  memcpy(p + 16, &s1, 8);
  memcpy(p + 24, &s2, 8);
  memcpy(p + RK_PAIR_HDR, a, na);
  memcpy(p + RK_PAIR_HDR + round16(na), b, nb);
  return p;
}

typedef struct merge_half {
  const nvrtc_job *j;
  void *image;
  size_t size;
  int rc;
  rk_error e;
} merge_half;

static void *merge_half_run(void *ctx) {
  merge_half *h = ctx;
  int cubin; /* the same architecture as the main half: its flag decides */
  rk_err_clear(&h->e);
  h->rc = nvrtc_compile_now(h->j->src, h->j->name, "-DRK_NO_MAIN",
                            h->j->quick, h->j->major, h->j->minor, &h->image,
                            &h->size, &cubin, &h->e);
  return NULL;
}

static int nvrtc_pair_now(nvrtc_job *j) {
  merge_half h;
  memset(&h, 0, sizeof h);
  h.j = j;
  pthread_t t;
  int started = rk_thread_start(&t, (size_t)16 << 20, 0, merge_half_run, &h) == 0;
  void *img = NULL;
  size_t n = 0;
  int cubin = 0;
  int rc = nvrtc_compile_now(j->src, j->name, "-DRK_NO_MERGE", j->quick,
                             j->major, j->minor, &img, &n, &cubin, &j->e);
  if (started)
    pthread_join(t, NULL);
  else
    merge_half_run(&h); /* no second thread: one after the other */
  if (rc == RK_OK && h.rc != RK_OK) {
    j->e = h.e;
    rc = h.rc;
  }
  if (rc == RK_OK) {
    j->image = pair_pack(img, n, h.image, h.size, &j->size);
    j->cubin = cubin;
    if (j->image == NULL)
      rc = rk_err(&j->e, RK_ENOMEM, -1, "out of memory");
  }
  free(img);
  free(h.image);
  return rc;
}

static int nvrtc_job_run(void *ctx) {
  nvrtc_job *j = ctx;
  rk_err_clear(&j->e);
  j->rc = j->pair ? nvrtc_pair_now(j)
                  : nvrtc_compile_now(j->src, j->name, NULL, j->quick, j->major,
                                      j->minor, &j->image, &j->size, &j->cubin,
                                      &j->e);
  return j->rc;
}

static void nvrtc_job_free(void *ctx) {
  nvrtc_job *j = ctx;
  free(j->image);
  free(j->src);
  free(j->name);
  free(j);
}

static int nvrtc_compile_job(const char *src, const char *name, int major,
                             int minor, int pair, int quick, void **image,
                             size_t *size, int *is_cubin, rk_error *e) {
  char why[1024];
  *image = NULL;
  *size = 0;
  *is_cubin = 0;
  if (!rk_nvrtc_load(why, sizeof why)) /* dlopen on the calling thread */
    return rk_err(e, RK_EUNSUPPORTED, -1, "%s", why);
  nvrtc_job *j = calloc(1, sizeof *j);
  if (j)
    j->src = strdup(src), j->name = strdup(name);
  if (j == NULL || j->src == NULL || j->name == NULL) {
    if (j)
      nvrtc_job_free(j);
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  }
  j->major = major;
  j->minor = minor;
  j->pair = pair;
  j->quick = quick;
  int res = 0;
  if (rk_run_abandonable(nvrtc_job_run, nvrtc_job_free, j, &res) == 1)
    return rk_err(e, RK_EINTERRUPT, -1, "interrupted while compiling (NVRTC)");
  if (e)
    *e = j->e;
  if (j->rc == RK_OK) {
    *image = j->image;
    *size = j->size;
    *is_cubin = j->cubin;
    j->image = NULL;
  }
  int rc = j->rc;
  nvrtc_job_free(j);
  return rc;
}

int rk_nvrtc_compile(const char *src, const char *name, int major, int minor,
                     void **image, size_t *size, int *is_cubin, rk_error *e) {
  return nvrtc_compile_job(src, name, major, minor, 0, 0, image, size,
                           is_cubin, e);
}

int rk_nvrtc_compile_kernel(const char *src, const char *name, int major,
                            int minor, int quick, void **image, size_t *size,
                            int *is_cubin, rk_error *e) {
  return nvrtc_compile_job(src, name, major, minor, 1, quick, image, size,
                           is_cubin, e);
}

/* the kernel image (a pair) of f's CUDA source, malloc'ed in *img */
int rk_formula_nvrtc_image(rk_formula *f, int precision, int major, int minor,
                           void **img, size_t *n, rk_error *err) {
  rk_err_clear(err);
  *img = NULL;
  *n = 0;
  if (precision != 32 && precision != 64)
    return rk_err(err, RK_EVALUE, -1, "precision must be 32 or 64, not %d",
                  precision);
  rk_buf src;
  rk_buf_init(&src);
  rk_cg_config cfg;
  rk_cg_config_env(&cfg, precision);
  int rc = rk_cg_cuda_source(f, &cfg, f->key, &src, err);
  if (rc == RK_OK && src.oom)
    rc = rk_err(err, RK_ENOMEM, -1, "out of memory generating CUDA source");
  int cubin = 0;
  if (rc == RK_OK)
    rc = rk_nvrtc_compile_kernel(src.s, "rkeops_check", major, minor, 0, img, n,
                                 &cubin, err);
  rk_buf_free(&src);
  return rc;
}

int rk_formula_nvrtc_check(rk_formula *f, int precision, int major, int minor,
                           rk_error *err) {
  void *img = NULL;
  size_t n = 0;
  int rc = rk_formula_nvrtc_image(f, precision, major, minor, &img, &n, err);
  free(img);
  return rc;
}
