/*
 * be-cuda.c -- the CUDA backend (one row of the backend table, be.h):
 * devices and their primary contexts, the target (NVRTC version and
 * architecture), compiling with NVRTC and loading the image, a grow-only
 * pool of device memory per device, the blocked launches of rk_main /
 * rk_merge (the kernel ABI is documented at the top of cg-cuda.c), and
 * data kept in device memory between calls (bind, for rk_op).
 *
 * A call copies each input to the device once (unless it is bound),
 * runs, and copies the results (or states) back.  When the data do not fit in
 * free device memory, the output rows (i) and the reduction points (j) are
 * processed in blocks; the reduction state stays on the device between j-blocks
 * (mode bits of rk_main), so the combination is exact for every reduction. When
 * there are too few output rows to fill the GPU, the reduction is split over
 * blockIdx.y and the parts are merged by rk_merge; the number of parts
 * is chosen to fill whole waves of resident blocks (cuOccupancy*).  Each
 * launch covers at most RK_PAIRS_PER_LAUNCH pairs (rows in chunks), and
 * the interrupt callback is polled between launches.
 * RKEOPS_CUDA_MEMORY_LIMIT (bytes) lowers the memory budget, so that the
 * tests exercise the blocked path on a big GPU.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be-cuda-load.h"
#include "be.h"
#include "cg.h"
#include "threads.h"

#define RK_MAXDEV 16

/* the device memory this process holds through cuMemAlloc (pools and bound
   data, all devices): rk_cuda_meminfo reports it, so that a test of leaks
   does not depend on what other processes do with the device meanwhile */
static _Atomic long long held_bytes;

/* calls run pipelined (run_pipe), since the library was loaded: reported
   by rk_cuda_meminfo so that a test can tell the pipeline really ran */
static _Atomic long long pipe_calls;

/* the reduction parts (blockIdx.y) of the last call's plan: reported by
   rk_cuda_meminfo, so that bench/ab-parts.R can print the automatic choice */
static _Atomic int last_parts;

/* at most this many chunks of rows in a pipelined call */
#define RK_PIPE_MAX 8

/* a grow-only page-locked host buffer (staging of copies) */
typedef struct stage_buf {
  void *p;
  size_t size;
} stage_buf;

/* a lane of a device: one stream of work with its own memory.  Lane 0 is
   the legacy default stream (synchronous copies); a device listed several
   times in rk_options.devices runs its k-th part on lane k, a stream of
   its own (created non-blocking, so it runs beside lane 0), from a host
   thread of its own (run.c rk_parts_*).  Everything a call touches is its
   lane's, so the lanes of one device run concurrently. */
typedef struct rk_lane {
  int init;         /* lane > 0: its stream exists */
  CUstream st;      /* NULL: the default stream (lane 0) */
  CUdeviceptr pool; /* grow-only device memory */
  size_t pool_size;
  stage_buf out; /* results copied back through it */
  stage_buf img; /* a small call's inputs, packed for one copy */
  /* pipelined calls (run_pipe): copies in on pst[0], launches and copies
     out on pst[1], an event per chunk on each; made at first use */
  int pipe_init; /* 1 ready, -1 the driver cannot (no event API) */
  CUstream pst[2];
  CUevent ev_in[RK_PIPE_MAX], ev_out[RK_PIPE_MAX];
} rk_lane;

typedef struct rk_dev {
  int init; /* 1 ready, -1 failed */
  CUdevice dev;
  CUcontext ctx;
  int major, minor, nsm;
  rk_lane lane[RK_MAX_LANES];
} rk_dev;

static rk_dev devs[RK_MAXDEV];

/* per loaded kernel (rk_kernel.aux) */
typedef struct rk_cuda_aux {
  CUfunction merge;
  CUmodule merge_module; /* rk_merge's module of a pair image, else NULL */
  int device;
  int outdim;
  rk_cuda_geom gm;
  int occ; /* resident blocks of rk_main per SM (0: not asked yet) */
} rk_cuda_aux;

static int cu_fail(rk_error *e, CUresult r, const char *what) {
  return rk_err(e, r == RK_CU_ERROR_OUT_OF_MEMORY ? RK_ENOMEM : RK_ECUDA, -1,
                "CUDA error in %s: %s", what, rk_cu_errname(r));
}

#define CU(call, what)                                                         \
  do {                                                                         \
    CUresult cu_r_ = (call);                                                   \
    if (cu_r_ != 0)                                                            \
      return cu_fail(e, cu_r_, what);                                          \
  } while (0)

static int cuda_available(char *why, size_t size) {
  char w[1024] = "";
  if (!rk_cu_load(w, sizeof w)) {
    if (why && size)
      snprintf(why, size, "%s", w);
    return 0;
  }
  int n = 0;
  CUresult r = rk_cu.DeviceGetCount(&n);
  if (r != 0 || n <= 0) {
    if (why && size)
      snprintf(why, size, "%s", r ? rk_cu_errname(r) : "no CUDA device found");
    return 0;
  }
  if (!rk_nvrtc_load(w, sizeof w)) {
    if (why && size)
      snprintf(why, size, "%s", w);
    return 0;
  }
  return n;
}

/* make device d current (retaining its primary context once) */
static int dev_get(int d, rk_dev **out, rk_error *e) {
  char why[1024];
  if (cuda_available(why, sizeof why) <= 0)
    return rk_err(e, RK_EUNSUPPORTED, -1, "no usable GPU: %s", why);
  int n = 0;
  rk_cu.DeviceGetCount(&n);
  if (d < 0 || d >= n || d >= RK_MAXDEV)
    return rk_err(e, RK_EVALUE, -1, "no CUDA device %d (%d device%s found)", d,
                  n, n == 1 ? "" : "s");
  rk_dev *x = &devs[d];
  if (x->init == 0) {
    CU(rk_cu.DeviceGet(&x->dev, d), "cuDeviceGet");
    CU(rk_cu.DeviceGetAttribute(&x->major, RK_CU_ATTR_CC_MAJOR, x->dev),
       "cuDeviceGetAttribute");
    CU(rk_cu.DeviceGetAttribute(&x->minor, RK_CU_ATTR_CC_MINOR, x->dev),
       "cuDeviceGetAttribute");
    CU(rk_cu.DeviceGetAttribute(&x->nsm, RK_CU_ATTR_MULTIPROCESSOR_COUNT,
                                x->dev),
       "cuDeviceGetAttribute");
    CU(rk_cu.DevicePrimaryCtxRetain(&x->ctx, x->dev),
       "cuDevicePrimaryCtxRetain");
    x->init = 1;
  }
  CU(rk_cu.CtxSetCurrent(x->ctx), "cuCtxSetCurrent");
  *out = x;
  return RK_OK;
}

/* lane l of device x (its stream created once); x's context is current */
static int lane_get(rk_dev *x, int l, rk_lane **out, rk_error *e) {
  if (l < 0 || l >= RK_MAX_LANES)
    l = 0;
  rk_lane *ln = &x->lane[l];
  if (l > 0 && !ln->init) {
    CU(rk_cu.StreamCreate(&ln->st, 1 /* CU_STREAM_NON_BLOCKING */),
       "cuStreamCreate");
    ln->init = 1;
  }
  *out = ln;
  return RK_OK;
}

/* copies on stream st, complete (on the host side too) when they return;
   st NULL: the synchronous copies of the default stream */
