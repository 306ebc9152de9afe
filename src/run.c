/*
 * run.c -- run orchestration: options, input validation, the data handed
 * to kernels (structure of arrays, see be.h), chunked execution with
 * interrupt checks, the CPU fallback when no GPU is usable, and the
 * configuration report.
 */
#define _GNU_SOURCE
#include "be.h"
#include "cg.h"
#include "rk-config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void rk_options_default(rk_options *o) {
  memset(o, 0, sizeof *o);
  o->backend = RK_BACKEND_CPU;
  o->device = 0;
  o->precision = 64;
  o->nthreads = 0;
  o->verbose = 0;
  o->cache_dir = NULL;
}

/* ---- validation -------------------------------------------------------- */

/* "variable 'x' (argument 2)" or "variable at position 2" */
static const char *label(const rk_formula *f, int v, char *buf, size_t n) {
  const char *name = f->vars[v].name;
  if (name && name[0])
    snprintf(buf, n, "variable '%s' (argument %d)", name, v + 1);
  else
    snprintf(buf, n, "the variable at position %d (argument %d)", v, v + 1);
  return buf;
}

static int input_err(rk_error *e, int v, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int input_err(rk_error *e, int v, const char *fmt, ...) {
  if (e == NULL)
    return RK_EINPUT;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  e->code = RK_EINPUT;
  e->pos = -1;
  e->arg = v;
  return RK_EINPUT;
}

/* check every input; *ni / *nj: number of i / j points */
static int check_inputs(const rk_formula *f, const rk_input *in, int nin,
                        int64_t *ni, int64_t *nj, rk_error *e) {
  static const char *const catname[] = {"Vi", "Vj", "Pm"};
  char l1[256], l2[256];
  int first[2] = {-1, -1};
  int64_t cnt[2] = {-1, -1};
  if (nin != f->nvars)
    return input_err(e, -1, "the formula takes %d input%s, got %d", f->nvars,
                     f->nvars == 1 ? "" : "s", nin);
  if (nin > 0 && in == NULL)
    return input_err(e, -1, "no inputs given");
  for (int v = 0; v < nin; v++) {
    int d = f->vars[v].dim, cat = f->vars[v].cat;
    const rk_input *x = &in[v];
    if (d <= 0 || cat < 0 || cat > 2)
      continue; /* a position the formula does not use */
    label(f, v, l1, sizeof l1);
    if (x->nrow < 0 || x->ncol < 0 ||
        (x->layout != RK_LAYOUT_COL && x->layout != RK_LAYOUT_ROW))
      return input_err(e, v, "%s: invalid matrix (%lld x %lld, layout %d)", l1,
                       (long long)x->nrow, (long long)x->ncol, x->layout);
    if (x->ncol > 0 && x->nrow > INT64_MAX / 8 / x->ncol)
      return input_err(e, v, "%s: too large", l1);
    if (x->data == NULL && x->nrow * x->ncol > 0)
      return input_err(e, v, "%s: no data", l1);
    if (cat == RK_CAT_P) {
      if (x->nrow * x->ncol != d)
        return input_err(e, v,
                         "%s is a parameter (Pm) of dimension %d: expected %d "
                         "value%s, got %lld",
                         l1, d, d, d == 1 ? "" : "s",
                         (long long)(x->nrow * x->ncol));
      continue;
    }
    int row = x->layout == RK_LAYOUT_ROW;
    int64_t got = row ? x->nrow : x->ncol, n = row ? x->ncol : x->nrow;
    if (got != d)
      return input_err(e, v,
                       "%s is %s of dimension %d: expected a matrix with %d "
                       "%s (one %s per point), got %lld",
                       l1, catname[cat], d, d, row ? "rows" : "columns",
                       row ? "column" : "row", (long long)got);
    if (first[cat] < 0) {
      first[cat] = v;
      cnt[cat] = n;
    } else if (cnt[cat] != n) {
      return input_err(e, v,
                       "inconsistent number of points among %c-variables: "
                       "%s has %lld, %s has %lld",
                       cat == RK_CAT_I ? 'i' : 'j',
                       label(f, first[cat], l2, sizeof l2), (long long)cnt[cat],
                       l1, (long long)n);
    }
  }
  for (int c = 0; c < 2; c++)
    if (cnt[c] < 0)
      return input_err(e, -1,
                       "the formula has no %c-variable (Vi%s): the number of "
                       "%s points is unknown",
                       c == 0 ? 'i' : 'j', c == 0 ? "" : " or Vj",
                       c == 0 ? "i" : "j");
  *ni = cnt[0];
  *nj = cnt[1];
  int64_t nred = f->axis == 1 ? *nj : *ni;
  if (f->K > 0 && f->K > nred) {
    rk_err(e, RK_EVALUE, -1,
           "K = %d is larger than the number of reduction points (%lld)", f->K,
           (long long)nred);
    return RK_EVALUE;
  }
  return RK_OK;
}

int64_t rk_formula_outrows(const rk_formula *f, const rk_input *in, int nin,
                           rk_error *err) {
  int64_t ni, nj;
  rk_err_clear(err);
  if (check_inputs(f, in, nin, &ni, &nj, err) != RK_OK)
    return -1;
  return f->axis == 1 ? ni : nj;
}

/* ---- data for the kernel ----------------------------------------------- */

typedef struct rk_data {
  int n;
  const void **vars;
  int64_t *ld, *npts;
  void **owned; /* buffers to free */
} rk_data;

static void data_free(rk_data *d) {
  for (int v = 0; v < d->n && d->owned; v++)
    free(d->owned[v]);
  free(d->owned);
  free(d->vars);
  free(d->ld);
  free(d->npts);
  memset(d, 0, sizeof *d);
}

static int data_prepare(const rk_formula *f, const rk_input *in, int prec,
                        int64_t ni, int64_t nj, rk_data *d, rk_error *e) {
  int n = f->nvars > 0 ? f->nvars : 1;
  d->n = f->nvars;
  d->vars = calloc((size_t)n, sizeof *d->vars);
  d->ld = calloc((size_t)n, sizeof *d->ld);
  d->npts = calloc((size_t)n, sizeof *d->npts);
  d->owned = calloc((size_t)n, sizeof *d->owned);
  if (!d->vars || !d->ld || !d->npts || !d->owned)
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  for (int v = 0; v < f->nvars; v++) {
    int dim = f->vars[v].dim, cat = f->vars[v].cat;
    if (dim <= 0 || cat < 0 || cat > 2)
      continue;
    const rk_input *x = &in[v];
    int64_t np = cat == RK_CAT_P ? 1 : cat == RK_CAT_I ? ni : nj;
    int trans = cat != RK_CAT_P && x->layout == RK_LAYOUT_ROW && dim > 1;
    d->npts[v] = np;
    d->ld[v] = cat == RK_CAT_P ? 1 : np;
    if (prec == 64 && !trans) {
      d->vars[v] = x->data;
      continue;
    }
    size_t cnt = (size_t)(np * dim), es = prec == 64 ? 8 : 4;
    void *buf = malloc(cnt ? cnt * es : 1);
    if (buf == NULL)
      return rk_err(e, RK_ENOMEM, -1, "out of memory (%zu bytes for input %d)",
                    cnt * es, v + 1);
    d->owned[v] = buf;
    d->vars[v] = buf;
    const double *s = x->data;
    if (!trans) {
      if (prec == 64)
        memcpy(buf, s, cnt * es);
      else
        for (size_t i = 0; i < cnt; i++)
          ((float *)buf)[i] = (float)s[i];
      continue;
    }
    /* ROW: s[p * dim + k] -> buf[k * np + p] */
    for (int64_t p = 0; p < np; p++)
      for (int k = 0; k < dim; k++) {
        double val = s[p * dim + k];
        if (prec == 64)
          ((double *)buf)[k * np + p] = val;
        else
          ((float *)buf)[k * np + p] = (float)val;
      }
  }
  return RK_OK;
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

/* Rows r of [0, nout) in chunks of about RK_CHUNK_SECONDS each, sized from
   the measured speed of the previous chunk, and of at least
   RK_CHUNK_ROWS_PER_THREAD rows per thread unless that would take longer
   than RK_CHUNK_MAX_SECONDS: the kernel splits a chunk into blocks of rows
   that share each tile of the reduction variables, and blocks of a few rows
   would copy the tiles over and over (kNN D = 50 at 1e5 was 3.5 times
   slower with 75 ms chunks). */
static int run_cpu(rk_cpu_entry fn, const rk_options *o, int nthreads,
                   int64_t nout, int64_t nred, const rk_data *d, double *out,
                   rk_error *e) {
  double pairs = 5e6 * nthreads; /* first guess: pair evaluations */
  int64_t rows = (int64_t)(pairs / (double)(nred > 0 ? nred : 1));
  int64_t minrows = 4 * (int64_t)nthreads;
  for (int64_t r0 = 0; r0 < nout;) {
    if (rows < minrows)
      rows = minrows;
    int64_t r1 = nout - r0 < rows ? nout : r0 + rows;
    double t0 = now();
    if (fn(r0, r1, nout, nred, d->vars, d->ld, out, nthreads) != 0)
      return rk_err(e, RK_ENOMEM, -1, "out of memory in the CPU kernel");
    double dt = now() - t0;
    int64_t done = r1 - r0;
    r0 = r1;
    if (r0 < nout && o->interrupted && o->interrupted(o->interrupt_data))
      return rk_err(e, RK_EINTERRUPT, -1, "interrupted");
    double rate = (double)done / (dt > 1e-6 ? dt : 1e-6); /* rows / s */
    double want = rate * RK_CHUNK_SECONDS;
    double floor_rows = (double)RK_CHUNK_ROWS_PER_THREAD * nthreads;
    if (floor_rows > rate * RK_CHUNK_MAX_SECONDS)
      floor_rows = rate * RK_CHUNK_MAX_SECONDS;
    if (want < floor_rows)
      want = floor_rows;
    if (want > 8.0 * (double)done + (double)floor_rows)
      want = 8.0 * (double)done + (double)floor_rows;
    rows = (int64_t)want + 1;
  }
  return RK_OK;
}

/* 1 when the GPU should be used, else 0 (with a verbose message) */
static int use_gpu(const rk_options *o) {
  if (o->backend != RK_BACKEND_GPU)
    return 0;
  char why[512] = "", msg[700];
  if (rk_cuda_available(why, sizeof why) > 0)
    return 1;
  snprintf(msg, sizeof msg, "no usable GPU (%s): computing on the CPU",
           why[0] ? why : "unknown reason");
  rk_say(o, "%s", msg);
  return 0;
}

int rk_formula_run(rk_formula *f, const rk_options *o, const rk_input *in,
                   int nin, double *out, rk_error *err) {
  rk_options def;
  if (o == NULL) {
    rk_options_default(&def);
    o = &def;
  }
  rk_err_clear(err);
  if (f == NULL)
    return rk_err(err, RK_EINPUT, -1, "no formula");
  if (o->precision != 32 && o->precision != 64)
    return rk_err(err, RK_EVALUE, -1, "precision must be 32 or 64, not %d",
                  o->precision);
  int64_t ni, nj;
  int rc = check_inputs(f, in, nin, &ni, &nj, err);
  if (rc != RK_OK)
    return rc;
  int64_t nout = f->axis == 1 ? ni : nj, nred = f->axis == 1 ? nj : ni;
  if (out == NULL && nout > 0 && f->outdim > 0)
    return rk_err(err, RK_EINPUT, -1, "no output buffer");
  rk_data d;
  memset(&d, 0, sizeof d);
  rc = data_prepare(f, in, o->precision, ni, nj, &d, err);
  if (rc == RK_OK && use_gpu(o)) {
    rc = rk_cuda_run(f, o, nout, nred, d.vars, d.ld, d.npts, out, err);
  } else if (rc == RK_OK) {
    rk_cpu_entry fn;
    int compiled;
    int nthreads = o->nthreads > 0 ? o->nthreads : rk_ncpu();
    rc = rk_cpu_get(f, o, &fn, &compiled, err);
    if (rc == RK_OK && nout > 0)
      rc = run_cpu(fn, o, nthreads, nout, nred, &d, out, err);
  }
  data_free(&d);
  return rc;
}

int rk_formula_prepare(rk_formula *f, const rk_options *o, int *compiled,
                       rk_error *err) {
  rk_err_clear(err);
  if (compiled)
    *compiled = 0;
  if (use_gpu(o)) /* the CUDA backend compiles at its first run */
    return RK_OK;
  rk_cpu_entry fn;
  return rk_cpu_get(f, o, &fn, compiled, err);
}

int64_t rk_formula_source(rk_formula *f, const rk_options *o, char *buf,
                          size_t size, rk_error *err) {
  rk_buf key, src;
  rk_buf_init(&key);
  rk_buf_init(&src);
  rk_err_clear(err);
  int gpu = o->backend == RK_BACKEND_GPU;
  rk_kernel_key(f, gpu ? RK_BACKEND_GPU : RK_BACKEND_CPU, o->precision,
                "source", &key);
  int rc = key.oom ? rk_err(err, RK_ENOMEM, -1, "out of memory") : RK_OK;
  if (rc == RK_OK)
    rc = gpu ? rk_cg_cuda_source(f, o->precision, key.s, &src, err)
             : rk_cg_cpu_source(f, o->precision, key.s, &src, err);
  if (rc == RK_OK && src.oom)
    rc = rk_err(err, RK_ENOMEM, -1, "out of memory");
  int64_t len = rc == RK_OK ? (int64_t)src.len : -1;
  if (rc == RK_OK && buf && size > 0)
    snprintf(buf, size, "%s", src.s ? src.s : "");
  rk_buf_free(&key);
  rk_buf_free(&src);
  return len;
}

/* ---- configuration ---------------------------------------------------- */

int rk_config_openmp(void) {
  return RK_HAVE_OPENMP;
}

int rk_gpu_count(char *why, size_t size) {
  return rk_cuda_available(why, size);
}

size_t rk_config_describe(char *buf, size_t size) {
  rk_buf b;
  rk_buf_init(&b);
  rk_buf_printf(&b, "rkeops %s\n", RK_VERSION_STRING);
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
  char small[2048];
  size_t n = rk_cuda_describe(small, sizeof small);
  if (n < sizeof small) {
    rk_buf_puts(&b, small);
  } else {
    char *big = malloc(n + 1);
    if (big) {
      rk_cuda_describe(big, n + 1);
      rk_buf_puts(&b, big);
      free(big);
    }
  }
  size_t len = b.len;
  if (buf && size > 0)
    snprintf(buf, size, "%s", b.s ? b.s : "");
  rk_buf_free(&b);
  return len;
}
