/*
 * be-cuda.c -- the CUDA backend: devices and their primary contexts, the
 * kernel cache (memory, then disk blobs, else NVRTC), a grow-only pool of
 * device memory per device, and the blocked launches of rk_main /
 * rk_merge (the kernel ABI is documented at the top of cg-cuda.c).
 *
 * A call copies each input to the device once, runs, and copies the
 * result back.  When the data do not fit in free device memory, the
 * output rows (i) and the reduction points (j) are processed in blocks;
 * the reduction state stays on the device between j-blocks (mode bits of
 * rk_main), so the combination is exact for every reduction.  When there
 * are too few output rows to fill the GPU, the reduction is split over
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

#define RK_MAXDEV 16

typedef struct rk_dev {
  int init;       /* 1 ready, -1 failed */
  CUdevice dev;
  CUcontext ctx;
  int major, minor, nsm;
  CUdeviceptr pool; /* grow-only device memory */
  size_t pool_size;
} rk_dev;

static rk_dev devs[RK_MAXDEV];

/* per loaded kernel (rk_kernel.aux) */
typedef struct rk_cuda_aux {
  CUfunction merge;
  int device;
  rk_cuda_geom gm;
} rk_cuda_aux;

static int cu_fail(rk_error *e, CUresult r, const char *what) {
  return rk_err(e, r == RK_CU_ERROR_OUT_OF_MEMORY ? RK_ENOMEM : RK_ECUDA, -1,
                "CUDA error in %s: %s", what, rk_cu_errname(r));
}

#define CU(call, what)                                                        \
  do {                                                                        \
    CUresult cu_r_ = (call);                                                  \
    if (cu_r_ != 0) return cu_fail(e, cu_r_, what);                           \
  } while (0)

int rk_cuda_available(char *why, size_t size) {
  char w[1024] = "";
  if (!rk_cu_load(w, sizeof w)) {
    if (why && size) snprintf(why, size, "%s", w);
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
    if (why && size) snprintf(why, size, "%s", w);
    return 0;
  }
  return n;
}