static CUresult h2d(CUstream st, CUdeviceptr dst, const void *src, size_t n) {
  if (st == NULL)
    return rk_cu.MemcpyHtoD(dst, src, n);
  CUresult r = rk_cu.MemcpyHtoDAsync(dst, src, n, st);
  return r != 0 ? r : rk_cu.StreamSynchronize(st);
}

static CUresult d2h(CUstream st, void *dst, CUdeviceptr src, size_t n) {
  if (st == NULL)
    return rk_cu.MemcpyDtoH(dst, src, n);
  CUresult r = rk_cu.MemcpyDtoHAsync(dst, src, n, st);
  return r != 0 ? r : rk_cu.StreamSynchronize(st);
}

static size_t cuda_describe(char *buf, size_t size) {
  rk_buf b;
  rk_buf_init(&b);
  char why[1024] = "";
  if (!rk_cu_load(why, sizeof why)) {
    rk_buf_printf(&b, "CUDA driver: not available (%s)\n", why);
  } else {
    int v = 0, n = 0;
    rk_cu.DriverGetVersion(&v);
    rk_buf_printf(&b, "CUDA driver: %d.%d\n", v / 1000, (v % 1000) / 10);
    if (rk_cu.DeviceGetCount(&n) != 0)
      n = 0;
    for (int d = 0; d < n; d++) {
      CUdevice dev;
      char name[256] = "?";
      int ma = 0, mi = 0, nsm = 0;
      size_t mem = 0;
      if (rk_cu.DeviceGet(&dev, d) != 0)
        continue;
      rk_cu.DeviceGetName(name, (int)sizeof name, dev);
      rk_cu.DeviceGetAttribute(&ma, RK_CU_ATTR_CC_MAJOR, dev);
      rk_cu.DeviceGetAttribute(&mi, RK_CU_ATTR_CC_MINOR, dev);
      rk_cu.DeviceGetAttribute(&nsm, RK_CU_ATTR_MULTIPROCESSOR_COUNT, dev);
      rk_cu.DeviceTotalMem(&mem, dev);
      rk_buf_printf(&b,
                    "GPU %d: %s, compute capability %d.%d, %d SMs, %.1f GiB\n",
                    d, name, ma, mi, nsm, (double)mem / 1073741824.0);
    }
    if (n == 0)
      rk_buf_puts(&b, "GPUs: none found\n");
  }
  if (!rk_nvrtc_load(why, sizeof why)) {
    rk_buf_printf(&b, "NVRTC: not available (%s)\n", why);
  } else {
    int v = rk_nvrtc_version();
    rk_buf_printf(&b, "NVRTC: %d.%d (%s), newest arch sm_%d\n", v / 1000,
                  (v % 1000) / 10, rk_nvrtc_libname(), rk_nvrtc_max_arch());
  }
  size_t len = b.len;
  if (buf && size)
    snprintf(buf, size, "%s", b.s ? b.s : "");
  rk_buf_free(&b);
  return len;
}

static void cuda_unload(rk_kernel *k) {
  if (!k)
    return;
  if (k->handle && rk_cu.ModuleUnload) {
    rk_cuda_aux *a = k->aux;
    if (a && a->device >= 0 && a->device < RK_MAXDEV &&
        devs[a->device].init > 0)
      rk_cu.CtxSetCurrent(devs[a->device].ctx);
    rk_cu.ModuleUnload((CUmodule)k->handle);
    if (a && a->merge_module)
      rk_cu.ModuleUnload(a->merge_module);
  }
  free(k->aux);
  k->handle = k->fn = k->aux = NULL;
}

int rk_cuda_meminfo(int device, double *free_bytes, double *total_bytes,
                    double *held, double *pipelined, double *parts) {
  rk_dev *x;
  rk_error e;
  size_t fr = 0, tot = 0;
  if (dev_get(device, &x, &e) != RK_OK)
    return -1;
  if (rk_cu.MemGetInfo(&fr, &tot) != 0)
    return -1;
  *free_bytes = (double)fr;
  *total_bytes = (double)tot;
  *held = (double)held_bytes;
  *pipelined = (double)pipe_calls;
  *parts = (double)last_parts;
  return 0;
}

/* ---- kernels: target, compile, load ------------------------------------- */

static int cuda_target(const rk_options *o, rk_target *t, rk_error *e) {
  rk_dev *x;
  char target[96];
  int rc = dev_get(o->device, &x, e);
  if (rc != RK_OK)
    return rc;
  if (!rk_nvrtc_target(x->major, x->minor, o->quick, target, sizeof target))
    return rk_err(e, RK_EUNSUPPORTED, -1, "NVRTC is not available");
  rk_buf_puts(&t->text, target);
  t->ext = strstr(target, "/sm_") ? "cubin" : "ptx";
  t->per_device = 1;
  return t->text.oom ? rk_err(e, RK_ENOMEM, -1, "out of memory") : RK_OK;
}

static int cuda_source(const rk_formula *f, const rk_cg_config *c,
                       const char *key, rk_buf *out, rk_error *e) {
  return rk_cg_cuda_source(f, c, key, out, e);
}

static int cuda_compile(const rk_options *o, const rk_target *t,
                        const char *src, const char *dir, rk_image *img,
                        rk_error *e) {
  rk_dev *x;
  int cubin = 0;
  (void)dir;
  int rc = dev_get(o->device, &x, e);
  if (rc != RK_OK)
    return rc;
  rk_say(o, "compiling the CUDA kernel with NVRTC (%s)",
         t->text.s ? t->text.s : "");
  return rk_nvrtc_compile_kernel(src, "rkeops_kernel.cu", x->major, x->minor,
                                 o->quick, &img->data, &img->size, &cubin, e);
}