/* make device d current (retaining its primary context once) */
static int dev_get(int d, rk_dev **out, rk_error *e) {
  char why[1024];
  if (rk_cuda_available(why, sizeof why) <= 0)
    return rk_err(e, RK_EUNSUPPORTED, -1, "no usable GPU: %s", why);
  int n = 0;
  rk_cu.DeviceGetCount(&n);
  if (d < 0 || d >= n || d >= RK_MAXDEV)
    return rk_err(e, RK_EVALUE, -1, "no CUDA device %d (%d device%s found)",
                  d, n, n == 1 ? "" : "s");
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

size_t rk_cuda_describe(char *buf, size_t size) {
  rk_buf b;
  rk_buf_init(&b);
  char why[1024] = "";
  if (!rk_cu_load(why, sizeof why)) {
    rk_buf_printf(&b, "CUDA driver: not available (%s)\n", why);
  } else {
    int v = 0, n = 0;
    rk_cu.DriverGetVersion(&v);
    rk_buf_printf(&b, "CUDA driver: %d.%d\n", v / 1000, (v % 1000) / 10);
    if (rk_cu.DeviceGetCount(&n) != 0) n = 0;
    for (int d = 0; d < n; d++) {
      CUdevice dev;
      char name[256] = "?";
      int ma = 0, mi = 0, nsm = 0;
      size_t mem = 0;
      if (rk_cu.DeviceGet(&dev, d) != 0) continue;
      rk_cu.DeviceGetName(name, (int)sizeof name, dev);
      rk_cu.DeviceGetAttribute(&ma, RK_CU_ATTR_CC_MAJOR, dev);
      rk_cu.DeviceGetAttribute(&mi, RK_CU_ATTR_CC_MINOR, dev);
      rk_cu.DeviceGetAttribute(&nsm, RK_CU_ATTR_MULTIPROCESSOR_COUNT, dev);
      rk_cu.DeviceTotalMem(&mem, dev);
      rk_buf_printf(&b,
                    "GPU %d: %s, compute capability %d.%d, %d SMs, %.1f GiB\n",
                    d, name, ma, mi, nsm, (double)mem / 1073741824.0);
    }
    if (n == 0) rk_buf_puts(&b, "GPUs: none found\n");
  }
  if (!rk_nvrtc_load(why, sizeof why)) {
    rk_buf_printf(&b, "NVRTC: not available (%s)\n", why);
  } else {
    int v = rk_nvrtc_version();
    rk_buf_printf(&b, "NVRTC: %d.%d (%s), newest arch sm_%d\n", v / 1000,
                  (v % 1000) / 10, rk_nvrtc_libname(), rk_nvrtc_max_arch());
  }
  size_t len = b.len;
  if (buf && size) snprintf(buf, size, "%s", b.s ? b.s : "");
  rk_buf_free(&b);
  return len;
}

void rk_cuda_unload(rk_kernel *k) {
  if (!k) return;
  if (k->handle && rk_cu.ModuleUnload) {
    rk_cuda_aux *a = k->aux;
    if (a && a->device >= 0 && a->device < RK_MAXDEV && devs[a->device].init > 0)
      rk_cu.CtxSetCurrent(devs[a->device].ctx);
    rk_cu.ModuleUnload((CUmodule)k->handle);
  }
  free(k->aux);
  k->handle = k->fn = k->aux = NULL;
}

int rk_cuda_meminfo(int device, double *free_bytes, double *total_bytes) {
  rk_dev *x;
  rk_error e;
  size_t fr = 0, tot = 0;
  if (dev_get(device, &x, &e) != RK_OK) return -1;
  if (rk_cu.MemGetInfo(&fr, &tot) != 0) return -1;
  *free_bytes = (double)fr;
  *total_bytes = (double)tot;
  return 0;
}

/* ---- kernels: memory cache, disk cache, NVRTC ---------------------------- */

static int module_load(const void *img, rk_dev *x, int device,
                       const rk_formula *f, int prec, const char *memkey,
                       rk_kernel **out, rk_error *e) {
  char elog[4096] = "";
  int opts[2] = {RK_CU_JIT_ERROR_LOG_BUFFER,
                 RK_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[2] = {elog, (void *)(size_t)sizeof elog};
  CUmodule m = NULL;
  CUfunction fm = NULL, fg = NULL;
  (void)x;
  CUresult r = rk_cu.ModuleLoadDataEx(&m, img, 2, opts, vals);
  if (r != 0) {
    int c = cu_fail(e, r, "cuModuleLoadDataEx");
    if (e) snprintf(e->log, sizeof e->log, "%s", elog);
    return c;
  }
  r = rk_cu.ModuleGetFunction(&fm, m, "rk_main");
  if (r == 0) r = rk_cu.ModuleGetFunction(&fg, m, "rk_merge");
  rk_kernel *k = calloc(1, sizeof *k);
  rk_cuda_aux *a = calloc(1, sizeof *a);
  char *kc = strdup(memkey);
  int rc = r ? cu_fail(e, r, "cuModuleGetFunction") : RK_OK;
  if (rc == RK_OK && (!k || !a || !kc))
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
  if (rc == RK_OK) rc = rk_cg_cuda_geom(f, prec, &a->gm, e);
  if (rc != RK_OK) {
    free(k);
    free(a);
    free(kc);
    rk_cu.ModuleUnload(m);
    return rc;
  }
  a->merge = fm ? fg : NULL;
  a->device = device;
  k->key = kc;
  k->backend = RK_BACKEND_GPU;
  k->handle = m;
  k->fn = fm;
  k->aux = a;
  *out = k;
  return RK_OK;
}

static int kernel_get(const rk_formula *f, const rk_options *o, rk_dev *x,
                      rk_kernel **out, rk_error *e) {
  char target[96], msg[4200];
  int prec = o->precision;
  rk_cuda_geom gm;
  if (!rk_nvrtc_target(x->major, x->minor, target, sizeof target))
    return rk_err(e, RK_EUNSUPPORTED, -1, "NVRTC is not available");
  int rc0 = rk_cg_cuda_geom(f, prec, &gm, e);
  if (rc0 != RK_OK) return rc0;
  size_t tl = strlen(target); /* the geometry is part of the key */
  snprintf(target + tl, sizeof target - tl, "/t%dr%dj%d", gm.tpb, gm.rb,
           gm.tj);
  rk_buf key, mk;
  rk_buf_init(&key);
  rk_buf_init(&mk);
  rk_kernel_key(f, RK_BACKEND_GPU, prec, target, &key);
  rk_buf_printf(&mk, "%s#cuda-device-%d", key.s ? key.s : "", o->device);
  int rc = (key.oom || mk.oom) ? rk_err(e, RK_ENOMEM, -1, "out of memory")
                               : RK_OK;
  rk_kernel *k = rc == RK_OK ? rk_memcache_find(mk.s) : NULL;
  const char *ext = strstr(target, "/sm_") ? "cubin" : "ptx";
  void *img = NULL;
  size_t n = 0;
  /* On disk, a kernel is also keyed by a hash of its generated source, so
     a changed code generator never reuses a stale image of a formula. */
  rk_buf src, dkey;
  rk_buf_init(&src);
  rk_buf_init(&dkey);
  if (rc == RK_OK && !k) {
    rc = rk_cg_cuda_source(f, prec, key.s, &src, e);
    char srchash[33];
    rk_hash_hex(src.s ? src.s : "", srchash);
    rk_buf_printf(&dkey, "%s gen=%s", key.s ? key.s : "", srchash);
    if (rc == RK_OK && (src.oom || dkey.oom))
      rc = rk_err(e, RK_ENOMEM, -1, "out of memory generating CUDA source");
  }
  if (rc == RK_OK && !k && o->cache_dir && o->cache_dir[0]) {
    rk_buf path;
    rk_buf_init(&path);
    rk_cache_path(o->cache_dir, dkey.s, ext, &path);
    if (path.s && rk_cache_read_blob(path.s, dkey.s, &img, &n) &&
        img) {
      rc = module_load(img, x, o->device, f, prec, mk.s, &k, e);
      if (rc == RK_OK) {
        rk_cache_count_disk_load();
        rk_say(o, "CUDA kernel loaded from the disk cache");
      } else { /* unusable file: compile again below */
        rk_err_clear(e);
        rc = RK_OK;
        k = NULL;
      }
      free(img);
      img = NULL;
    }
    rk_buf_free(&path);
  }
  if (rc == RK_OK && !k) {
    int cubin = 0;
    snprintf(msg, sizeof msg, "compiling the CUDA kernel with NVRTC (%s)",
             target);
    rk_say(o, "%s", msg);
    rc = rk_nvrtc_compile(src.s, "rkeops_kernel.cu", x->major, x->minor,
                          &img, &n, &cubin, e);
    if (rc == RK_OK) {
      rk_cache_count_compile();
      rc = module_load(img, x, o->device, f, prec, mk.s, &k, e);
    }
    if (rc == RK_OK && o->cache_dir && o->cache_dir[0]) {
      rk_error e2;
      rk_err_clear(&e2);
      if (rk_cache_mkdir(o->cache_dir, &e2) != RK_OK ||
          rk_cache_write_blob(o->cache_dir, dkey.s, ext, img, n, &e2) !=
              RK_OK) {
        snprintf(msg, sizeof msg, "CUDA kernel not saved to disk: %s",
                 e2.msg);
        rk_say(o, "%s", msg);
      }
    }
    free(img);
    if (rc == RK_OK) {
      rc = rk_memcache_add(k, e);
      k = rc == RK_OK ? rk_memcache_find(mk.s) : NULL;
    }
  } else if (rc == RK_OK && k && !rk_memcache_find(mk.s)) {
    rc = rk_memcache_add(k, e);
    k = rc == RK_OK ? rk_memcache_find(mk.s) : NULL;
  }
  rk_buf_free(&src);
  rk_buf_free(&dkey);
  rk_buf_free(&key);
  rk_buf_free(&mk);
  if (rc == RK_OK && !k)
    rc = rk_err(e, RK_EINTERNAL, -1, "CUDA kernel missing from the cache");
  *out = k;
  return rc;
}

/* ---- device memory ---------------------------------------------------- */

/* at least `need` bytes of pool on device x (grow-only) */
static int pool_reserve(rk_dev *x, size_t need, rk_error *e) {
  if (need <= x->pool_size) return RK_OK;
  if (x->pool) {
    rk_cu.MemFree(x->pool);
    x->pool = 0;
    x->pool_size = 0;
  }
  size_t sz = (need + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
  CU(rk_cu.MemAlloc(&x->pool, sz), "cuMemAlloc");
  x->pool_size = sz;
  return RK_OK;
}

void rk_cuda_release_pools(void) {
  for (int d = 0; d < RK_MAXDEV; d++)
    if (devs[d].init > 0 && devs[d].pool) {
      rk_cu.CtxSetCurrent(devs[d].ctx);
      rk_cu.MemFree(devs[d].pool);
      devs[d].pool = 0;
      devs[d].pool_size = 0;
    }
}


/* ---- running ------------------------------------------------------------ */

typedef struct plan {
  int64_t bi, bj;    /* rows / points per device block */
  int parts;         /* reduction parts over blockIdx.y (1: none) */
  size_t off_in, off_out, off_st, total;
} plan;

#define RK_PAIRS_PER_LAUNCH 2e12
#define ALIGN256(x) (((x) + 255) & ~(size_t)255)

static void plan_layout(plan *p, size_t pbytes, size_t obytes, size_t ibytes,
                        size_t outb, size_t stb, int nblocksj) {
  size_t st = (p->parts > 1 || nblocksj > 1) ? stb * (size_t)p->parts : 0;
  p->off_in = ALIGN256(pbytes) + ALIGN256(obytes * (size_t)p->bi);
  p->off_out = p->off_in + ALIGN256(ibytes * (size_t)p->bj);
  p->off_st = p->off_out + ALIGN256(outb * (size_t)p->bi);
  p->total = p->off_st + ALIGN256(st * (size_t)p->bi) + 256;
}

/* copy components of a host SoA variable (points p0..p0+n) to the device
   at dst with leading dimension n */
static int put_var(CUdeviceptr dst, const void *src, int dim, int64_t ld,
                   int64_t p0, int64_t n, size_t es, rk_error *e) {
  if (n <= 0) return RK_OK;
  if (p0 == 0 && n == ld) {
    CU(rk_cu.MemcpyHtoD(dst, src, (size_t)dim * (size_t)n * es),
       "cuMemcpyHtoD");
    return RK_OK;
  }
  for (int k = 0; k < dim; k++)
    CU(rk_cu.MemcpyHtoD(dst + (size_t)k * (size_t)n * es,
                        (const char *)src + ((size_t)k * (size_t)ld +
                                             (size_t)p0) * es,
                        (size_t)n * es),
       "cuMemcpyHtoD");
  return RK_OK;
}

/* number of reduction parts (blockIdx.y) that fills the GPU's waves best:
   minimises ceil(blocks * p / capacity) / p, the time in units of one
   block's full work, keeping at least two tiles per part */
static int choose_parts(rk_dev *x, rk_kernel *k, const rk_cuda_geom *gm,
                        int64_t nout, int64_t nred) {
  int nb = 0;
  if (rk_cu.OccupancyMaxActiveBlocksPerMultiprocessor == NULL ||
      rk_cu.OccupancyMaxActiveBlocksPerMultiprocessor(
          &nb, (CUfunction)k->fn, gm->tpb, 0) != 0 ||
      nb < 1)
    nb = 1;
  double cap = (double)nb * (double)x->nsm;
  int64_t rows_blk = (int64_t)gm->tpb * gm->rb;
  double bx = (double)((nout + rows_blk - 1) / rows_blk);
  int64_t maxp = nred / (2 * (int64_t)gm->tj);
  if (maxp > 64) maxp = 64;
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

int rk_cuda_run(rk_formula *f, const rk_options *o, int64_t nout,
                int64_t nred, const void *const *vars, const int64_t *ld,
                const int64_t *npts, double *out, rk_error *e) {
  rk_dev *x;
  rk_kernel *k = NULL;
  (void)npts;
  int rc = dev_get(o->device, &x, e);
  if (rc == RK_OK) rc = kernel_get(f, o, x, &k, e);
  if (rc != RK_OK || nout <= 0) return rc;
  rk_cuda_aux *a = k->aux;
  const rk_cuda_geom *gm = &a->gm;
  int outer_cat = f->axis == 1 ? RK_CAT_I : RK_CAT_J, nv = f->nvars;
  size_t es = o->precision == 64 ? 8 : 4, pbytes = 0, obytes = 0, ibytes = 0;
  for (int v = 0; v < nv; v++) {
    int d = f->vars[v].dim, c = f->vars[v].cat;
    if (d <= 0 || !vars[v]) continue;
    if (c == RK_CAT_P) pbytes += ALIGN256((size_t)d * es);
    else if (c == outer_cat) obytes += (size_t)d * es;
    else ibytes += (size_t)d * es;
  }
  size_t outb = (size_t)f->outdim * 8, stb = (size_t)gm->state * 8;
  int64_t rows_blk = (int64_t)gm->tpb * gm->rb;
  /* the plan: everything at once when it fits, else blocks */
  size_t fr = 0, tot = 0;
  CU(rk_cu.MemGetInfo(&fr, &tot), "cuMemGetInfo");
  double avail = (double)(fr + x->pool_size) * 0.9 - 128.0 * 1048576.0;
  /* RKEOPS_CUDA_MEMORY_LIMIT (bytes): a smaller budget, to exercise the
     blocked path in tests */
  const char *lim = getenv("RKEOPS_CUDA_MEMORY_LIMIT");
  if (lim && atof(lim) > 0 && atof(lim) < avail) avail = atof(lim);
  plan p;
  p.bi = nout;
  p.bj = nred;
  p.parts = 1;
  p.parts = choose_parts(x, k, gm, nout, nred);
  plan_layout(&p, pbytes, obytes, ibytes, outb, stb, 1);
  if ((double)p.total > avail) {
    p.parts = 1;
    for (;;) {
      int64_t nbj = (nred + p.bj - 1) / (p.bj > 0 ? p.bj : 1);
      plan_layout(&p, pbytes, obytes, ibytes, outb, stb, (int)(nbj > 1 ? 2 : 1));
      if ((double)p.total <= avail) break;
      if (p.bi <= rows_blk && p.bj <= gm->tj)
        return rk_err(e, RK_ENOMEM, -1,
                      "not enough free GPU memory (%.0f MiB free)",
                      (double)fr / 1048576.0);
      int shrink_j = p.bj > gm->tj &&
                     (p.bi <= rows_blk ||
                      (double)p.bj * (double)ibytes >=
                          (double)p.bi * (double)(obytes + outb + stb));
      if (shrink_j)
        p.bj = (p.bj + 1) / 2;
      else
        p.bi = (p.bi + 1) / 2 > rows_blk ? (p.bi + 1) / 2 : rows_blk;
    }
  }
  rc = pool_reserve(x, p.total, e);
  if (rc != RK_OK) return rc;
  /* parameters, copied once */
  CUdeviceptr dptr[64] = {0}, base = x->pool;
  int64_t dld[64] = {0};
  size_t off = 0;
  for (int v = 0; v < nv && v < 64; v++) {
    int d = f->vars[v].dim;
    if (d <= 0 || !vars[v] || f->vars[v].cat != RK_CAT_P) continue;
    dptr[v] = base + off;
    dld[v] = 1;
    CU(rk_cu.MemcpyHtoD(dptr[v], vars[v], (size_t)d * es), "cuMemcpyHtoD");
    off += ALIGN256((size_t)d * es);
  }
  int64_t nbj = (nred + p.bj - 1) / (p.bj > 0 ? p.bj : 1);
  if (nbj < 1) nbj = 1;
  for (int64_t i0 = 0; i0 < nout; i0 += p.bi) {
    int64_t ni = nout - i0 < p.bi ? nout - i0 : p.bi;
    size_t o2 = ALIGN256(pbytes);
    for (int v = 0; v < nv && v < 64; v++) {
      int d = f->vars[v].dim;
      if (d <= 0 || !vars[v] || f->vars[v].cat != outer_cat) continue;
      dptr[v] = base + o2;
      dld[v] = ni;
      rc = put_var(dptr[v], vars[v], d, ld[v], i0, ni, es, e);
      if (rc != RK_OK) return rc;
      o2 += (size_t)d * es * (size_t)p.bi;
    }
    for (int64_t jb = 0; jb < nbj; jb++) {
      int64_t j0 = jb * p.bj, nj = nred - j0 < p.bj ? nred - j0 : p.bj;
      if (nred == 0) nj = 0;
      if (i0 == 0 || nbj > 1) { /* inner variables: once unless blocked */
        size_t o3 = p.off_in;
        for (int v = 0; v < nv && v < 64; v++) {
          int d = f->vars[v].dim;
          if (d <= 0 || !vars[v] || f->vars[v].cat == outer_cat ||
              f->vars[v].cat == RK_CAT_P)
            continue;
          dptr[v] = base + o3;
          dld[v] = nj;
          rc = put_var(dptr[v], vars[v], d, ld[v], j0, nj, es, e);
          if (rc != RK_OK) return rc;
          o3 += (size_t)d * es * (size_t)nj;
        }
      }
      long long lnj = nj, jbase = j0, ldo = ni, ldst = ni;
      long long jchunk = nj, stpart = (long long)gm->state * ni;
      int mode = (jb > 0 ? 1 : 0) | (jb < nbj - 1 ? 2 : 0);
      if (p.parts > 1) {
        jchunk = (nj + p.parts - 1) / p.parts;
        jchunk = (jchunk + gm->tj - 1) / gm->tj * gm->tj;
        mode = 2;
      }
      unsigned gy = p.parts > 1 ? (unsigned)((nj + jchunk - 1) / jchunk) : 1;
      if (gy < 1) gy = 1;
      /* rows per launch: at most RK_PAIRS_PER_LAUNCH pairs, so that an
         interrupt is seen within about a second */
      int64_t rchunk = ni;
      if ((double)ni * (double)nj > RK_PAIRS_PER_LAUNCH) {
        rchunk = (int64_t)(RK_PAIRS_PER_LAUNCH / (double)nj) / rows_blk *
                 rows_blk;
        if (rchunk < rows_blk) rchunk = rows_blk;
      }
      for (int64_t r0 = 0; r0 < ni; r0 += rchunk) {
        long long lni = ni - r0 < rchunk ? ni - r0 : rchunk;
        CUdeviceptr rptr[64], dout = base + p.off_out + (size_t)r0 * 8,
                              dst = base + p.off_st + (size_t)r0 * 8;
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
        for (int v = 0; v < nv && v < 64; v++) {
          int outer = f->vars[v].cat == outer_cat && dptr[v];
          rptr[v] = outer ? dptr[v] + (size_t)r0 * es : dptr[v];
          params[10 + 2 * v] = &rptr[v];
          params[11 + 2 * v] = &dld[v];
        }
        unsigned gx = (unsigned)((lni + rows_blk - 1) / rows_blk);
        CU(rk_cu.LaunchKernel((CUfunction)k->fn, gx, gy, 1,
                              (unsigned)gm->tpb, 1, 1, 0, NULL, params, NULL),
           "cuLaunchKernel(rk_main)");
        if (p.parts > 1) {
          int np = (int)gy;
          void *mp[7] = {&lni, &np, &dst, &ldst, &stpart, &dout, &ldo};
          unsigned mx = (unsigned)((lni + gm->tpb - 1) / gm->tpb);
          CU(rk_cu.LaunchKernel(a->merge, mx, 1, 1, (unsigned)gm->tpb, 1, 1,
                                0, NULL, mp, NULL),
             "cuLaunchKernel(rk_merge)");
        }
        int more = r0 + rchunk < ni || jb < nbj - 1 || i0 + p.bi < nout;
        if (o->interrupted && more) {
          CU(rk_cu.CtxSynchronize(), "cuCtxSynchronize");
          if (o->interrupted(o->interrupt_data))
            return rk_err(e, RK_EINTERRUPT, -1, "interrupted");
        }
      }
    }
    /* results of this row block */
    CUdeviceptr dout = base + p.off_out;
    if (ni == nout) {
      CU(rk_cu.MemcpyDtoH(out, dout, outb * (size_t)ni), "cuMemcpyDtoH");
    } else {
      for (int c = 0; c < f->outdim; c++)
        CU(rk_cu.MemcpyDtoH(out + (size_t)c * (size_t)nout + (size_t)i0,
                            dout + (size_t)c * (size_t)ni * 8,
                            (size_t)ni * 8),
           "cuMemcpyDtoH");
    }
  }
  return RK_OK;
}