static int cuda_load(const rk_options *o, const rk_formula *f,
                     const rk_cg_config *c, const rk_image *img,
                     const char *key, rk_kernel *k, rk_error *e) {
  char elog[4096] = "";
  int opts[2] = {RK_CU_JIT_ERROR_LOG_BUFFER,
                 RK_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[2] = {elog, (void *)(size_t)sizeof elog};
  CUmodule m = NULL, mg = NULL;
  CUfunction fm = NULL, fg = NULL;
  rk_dev *x;
  (void)key; /* the image's key is checked by the cache trailer */
  int rc = dev_get(o->device, &x, e);
  if (rc != RK_OK)
    return rc;
  /* a pair (rk_main's module, rk_merge's: rk_nvrtc_compile_kernel) or one
     module holding both */
  const void *im = img->data, *ig = NULL;
  size_t nm = img->size, ng = 0;
  int pair = rk_cuda_pair_split(img->data, img->size, &im, &nm, &ig, &ng);
  if (pair < 0)
    return rk_err(e, RK_ECACHE, -1, "damaged CUDA kernel image");
  CUresult r = rk_cu.ModuleLoadDataEx(&m, im, 2, opts, vals);
  if (r == 0 && pair) {
    r = rk_cu.ModuleLoadDataEx(&mg, ig, 2, opts, vals);
    if (r != 0) {
      rk_cu.ModuleUnload(m);
      m = NULL;
    }
  }
  if (r != 0) {
    rc = cu_fail(e, r, "cuModuleLoadDataEx");
    if (e)
      snprintf(e->log, sizeof e->log, "%s", elog);
    return rc;
  }
  r = rk_cu.ModuleGetFunction(&fm, m, "rk_main");
  if (r == 0)
    r = rk_cu.ModuleGetFunction(&fg, pair ? mg : m, "rk_merge");
  rk_cuda_aux *a = calloc(1, sizeof *a);
  rc = r ? cu_fail(e, r, "cuModuleGetFunction") : RK_OK;
  if (rc == RK_OK && !a)
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
  /* the geometry the source was generated with: once per load */
  if (rc == RK_OK)
    rc = rk_cg_cuda_geom(f, c, &a->gm, e);
  if (rc != RK_OK) {
    free(a);
    rk_cu.ModuleUnload(m);
    if (mg)
      rk_cu.ModuleUnload(mg);
    return rc;
  }
  a->merge = fg;
  a->merge_module = mg;
  a->device = o->device;
  a->outdim = f->outdim;
  k->handle = m;
  k->fn = fm;
  k->aux = a;
  k->state_size = a->gm.state;
  k->granule = a->gm.tj;
  return RK_OK;
}

/* ---- device memory ---------------------------------------------------- */

static CUresult dev_alloc(CUdeviceptr *p, size_t bytes) {
  CUresult r = rk_cu.MemAlloc(p, bytes);
  if (r == 0)
    held_bytes += (long long)bytes;
  return r;
}

static void dev_free(CUdeviceptr p, size_t bytes) {
  if (rk_cu.MemFree(p) == 0)
    held_bytes -= (long long)bytes;
}

/* at least `need` bytes of pool on lane x (grow-only) */
static int pool_reserve(rk_lane *x, size_t need, rk_error *e) {
  if (need <= x->pool_size)
    return RK_OK;
  if (x->pool) {
    dev_free(x->pool, x->pool_size);
    x->pool = 0;
    x->pool_size = 0;
  }
  size_t sz = (need + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
  CU(dev_alloc(&x->pool, sz), "cuMemAlloc");
  x->pool_size = sz;
  return RK_OK;
}

/* ---- page-locked host staging ----------------------------------------
 * The inputs of a call are converted (run.c) into in_stage, and results
 * come back through the device's out stage, then are copied into R's
 * memory by all threads: copies from and to page-locked memory run at full
 * bus speed, pageable ones through the driver's own staging at about half
 * of it.  Both grow (by at least doubling) up to RK_STAGE_MAX and are kept
 * until release; beyond it, or when locking fails, the caller's memory is
 * used. */
#define RK_STAGE_MAX      ((size_t)512 << 20)
#define RK_STAGE_OUT_MIN  ((size_t)1 << 20)
#define RK_STAGE_PAR_ROWS ((int64_t)1 << 15)
static stage_buf in_stage;

static void stage_drop(stage_buf *b) {
  if (b->p) {
    if (rk_cu.MemHostUnregister)
      rk_cu.MemHostUnregister(b->p);
    free(b->p);
  }
  b->p = NULL;
  b->size = 0;
}

/* at least `bytes` of b, NULL when it cannot be had; a context must be
   current (registration needs one) */
static void *stage_get(stage_buf *b, size_t bytes) {
  if (bytes <= b->size)
    return b->p;
  if (bytes > RK_STAGE_MAX || rk_cu.MemHostRegister == NULL)
    return NULL;
  size_t sz = b->size * 2 > bytes ? b->size * 2 : bytes;
  if (sz > RK_STAGE_MAX)
    sz = RK_STAGE_MAX;
  sz = (sz + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
  stage_drop(b);
  void *p = NULL;
  if (posix_memalign(&p, 4096, sz) != 0)
    return NULL;
  if (rk_cu.MemHostRegister(p, sz, 1 /* PORTABLE: every context */) != 0) {
    free(p);
    return NULL;
  }
  b->p = p;
  b->size = sz;
  return p;
}

static void *cuda_staging(const rk_options *o, size_t bytes) {
  rk_error e;
  rk_err_clear(&e);
  rk_dev *x;
  if (dev_get(o->device, &x, &e) != RK_OK)
    return NULL;
  return stage_get(&in_stage, bytes);
}

static void cuda_release(void) {
  for (int d = 0; d < RK_MAXDEV; d++)
    if (devs[d].init > 0) {
      rk_cu.CtxSetCurrent(devs[d].ctx);
      for (int l = 0; l < RK_MAX_LANES; l++) {
        rk_lane *ln = &devs[d].lane[l];
        if (ln->pool)
          dev_free(ln->pool, ln->pool_size);
        ln->pool = 0;
        ln->pool_size = 0;
        stage_drop(&ln->out);
        stage_drop(&ln->img);
        if (ln->init && ln->st)
          rk_cu.StreamDestroy(ln->st);
        ln->st = NULL;
        ln->init = 0;
        if (ln->pipe_init > 0) {
          for (int q = 0; q < RK_PIPE_MAX; q++) {
            rk_cu.EventDestroy(ln->ev_in[q]);
            rk_cu.EventDestroy(ln->ev_out[q]);
          }
          rk_cu.StreamDestroy(ln->pst[0]);
          rk_cu.StreamDestroy(ln->pst[1]);
        }
        ln->pipe_init = 0;
      }
      stage_drop(&in_stage); /* with the first device's context current */
    }
}

/* ---- running ------------------------------------------------------------ */

typedef struct plan {
  int64_t bi, bj; /* rows / points per device block */
  int parts;      /* reduction parts over blockIdx.y (1: none) */
  size_t off_in, off_out, off_st, total;
} plan;

#define RK_PAIRS_PER_LAUNCH 2e12
#define ALIGN256(x)         (((x) + 255) & ~(size_t)255)

static void plan_layout(plan *p, size_t pbytes, size_t obytes, size_t ibytes,
                        size_t outb, size_t stb, int nblocksj, int states) {
  size_t st =
      (p->parts > 1 || nblocksj > 1 || states) ? stb * (size_t)p->parts : 0;
  p->off_in = ALIGN256(pbytes) + ALIGN256(obytes * (size_t)p->bi);
  p->off_out = p->off_in + ALIGN256(ibytes * (size_t)p->bj);
  p->off_st = p->off_out + ALIGN256(outb * (size_t)p->bi);
  p->total = p->off_st + ALIGN256(st * (size_t)p->bi) + 256;
}

/* number of reduction parts (blockIdx.y) that fills the GPU's waves best:
   minimises ceil(blocks * p / capacity) / p, the time in units of one
   block's full work, keeping at least two tiles per part */
static int choose_parts(rk_dev *x, rk_kernel *k, const rk_cuda_geom *gm,
                        int64_t nout, int64_t nred) {
  rk_cuda_aux *a = k->aux;
  if (a->occ < 1) { /* once per kernel */
    int nb = 0;
    if (rk_cu.OccupancyMaxActiveBlocksPerMultiprocessor == NULL ||
        rk_cu.OccupancyMaxActiveBlocksPerMultiprocessor(&nb, (CUfunction)k->fn,
                                                        gm->tpb, 0) != 0 ||
        nb < 1)
      nb = 1;
    a->occ = nb;
  }
  int nb = a->occ;
  double cap = (double)nb * (double)x->nsm;
  /* the 4-rows-a-thread kernels (small-state Sum, Min, Max: throughput
     bound) take as long as their busiest SM's blocks, whatever the
     occupancy: count the load per SM, not the waves of full occupancy.
     H100, Gaussian sum N = 1e5 (98 blocks of rows), bench/ab-parts.R:
     parts 1 / 2 / 4 / 6 (the wave model's choice) / 8: 7.04 / 6.63 / 5.19
     / 5.66 / 5.20 ms, as ceil(98 q / 132) / q predicts (1, 1, 0.75, 0.83,
     0.75); at N = 5e4, 13 parts 2.19 ms, 8 parts 2.12 ms.  kNN (one row a
     thread, branchy) keeps the wave model: 2 parts 11.9 ms, 1 part 14.4 */
  if (gm->rb >= 4)
    cap = (double)x->nsm;
  int64_t rows_blk = (int64_t)gm->tpb * gm->rb;
  double bx = (double)((nout + rows_blk - 1) / rows_blk);
  int64_t maxp = nred / (2 * (int64_t)gm->tj);
  /* every part writes, and rk_merge reads, a state of gm->state doubles per
     row: a large state (KMin: 2K) bounds the parts (kNN K = 10 at 1e5 on an
     H200: 15 ms with 2 parts, 18 ms with 1 or 4, 23 ms with 8 and more) */
  int64_t smax = 64 / (gm->state > 1 ? gm->state : 1);
  if (smax < 2)
    smax = 2;
  if (maxp > smax)
    maxp = smax;
  /* RKEOPS_CUDA_PARTS_EXACT=n (developer knob, read per call): n parts,
     at most one a tile of points (bench/ab-parts.R times each count) */
  const char *ke = getenv("RKEOPS_CUDA_PARTS_EXACT");
  if (ke && atoi(ke) >= 1) {
    int64_t n = atoi(ke), mx = nred / (int64_t)gm->tj;
    return (int)(n < mx ? n : (mx > 1 ? mx : 1));
  }
  /* RKEOPS_CUDA_PARTS=n (developer knob, read per call): at most n parts */
  const char *kp = getenv("RKEOPS_CUDA_PARTS");
  if (kp && atoi(kp) >= 1 && atoi(kp) < maxp)
    maxp = atoi(kp);
  int best = 1;
  double best_t = 1e300;
  for (int q = 1; q <= maxp || q == 1; q++) {
    double w = (double)(int64_t)((bx * q + cap - 1) / cap);
    double t = w / q * (1.0 + 0.01 * (q - 1)); /* merges are not free */
    if (t < best_t * 0.98) {
      best_t = t;
      best = q;
    }
  }
  return best;
}

/* device copies of bound data (rk_data.dev): every used position, whole */
typedef struct cuda_bound {
  int device, n;
  size_t es;
  CUdeviceptr ptr[64];
  size_t bytes[64];
} cuda_bound;

/* one run: what the steps below share */
typedef struct cuda_call {
  rk_dev *x;
  rk_lane *ln; /* the lane the call runs on: its stream, pool and stages */
  CUstream st; /* ln->st */
  rk_kernel *k;
  const rk_cuda_geom *gm;
  const rk_formula *f;
  const rk_options *o;
  const rk_data *d;
  const rk_span *s;
  const cuda_bound *bd; /* bound data, or NULL: copy per block */
  int outer_cat, nv;
  size_t es, pbytes, obytes, ibytes, outb, stb;
  int64_t nout, nred, rows_blk, nbj;
  plan p;
  CUdeviceptr base, dptr[64];
  int64_t dld[64];
  /* a small call packs its parameters and variables into img, laid out as
     on the device from base, and copies [0, img_hi) in one go before the
     launch (one driver call instead of one per array) */
  char *img;
  size_t img_hi;
  int piped; /* run_pipe: launches on the lane's pipe stream, no polling */
} cuda_call;

/* inputs of at most this many bytes are packed (RK_PACK_MAX) */
#define RK_PACK_MAX ((size_t)1 << 20)

/* bytes from the host to dst on the device: into the packed image of
   call c, or now on c's stream */
static int put_bytes(cuda_call *c, CUdeviceptr dst, const void *src, size_t n,
                     rk_error *e) {
  if (n == 0)
    return RK_OK;
  if (c && c->img) {
    size_t off = (size_t)(dst - c->base);
    memcpy(c->img + off, src, n);
    if (off + n > c->img_hi)
      c->img_hi = off + n;
    return RK_OK;
  }
  CU(h2d(c->st, dst, src, n), "cuMemcpyHtoD");
  return RK_OK;
}

/* the packed image to the device (before a launch) */
static int put_flush(cuda_call *c, rk_error *e) {
  if (c->img && c->img_hi > 0) {
    CU(h2d(c->st, c->base, c->img, c->img_hi), "cuMemcpyHtoD");
    c->img_hi = 0;
  }
  return RK_OK;
}

/* copy components of a host SoA variable (points p0..p0+n) to the device
   at dst with leading dimension n (through put_bytes) */
static int put_var(cuda_call *c, CUdeviceptr dst, const void *src, int dim,
                   int64_t ld, int64_t p0, int64_t n, size_t es, rk_error *e) {
  if (n <= 0)
    return RK_OK;
  if (p0 == 0 && n == ld)
    return put_bytes(c, dst, src, (size_t)dim * (size_t)n * es, e);
  for (int k = 0; k < dim; k++) {
    int rc = put_bytes(c, dst + (size_t)k * (size_t)n * es,
                       (const char *)src +
                           ((size_t)k * (size_t)ld + (size_t)p0) * es,
                       (size_t)n * es, e);
    if (rc != RK_OK)
      return rc;
  }
  return RK_OK;
}

/* step 1: bytes per parameter set, per outer row, per inner point */
static void call_sizes(cuda_call *c) {
  const rk_formula *f = c->f;
  c->outer_cat = f->axis == 1 ? RK_CAT_I : RK_CAT_J;
  c->nv = f->nvars;
  c->pbytes = c->obytes = c->ibytes = 0;
  for (int v = 0; v < c->nv && !c->bd; v++) {
    int d = f->vars[v].dim, cat = f->vars[v].cat;
    if (d <= 0 || !c->d->vars[v])
      continue;
    if (cat == RK_CAT_P)
      c->pbytes += ALIGN256((size_t)d * c->es);
    else if (cat == c->outer_cat)
      c->obytes += (size_t)d * c->es;
    else
      c->ibytes += (size_t)d * c->es;
  }
  c->outb = (size_t)f->outdim * 8;
  c->stb = (size_t)c->gm->state * 8;
  c->rows_blk = (int64_t)c->gm->tpb * c->gm->rb;
  c->nout = c->s->r1 - c->s->r0;
  c->nred = c->s->j1 - c->s->j0;
}

/* step 2: the plan: everything at once when it fits, else blocks of rows
   and of points (the state stays on the device between point blocks) */
static int call_plan(cuda_call *c, rk_error *e) {
  size_t fr = 0, tot = 0;
  int states = c->s->mode != 0;
  plan *p = &c->p;
  p->bi = c->nout;
  p->bj = c->nred;
  /* states in: every part would start from them, so one part */
  p->parts =
      (c->s->mode & 1) ? 1 : choose_parts(c->x, c->k, c->gm, c->nout, c->nred);
  plan_layout(p, c->pbytes, c->obytes, c->ibytes, c->outb, c->stb, 1, states);
  /* RKEOPS_CUDA_MEMORY_LIMIT (bytes): a smaller budget, to exercise the
     blocked path in tests */
  const char *lim = getenv("RKEOPS_CUDA_MEMORY_LIMIT");
  double limit = lim && atof(lim) > 0 ? atof(lim) : 0;
  double avail;
  if (p->total <= c->ln->pool_size && (limit == 0 || p->total <= limit)) {
    avail = (double)c->ln->pool_size; /* it fits the pool: no driver query */
  } else {
    /* lanes of one device running together share its free memory */
    int nl = c->o->nlanes > 1 ? c->o->nlanes : 1;
    CU(rk_cu.MemGetInfo(&fr, &tot), "cuMemGetInfo");
    avail =
        ((double)fr / nl + (double)c->ln->pool_size) * 0.9 - 128.0 * 1048576.0;
    if (limit > 0 && limit < avail)
      avail = limit;
  }
  if ((double)p->total > avail) {
    p->parts = 1;
    for (;;) {
      int64_t nbj = (c->nred + p->bj - 1) / (p->bj > 0 ? p->bj : 1);
      plan_layout(p, c->pbytes, c->obytes, c->ibytes, c->outb, c->stb,
                  (int)(nbj > 1 ? 2 : 1), states);
      if ((double)p->total <= avail)
        break;
      if (p->bi <= c->rows_blk && p->bj <= c->gm->tj)
        return rk_err(e, RK_ENOMEM, -1,
                      "not enough free GPU memory (%.0f MiB free)",
                      (double)fr / 1048576.0);
      int shrink_j =
          p->bj > c->gm->tj &&
          (p->bi <= c->rows_blk ||
           (double)p->bj * (double)c->ibytes >=
               (double)p->bi * (double)(c->obytes + c->outb + c->stb));
      if (shrink_j)
        p->bj = (p->bj + 1) / 2;
      else
        p->bi = (p->bi + 1) / 2 > c->rows_blk ? (p->bi + 1) / 2 : c->rows_blk;
    }
  }
  c->nbj = (c->nred + p->bj - 1) / (p->bj > 0 ? p->bj : 1);
  if (c->nbj < 1)
    c->nbj = 1;
  last_parts = p->parts;
  int rc = pool_reserve(c->ln, p->total, e);
  c->base = c->ln->pool;
  return rc;
}

/* step 3: parameters, copied once (bound: pointed at) */
static int call_params(cuda_call *c, rk_error *e) {
  size_t off = 0;
  for (int v = 0; v < c->nv && v < 64; v++) {
    int d = c->f->vars[v].dim;
    if (d <= 0 || !c->d->vars[v] || c->f->vars[v].cat != RK_CAT_P)
      continue;
    c->dld[v] = 1;
    if (c->bd) {
      c->dptr[v] = c->bd->ptr[v];
      continue;
    }
    c->dptr[v] = c->base + off;
    int rc = put_bytes(c, c->dptr[v], c->d->vars[v], (size_t)d * c->es, e);
    if (rc != RK_OK)
      return rc;
    off += ALIGN256((size_t)d * c->es);
  }
  return RK_OK;
}

/* step 4: the variables of category cat (outer or inner) for points
   [p0, p0 + n) of the span's range starting at g0 */
static int call_vars(cuda_call *c, int outer, int64_t p0, int64_t n,
                     rk_error *e) {
  size_t o2 = outer ? ALIGN256(c->pbytes) : c->p.off_in;
  int64_t g0 = (outer ? c->s->r0 : c->s->j0) + p0;
  for (int v = 0; v < c->nv && v < 64; v++) {
    int d = c->f->vars[v].dim, cat = c->f->vars[v].cat;
    if (d <= 0 || !c->d->vars[v] || cat == RK_CAT_P)
      continue;
    if ((cat == c->outer_cat) != outer)
      continue;
    if (c->bd) { /* in place: the whole variable is on the device */
      c->dptr[v] = c->bd->ptr[v] + (size_t)g0 * c->es;
      c->dld[v] = c->d->npts[v];
      continue;
    }
    c->dptr[v] = c->base + o2;
    c->dld[v] = n;
    int rc =
        put_var(c, c->dptr[v], c->d->vars[v], d, c->d->ld[v], g0, n, c->es, e);
    if (rc != RK_OK)
      return rc;
    o2 += (size_t)d * c->es * (size_t)(outer ? c->p.bi : n);
  }
  return RK_OK;
}

/* step 5: states of rows [i0, i0 + ni) between the host (the span's st)
   and the device block (slot s at [s * ni + r]) */
static int call_states(cuda_call *c, int64_t i0, int64_t ni, int down,
                       rk_error *e) {
  CUdeviceptr dst = c->base + c->p.off_st;
  for (int q = 0; q < c->gm->state; q++) {
    double *h = c->s->st + (size_t)q * (size_t)c->s->ldst + (size_t)i0;
    CUdeviceptr dv = dst + (size_t)q * (size_t)ni * 8;
    if (down)
      CU(d2h(c->st, h, dv, (size_t)ni * 8), "cuMemcpyDtoH");
    else
      CU(h2d(c->st, dv, h, (size_t)ni * 8), "cuMemcpyHtoD");
  }
  return RK_OK;
}

/* step 6: the launches of one (row block, point block), rows [ra, rb) of
   the block's ni (all of them but in a pipelined call), in chunks of rows
   of at most RK_PAIRS_PER_LAUNCH pairs, with rk_merge when the reduction
   is split over blockIdx.y; the interrupt callback between launches (a
   pipelined call polls it while it waits for its chunks instead) */
static int call_launch(cuda_call *c, int64_t i0, int64_t ni, int64_t jb,
                       int64_t j0, int64_t nj, int64_t ra, int64_t rb,
                       rk_error *e) {
  const rk_cuda_geom *gm = c->gm;
  rk_cuda_aux *a = c->k->aux;
  int last = jb == c->nbj - 1, st_out = (c->s->mode & 2) != 0;
  long long lnj = nj, jbase = c->s->j0 + j0, ldo = ni, ldst = ni;
  long long jchunk = nj, stpart = (long long)gm->state * ni;
  int mode = (jb > 0 || (c->s->mode & 1) ? 1 : 0) | (!last || st_out ? 2 : 0);
  if (c->p.parts > 1) {
    jchunk = (nj + c->p.parts - 1) / c->p.parts;
    jchunk = (jchunk + gm->tj - 1) / gm->tj * gm->tj;
    mode = 2;
  }
  unsigned gy = c->p.parts > 1 ? (unsigned)((nj + jchunk - 1) / jchunk) : 1;
  if (gy < 1)
    gy = 1;
  int64_t rchunk = ni;
  if ((double)ni * (double)nj > RK_PAIRS_PER_LAUNCH) {
    rchunk =
        (int64_t)(RK_PAIRS_PER_LAUNCH / (double)nj) / c->rows_blk * c->rows_blk;
    if (rchunk < c->rows_blk)
      rchunk = c->rows_blk;
  }
  for (int64_t r0 = ra; r0 < rb; r0 += rchunk) {
    long long lni = rb - r0 < rchunk ? rb - r0 : rchunk;
    CUdeviceptr rptr[64], dout = c->base + c->p.off_out + (size_t)r0 * 8,
                          dst = c->base + c->p.off_st + (size_t)r0 * 8;
    void *params[10 + 2 * 64];
    params[0] = &lni;
    params[1] = &lnj;
    params[2] = &jbase;
    params[3] = &jchunk;
    params[4] = &dout;
    params[5] = &ldo;
    params[6] = &dst;
    params[7] = &ldst;
    params[8] = &stpart;
    params[9] = &mode;
    for (int v = 0; v < c->nv && v < 64; v++) {
      int outer = c->f->vars[v].cat == c->outer_cat && c->dptr[v];
      rptr[v] = outer ? c->dptr[v] + (size_t)r0 * c->es : c->dptr[v];
      params[10 + 2 * v] = &rptr[v];
      params[11 + 2 * v] = &c->dld[v];
    }
    unsigned gx = (unsigned)((lni + c->rows_blk - 1) / c->rows_blk);
    CU(rk_cu.LaunchKernel((CUfunction)c->k->fn, gx, gy, 1, (unsigned)gm->tpb, 1,
                          1, 0, c->st, params, NULL),
       "cuLaunchKernel(rk_main)");
    if (c->p.parts > 1) {
      int np = (int)gy, mmode = st_out ? 2 : 0;
      void *mp[8] = {&lni, &np, &dst, &ldst, &stpart, &dout, &ldo, &mmode};
      unsigned mx = (unsigned)((lni + gm->tpb - 1) / gm->tpb);
      CU(rk_cu.LaunchKernel(a->merge, mx, 1, 1, (unsigned)gm->tpb, 1, 1, 0,
                            c->st, mp, NULL),
         "cuLaunchKernel(rk_merge)");
    }
    int more = r0 + rchunk < ni || !last || i0 + c->p.bi < c->nout;
    if (c->o->interrupted && more && !c->piped) {
      CU(c->st ? rk_cu.StreamSynchronize(c->st) : rk_cu.CtxSynchronize(),
         "cuStreamSynchronize");
      if (c->o->interrupted(c->o->interrupt_data))
        return rk_err(e, RK_EINTERRUPT, -1, "interrupted");
    }
  }
  return RK_OK;
}

/* copying staged results [q * ni + r] to out[q * ldo + i0 + r], rows
   [a, b) (by all threads) */
typedef struct out_job {
  const double *src;
  double *out;
  int64_t ni, i0, ldo;
  int outdim;
} out_job;

static int out_block(void *ctx, int64_t a, int64_t b) {
  const out_job *j = ctx;
  for (int q = 0; q < j->outdim; q++)
    memcpy(j->out + (size_t)q * (size_t)j->ldo + (size_t)(j->i0 + a),
           j->src + (size_t)q * (size_t)j->ni + (size_t)a,
           (size_t)(b - a) * sizeof(double));
  return 0;
}

/* step 7: the results of rows [i0, i0 + ni) to the host */
static int call_results(cuda_call *c, int64_t i0, int64_t ni, rk_error *e) {
  CUdeviceptr dout = c->base + c->p.off_out;
  double *out = c->s->out;
  size_t ldo = (size_t)c->s->ldo;
  size_t bytes = (size_t)c->f->outdim * (size_t)ni * sizeof(double);
  void *st = bytes >= RK_STAGE_OUT_MIN ? stage_get(&c->ln->out, bytes) : NULL;
  if (st != NULL) {
    CU(d2h(c->st, st, dout, bytes), "cuMemcpyDtoH");
    out_job j = {st, out, ni, i0, (int64_t)ldo, c->f->outdim};
    int nt = c->s->nthreads > 0 ? c->s->nthreads : 1;
    if (nt < 2 ||
        rk_par_rows(nt, 0, ni, RK_STAGE_PAR_ROWS, 0, out_block, &j) != 0)
      out_block(&j, 0, ni);
    return RK_OK;
  }
  if (ni == c->nout && ldo == (size_t)ni) {
    CU(d2h(c->st, out, dout, c->outb * (size_t)ni), "cuMemcpyDtoH");
    return RK_OK;
  }
  for (int q = 0; q < c->f->outdim; q++)
    CU(d2h(c->st, out + (size_t)q * ldo + (size_t)i0,
           dout + (size_t)q * (size_t)ni * 8, (size_t)ni * 8),
       "cuMemcpyDtoH");
  return RK_OK;
}

/* ---- pipelined calls ---------------------------------------------------- */

/* the lane's pipe streams and events, made once; RK_OK with ln->pipe_init
   1, or ln->pipe_init -1 when the driver has no event API */
static int lane_pipe(rk_lane *ln, rk_error *e) {
  if (ln->pipe_init != 0)
    return RK_OK;
  if (!rk_cu.EventCreate || !rk_cu.EventRecord || !rk_cu.EventSynchronize ||
      !rk_cu.EventDestroy || !rk_cu.StreamWaitEvent) {
    ln->pipe_init = -1;
    return RK_OK;
  }
  for (int k = 0; k < 2; k++)
    CU(rk_cu.StreamCreate(&ln->pst[k], 1 /* CU_STREAM_NON_BLOCKING */),
       "cuStreamCreate");
  for (int q = 0; q < RK_PIPE_MAX; q++) {
    CU(rk_cu.EventCreate(&ln->ev_in[q], 2 /* CU_EVENT_DISABLE_TIMING */),
       "cuEventCreate");
    CU(rk_cu.EventCreate(&ln->ev_out[q], 2), "cuEventCreate");
  }
  ln->pipe_init = 1;
  return RK_OK;
}

/* the number of chunks of rows a call runs in (0: not pipelined).  A call
   whose copies cost about as much as its kernel (the skewed shape: many
   rows, few points) overlaps the copies of a chunk's outer variables in,
   the kernel of the previous chunk and the results of the one before out
   (H100, Gaussian sum, M = 1e6 rows, N = 1e3 points, medians in one run:
   float32 2.04 -> 1.43 ms and 1.79 -> 1.53 ms, float64 4.85 -> 4.47 ms and
   5.36 -> 4.41 ms).  Only a call of one row block and one point block,
   with no state in or out and no bound data (already on the device), of
   at least 4 MB of rows in and results out, at most RK_PIPE_PAIRS pairs a
   byte of them (beyond, the kernel dominates; chunks of it fill the GPU
   less well: float64 N = 1e4, 1000 pairs a byte, 23 -> 37 ms in one run)
   and at least RK_PIPE_MIN_N points (with fewer the kernel is trivial and
   the chunks' extra copies cost more than the overlap gains: float64
   N = 1, 2.64 -> 2.96 ms).  RKEOPS_CUDA_PIPE (developer knob, read per
   call): 0 never, 1 whenever the call's form allows (tests). */
#define RK_PIPE_MIN_BYTES ((double)(4 << 20))
#define RK_PIPE_MIN_N     256
#define RK_PIPE_PAIRS     100.0
#define RK_PIPE_ROWS      65536
static int pipe_rows(cuda_call *c) {
  const char *kp = getenv("RKEOPS_CUDA_PIPE");
  int knob = kp && kp[0] ? atoi(kp) : -1;
  if (knob == 0 || c->bd || c->img || c->s->mode != 0 || c->nred < 1 ||
      c->p.bi < c->nout || c->nbj != 1 || c->f->outdim < 1)
    return 0;
  int64_t nch = c->nout / RK_PIPE_ROWS;
  if (knob == 1) {
    nch = c->nout / c->rows_blk;
  } else {
    double bytes = (double)(c->obytes + c->outb) * (double)c->nout;
    if (bytes < RK_PIPE_MIN_BYTES || c->nred < RK_PIPE_MIN_N ||
        (double)c->nout * (double)c->nred > RK_PIPE_PAIRS * bytes)
      return 0;
  }
  if (nch > RK_PIPE_MAX)
    nch = RK_PIPE_MAX;
  if (nch < 2)
    return 0;
  size_t ob = (size_t)c->f->outdim * (size_t)c->nout * sizeof(double);
  if (stage_get(&c->ln->out, ob) == NULL)
    return 0;
  return (int)nch;
}

/* rows [ra, ra + n) of the outer variables to the device block laid out
   as call_vars lays it (leading dimension nout), on stream st */
static int pipe_put(cuda_call *c, int64_t ra, int64_t n, CUstream st,
                    rk_error *e) {
  size_t o2 = ALIGN256(c->pbytes);
  int64_t ni = c->nout;
  for (int v = 0; v < c->nv && v < 64; v++) {
    int d = c->f->vars[v].dim, cat = c->f->vars[v].cat;
    if (d <= 0 || !c->d->vars[v] || cat != c->outer_cat)
      continue;
    c->dptr[v] = c->base + o2;
    c->dld[v] = ni;
    for (int k = 0; k < d; k++) {
      const char *src = (const char *)c->d->vars[v] +
                        ((size_t)k * (size_t)c->d->ld[v] +
                         (size_t)(c->s->r0 + ra)) *
                            c->es;
      CUdeviceptr dst = c->dptr[v] + ((size_t)k * (size_t)ni + ra) * c->es;
      CU(rk_cu.MemcpyHtoDAsync(dst, src, (size_t)n * c->es, st),
         "cuMemcpyHtoDAsync");
    }
    o2 += (size_t)d * c->es * (size_t)c->p.bi;
  }
  return RK_OK;
}

/* a call in nch chunks of rows: the inner variables first (synchronous),
   then per chunk its rows in on pst[0], the kernel and its results out on
   pst[1] (after the chunk's copy, by an event), all enqueued at once; the
   host copies each chunk's results into the output as they land, polling
   the interrupt callback between chunks.  Every stream is idle on return,
   error or not (the pool and stages are reused by the next call). */
static int run_pipe(cuda_call *c, int nch, rk_error *e) {
  rk_lane *ln = c->ln;
  int64_t ni = c->nout, nred = c->nred;
  int64_t step = (ni + nch - 1) / nch;
  step = (step + c->rows_blk - 1) / c->rows_blk * c->rows_blk;
  int outdim = c->f->outdim;
  double *stage = ln->out.p; /* pipe_rows made it hold the results */
  CUdeviceptr dout = c->base + c->p.off_out;
  int rc = call_vars(c, 0, 0, nred, e);
  if (rc == RK_OK)
    rc = put_flush(c, e);
  /* the parameters and inner variables went by the lane's stream: on lane
     0 (the legacy default stream) a copy from pageable memory returns
     before its DMA has landed, and the pipe streams do not wait for that
     stream, so wait here */
  CUresult sr = rc == RK_OK ? rk_cu.StreamSynchronize(c->st) : 0;
  if (sr != 0)
    rc = cu_fail(e, sr, "cuStreamSynchronize");
  CUstream main_st = c->st;
  c->piped = 1;
  c->st = ln->pst[1];
  int nq = 0;
  for (int64_t ra = 0; rc == RK_OK && ra < ni; ra += step, nq++) {
    int64_t n = ni - ra < step ? ni - ra : step;
    rc = pipe_put(c, ra, n, ln->pst[0], e);
    if (rc != RK_OK)
      break;
    CUresult r = rk_cu.EventRecord(ln->ev_in[nq], ln->pst[0]);
    if (r == 0)
      r = rk_cu.StreamWaitEvent(ln->pst[1], ln->ev_in[nq], 0);
    if (r != 0) {
      rc = cu_fail(e, r, "cuEventRecord");
      break;
    }
    rc = call_launch(c, 0, ni, 0, 0, nred, ra, ra + n, e);
    for (int q = 0; rc == RK_OK && q < outdim; q++) {
      size_t off = (size_t)q * (size_t)ni + (size_t)ra;
      r = rk_cu.MemcpyDtoHAsync(stage + off, dout + off * 8,
                                (size_t)n * sizeof(double), ln->pst[1]);
      if (r != 0)
        rc = cu_fail(e, r, "cuMemcpyDtoHAsync");
    }
    if (rc == RK_OK && (r = rk_cu.EventRecord(ln->ev_out[nq], ln->pst[1])) != 0)
      rc = cu_fail(e, r, "cuEventRecord");
  }
  int nt = c->s->nthreads > 0 ? c->s->nthreads : 1;
  int64_t ra = 0;
  for (int q = 0; rc == RK_OK && q < nq; q++, ra += step) {
    int64_t n = ni - ra < step ? ni - ra : step;
    CUresult r = rk_cu.EventSynchronize(ln->ev_out[q]);
    if (r != 0) {
      rc = cu_fail(e, r, "cuEventSynchronize");
      break;
    }
    /* rows [ra, ra + n) of the stage to the output */
    out_job j = {stage + ra, c->s->out + ra, ni, 0, c->s->ldo, outdim};
    if (nt < 2 || n < 2 * RK_STAGE_PAR_ROWS ||
        rk_par_rows(nt, 0, n, RK_STAGE_PAR_ROWS, 0, out_block, &j) != 0)
      out_block(&j, 0, n);
    if (q + 1 < nq && c->o->interrupted &&
        c->o->interrupted(c->o->interrupt_data))
      rc = rk_err(e, RK_EINTERRUPT, -1, "interrupted");
  }
  /* idle streams whatever happened */
  rk_cu.StreamSynchronize(ln->pst[0]);
  rk_cu.StreamSynchronize(ln->pst[1]);
  c->st = main_st;
  c->piped = 0;
  if (rc == RK_OK)
    pipe_calls++;
  return rc;
}

static int cuda_run(rk_kernel *k, const rk_formula *f, const rk_options *o,
                    const rk_data *d, const rk_span *s, rk_error *e) {
  cuda_call c;
  memset(&c, 0, sizeof c);
  rk_cuda_aux *a = k->aux;
  int rc = dev_get(a->device, &c.x, e);
  if (rc == RK_OK)
    rc = lane_get(c.x, o->lane, &c.ln, e);
  if (rc != RK_OK)
    return rc;
  c.st = c.ln->st;
  if (f->nvars > 64)
    return rk_err(e, RK_EUNSUPPORTED, -1,
                  "the CUDA backend handles at most 64 variables");
  c.k = k;
  c.gm = &a->gm;
  c.f = f;
  c.o = o;
  c.d = d;
  c.s = s;
  c.bd = d->dev;
  c.es = o->precision == 64 ? 8 : 4;
  if (c.bd && (c.bd->device != a->device || c.bd->es != c.es))
    return rk_err(e, RK_EINTERNAL, -1, "bound data of another device");
  call_sizes(&c);
  if (c.nout <= 0)
    return RK_OK;
  rc = call_plan(&c, e);
  /* one block of rows and of points, small inputs: packed, one copy */
  if (rc == RK_OK && !c.bd && c.p.bi >= c.nout && c.nbj == 1 &&
      c.p.off_out <= RK_PACK_MAX)
    c.img = stage_get(&c.ln->img, c.p.off_out);
  if (rc == RK_OK)
    rc = call_params(&c, e);
  int nch = rc == RK_OK ? pipe_rows(&c) : 0;
  if (nch >= 2 && (rc = lane_pipe(c.ln, e)) == RK_OK && c.ln->pipe_init > 0)
    return run_pipe(&c, nch, e);
  for (int64_t i0 = 0; rc == RK_OK && i0 < c.nout; i0 += c.p.bi) {
    int64_t ni = c.nout - i0 < c.p.bi ? c.nout - i0 : c.p.bi;
    rc = call_vars(&c, 1, i0, ni, e);
    if (rc == RK_OK && (s->mode & 1))
      rc = call_states(&c, i0, ni, 0, e);
    for (int64_t jb = 0; rc == RK_OK && jb < c.nbj; jb++) {
      int64_t j0 = jb * c.p.bj,
              nj = c.nred - j0 < c.p.bj ? c.nred - j0 : c.p.bj;
      if (c.nred == 0)
        nj = 0;
      if (i0 == 0 || c.nbj > 1) /* inner variables: once unless blocked */
        rc = call_vars(&c, 0, j0, nj, e);
      if (rc == RK_OK)
        rc = put_flush(&c, e);
      if (rc == RK_OK)
        rc = call_launch(&c, i0, ni, jb, j0, nj, 0, ni, e);
    }
    if (rc == RK_OK)
      rc = (s->mode & 2) ? call_states(&c, i0, ni, 1, e)
                         : call_results(&c, i0, ni, e);
  }
  return rc;
}

/* merging states on the device: the host parts uploaded as they are laid
   out, rk_merge, the results (or merged states) back.  On lane 0: merges
   are asked for on the calling thread, never beside a run of lane 0 */
static int cuda_merge(rk_kernel *k, const rk_merge_args *m, rk_error *e) {
  rk_cuda_aux *a = k->aux;
  rk_dev *x;
  int rc = dev_get(a->device, &x, e);
  if (rc != RK_OK || m->n <= 0)
    return rc;
  size_t stn = (size_t)(m->nparts - 1) * (size_t)m->stpart +
               (size_t)a->gm.state * (size_t)m->ldst;
  size_t outn = (size_t)a->outdim * (size_t)m->n;
  rk_lane *ln = &x->lane[0];
  rc = pool_reserve(ln, ALIGN256(stn * 8) + outn * 8 + 256, e);
  if (rc != RK_OK)
    return rc;
  CUdeviceptr dst = ln->pool, dout = ln->pool + ALIGN256(stn * 8);
  CU(rk_cu.MemcpyHtoD(dst, m->st, stn * 8), "cuMemcpyHtoD");
  long long lni = m->n, ldst = m->ldst, stpart = m->stpart, ldo = m->n;
  int np = m->nparts, mode = m->mode;
  void *mp[8] = {&lni, &np, &dst, &ldst, &stpart, &dout, &ldo, &mode};
  unsigned mx = (unsigned)((m->n + a->gm.tpb - 1) / a->gm.tpb);
  CU(rk_cu.LaunchKernel(a->merge, mx, 1, 1, (unsigned)a->gm.tpb, 1, 1, 0, NULL,
                        mp, NULL),
     "cuLaunchKernel(rk_merge)");
  if (m->mode & 2) {
    CU(rk_cu.MemcpyDtoH(m->st, dst, (size_t)a->gm.state * (size_t)m->ldst * 8),
       "cuMemcpyDtoH");
    return RK_OK;
  }
  for (int q = 0; q < a->outdim; q++)
    CU(rk_cu.MemcpyDtoH(m->out + (size_t)q * (size_t)m->ldo,
                        dout + (size_t)q * (size_t)m->n * 8, (size_t)m->n * 8),
       "cuMemcpyDtoH");
  return RK_OK;
}

/* ---- bound data: inputs kept in device memory between calls ------------- */

static void cuda_unbind(rk_data *d) {
  cuda_bound *bd = d->dev;
  if (!bd)
    return;
  if (bd->device >= 0 && bd->device < RK_MAXDEV && devs[bd->device].init > 0) {
    rk_cu.CtxSetCurrent(devs[bd->device].ctx);
    for (int v = 0; v < bd->n && v < 64; v++)
      if (bd->ptr[v])
        dev_free(bd->ptr[v], bd->bytes[v]);
  }
  free(bd);
  d->dev = NULL;
}

static int cuda_rebind(const rk_formula *f, const rk_options *o, rk_data *d,
                       int v, rk_error *e) {
  cuda_bound *bd = d->dev;
  rk_dev *x;
  if (!bd || v < 0 || v >= bd->n || v >= 64 || !bd->ptr[v])
    return rk_err(e, RK_EINTERNAL, -1, "no bound data at position %d", v);
  int rc = dev_get(bd->device, &x, e);
  cuda_call c;
  memset(&c, 0, sizeof c);
  if (rc == RK_OK)
    rc = lane_get(x, o ? o->lane : 0, &c.ln, e);
  if (rc != RK_OK)
    return rc;
  c.st = c.ln->st; /* the copy is done when a kernel of the lane reads it */
  int dim = f->vars[v].dim;
  return put_var(&c, bd->ptr[v], d->vars[v], dim, d->ld[v], 0, d->npts[v],
                 bd->es, e);
}

static int cuda_bind(rk_kernel *k, const rk_formula *f, const rk_options *o,
                     rk_data *d, rk_error *e) {
  rk_cuda_aux *a = k->aux;
  rk_dev *x;
  int rc = dev_get(a->device, &x, e);
  if (rc != RK_OK)
    return rc;
  if (f->nvars > 64)
    return rk_err(e, RK_EUNSUPPORTED, -1,
                  "the CUDA backend handles at most 64 variables");
  cuda_bound *bd = calloc(1, sizeof *bd);
  if (!bd)
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  bd->device = a->device;
  bd->n = f->nvars;
  bd->es = o->precision == 64 ? 8 : 4;
  d->dev = bd;
  for (int v = 0; v < f->nvars; v++) {
    int dim = f->vars[v].dim;
    if (dim <= 0 || !d->vars[v])
      continue;
    size_t n = (size_t)dim * (size_t)(d->npts[v] > 0 ? d->npts[v] : 1);
    CUresult r = dev_alloc(&bd->ptr[v], n * bd->es);
    bd->bytes[v] = r == 0 ? n * bd->es : 0;
    if (r != 0) {
      rc = cu_fail(e, r, "cuMemAlloc");
      bd->ptr[v] = 0;
    }
    if (rc == RK_OK)
      rc = cuda_rebind(f, o, d, v, e);
    if (rc != RK_OK) {
      cuda_unbind(d);
      return rc;
    }
  }
  return RK_OK;
}

/* page-locked host memory: copies at full bus speed (pageable ones go
   through a staging buffer at about half of it) */
static int cuda_pin(const rk_options *o, void *p, size_t bytes) {
  rk_error e;
  rk_err_clear(&e);
  rk_dev *x;
  if (dev_get(o->device, &x, &e) != RK_OK || rk_cu.MemHostRegister == NULL)
    return -1;
  return rk_cu.MemHostRegister(p, bytes, 1 /* PORTABLE */) == 0 ? 0 : -1;
}

static void cuda_unpin(void *p) {
  if (rk_cu.MemHostUnregister)
    rk_cu.MemHostUnregister(p);
}

const rk_backend_i rk_backend_cuda = {
    .name = "cuda",
    .id = RK_BACKEND_GPU,
    .abi = 2,
    .cfg_mask = 2,
    .image_kind = RK_IMAGE_BLOB,
    .available = cuda_available,
    .describe = cuda_describe,
    .target = cuda_target,
    .source = cuda_source,
    .compile = cuda_compile,
    .load = cuda_load,
    .run = cuda_run,
    .merge = cuda_merge,
    .unload = cuda_unload,
    .release = cuda_release,
    .bind = cuda_bind,
    .rebind = cuda_rebind,
    .unbind = cuda_unbind,
    .pin = cuda_pin,
    .unpin = cuda_unpin,
    .staging = cuda_staging,
};
