/*
 * run.c -- run orchestration, above the backend table (be.h): options,
 * input validation, the data handed to kernels (structure of arrays),
 * the configuration of code generation read once from the environment,
 * the backend looked up in the table (the CPU when the chosen one is not
 * usable), and the configuration report.
 */
#define _GNU_SOURCE
#include "be.h"
#include "cg.h"
#include "rk-config.h"
#include "threads.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
  va_list ap;
  va_start(ap, fmt);
  rk_verr(e, RK_EINPUT, -1, fmt, ap);
  va_end(ap);
  if (e != NULL)
    e->arg = v;
  return RK_EINPUT;
}

/* check every input; *ni / *nj: number of i / j points */
static int check_inputs(const rk_formula *f, const rk_input *in, int nin,
                        int64_t *ni, int64_t *nj, rk_error *e) {
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
                       l1, rk_cat_names[cat], d, d, row ? "rows" : "columns",
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
  /* an index that no variable carries has size 1, as in KeOps: a
     reduction over it reduces one point, an output over it has one row */
  *ni = cnt[0] < 0 ? 1 : cnt[0];
  *nj = cnt[1] < 0 ? 1 : cnt[1];
  /* K larger than the number of reduced points: the K-min reductions pad
     with Inf values and NaN (NA) indices (cg-reduce.c, rk_cg_red_final) */
  return RK_OK;
}

int rk_inputs_check(const rk_formula *f, const rk_input *in, int nin,
                    int64_t *ni, int64_t *nj, rk_error *e) {
  return check_inputs(f, in, nin, ni, nj, e);
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

void rk_data_free(rk_data *d) {
  for (int v = 0; v < d->n && d->owned; v++)
    free(d->owned[v]);
  free(d->owned);
  free(d->vars);
  free(d->ld);
  free(d->npts);
  memset(d, 0, sizeof *d);
}

/* converting inputs: points [a, b) of a row-layout (ROW, transposed)
   input, or values [a, b) of a column-layout one */
typedef struct conv_job {
  const double *s;
  void *dst;
  int prec, trans, dim;
  int64_t np;
} conv_job;

static int conv_block(void *ctx, int64_t a, int64_t b) {
  const conv_job *j = ctx;
  const double *s = j->s;
  if (!j->trans) {
    if (j->prec == 64)
      memcpy((double *)j->dst + a, s + a, (size_t)(b - a) * 8);
    else
      for (int64_t i = a; i < b; i++)
        ((float *)j->dst)[i] = (float)s[i];
    return 0;
  }
  /* ROW: s[p * dim + k] -> dst[k * np + p] */
  int64_t np = j->np;
  for (int64_t p = a; p < b; p++)
    for (int k = 0; k < j->dim; k++) {
      double val = s[p * j->dim + k];
      if (j->prec == 64)
        ((double *)j->dst)[k * np + p] = val;
      else
        ((float *)j->dst)[k * np + p] = (float)val;
    }
  return 0;
}

/* values converted per pool block; below RK_CONV_PAR values, one thread */
#define RK_CONV_GRAIN ((int64_t)1 << 16)
#define RK_CONV_PAR   ((int64_t)1 << 18)

static void convert(conv_job *j, int64_t cnt, int nthreads) {
  int64_t n = j->trans ? j->np : cnt;
  int64_t grain = j->trans ? RK_CONV_GRAIN / j->dim + 1 : RK_CONV_GRAIN;
  if (nthreads > 1 && cnt >= RK_CONV_PAR &&
      rk_par_rows(nthreads, 0, n, grain, 0, conv_block, j) == 0)
    return;
  conv_block(j, 0, n);
}

/* whether input x of a variable (dim, cat) is transposed for the kernels
   (R's "row" layout of a vector variable) */
static int data_trans(int dim, int cat, const rk_input *x) {
  return cat != RK_CAT_P && x->layout == RK_LAYOUT_ROW && dim > 1;
}

/* whether position v is converted (or copied) rather than used in place */
static int data_converted(int dim, int cat, const rk_input *x, int prec,
                          int copy) {
  return !(prec == 64 && !data_trans(dim, cat, x) && !copy);
}

/* position v from x into d: in place when R's layout and precision fit,
   else converted into `into` when given, else into d->owned[v] (reused
   when it is there) */
static int data_put(const rk_formula *f, int v, const rk_input *x, int prec,
                    int copy, void *into, int nthreads, rk_data *d,
                    rk_error *e) {
  int dim = f->vars[v].dim, cat = f->vars[v].cat;
  int64_t np = d->npts[v];
  if (!data_converted(dim, cat, x, prec, copy)) {
    d->vars[v] = x->data;
    return RK_OK;
  }
  size_t cnt = (size_t)(np * dim), es = prec == 64 ? 8 : 4;
  void *buf = into ? into : d->owned[v];
  if (buf == NULL) {
    buf = malloc(cnt ? cnt * es : 1);
    if (buf == NULL)
      return rk_err(e, RK_ENOMEM, -1, "out of memory (%zu bytes for input %d)",
                    cnt * es, v + 1);
    d->owned[v] = buf;
  }
  d->vars[v] = buf;
  conv_job j = {x->data, buf, prec, data_trans(dim, cat, x), dim, np};
  convert(&j, (int64_t)cnt, nthreads);
  return RK_OK;
}

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

static int64_t data_npts(int cat, int64_t ni, int64_t nj) {
  return cat == RK_CAT_P ? 1 : cat == RK_CAT_I ? ni : nj;
}

size_t rk_data_bytes(const rk_formula *f, const rk_input *in, int prec,
                     int64_t ni, int64_t nj) {
  size_t total = 0, es = prec == 64 ? 8 : 4;
  for (int v = 0; v < f->nvars; v++) {
    int dim = f->vars[v].dim, cat = f->vars[v].cat;
    if (dim <= 0 || cat < 0 || cat > 2 ||
        !data_converted(dim, cat, &in[v], prec, 0))
      continue;
    total += ALIGN64((size_t)data_npts(cat, ni, nj) * (size_t)dim * es);
  }
  return total;
}

int rk_data_prepare_in(const rk_formula *f, const rk_input *in, int prec,
                       int64_t ni, int64_t nj, int nthreads, void *buf,
                       rk_data *d, rk_error *e) {
  int n = f->nvars > 0 ? f->nvars : 1;
  size_t off = 0, es = prec == 64 ? 8 : 4;
  memset(d, 0, sizeof *d);
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
    int64_t np = data_npts(cat, ni, nj);
    d->npts[v] = np;
    d->ld[v] = cat == RK_CAT_P ? 1 : np;
    void *into = NULL;
    if (buf != NULL && data_converted(dim, cat, &in[v], prec, 0)) {
      into = (char *)buf + off;
      off += ALIGN64((size_t)np * (size_t)dim * es);
    }
    int rc = data_put(f, v, &in[v], prec, 0, into, nthreads, d, e);
    if (rc != RK_OK)
      return rc;
  }
  return RK_OK;
}

int rk_data_prepare(const rk_formula *f, const rk_input *in, int prec,
                    int64_t ni, int64_t nj, int nthreads, rk_data *d,
                    rk_error *e) {
  return rk_data_prepare_in(f, in, prec, ni, nj, nthreads, NULL, d, e);
}

int rk_data_replace(const rk_formula *f, int v, const rk_input *x, int prec,
                    rk_data *d, rk_error *e) {
  char l[256];
  if (v < 0 || v >= d->n || f->vars[v].dim <= 0)
    return rk_err(e, RK_EINPUT, -1, "no input at position %d to replace", v);
  int dim = f->vars[v].dim, cat = f->vars[v].cat;
  int64_t np = d->npts[v], got;
  if (x == NULL || (x->data == NULL && np * dim > 0))
    return input_err(e, v, "%s: no data", label(f, v, l, sizeof l));
  if (cat == RK_CAT_P)
    got = x->nrow * x->ncol == dim ? 1 : -1;
  else if (x->layout == RK_LAYOUT_ROW)
    got = x->nrow == dim ? x->ncol : -1;
  else
    got = x->ncol == dim ? x->nrow : -1;
  if (got != np)
    return input_err(e, v,
                     "%s: the replacement must have the shape of the prepared "
                     "input (%lld points of dimension %d)",
                     label(f, v, l, sizeof l), (long long)np, dim);
  /* x need not outlive the call */
  return data_put(f, v, x, prec, 1, NULL, 1, d, e);
}

/* ---- the configuration of code generation: the border ----------------- */

/* an integer knob in [lo, hi], or -1 when unset or out of range */
static int knob_int(const char *name, int lo, int hi) {
  const char *v = getenv(name);
  if (v == NULL || v[0] < '0' || v[0] > '9')
    return -1;
  long n = strtol(v, NULL, 10);
  return n >= lo && n <= hi ? (int)n : -1;
}

void rk_cg_config_env(rk_cg_config *c, int precision) {
  rk_cg_config_default(c, precision);
  const char *v;
  if ((v = getenv("RKEOPS_CPU_LSE")) && v[0] == '1')
    c->cpu_lse = 1;
  int t = 0, r = 0;
  if ((v = getenv("RKEOPS_CUDA_GEOM")) && sscanf(v, "%d,%d", &t, &r) == 2 &&
      (t == 64 || t == 128 || t == 256 || t == 512) && r >= 1 && r <= 8) {
    c->cuda_tpb = t;
    c->cuda_rb = r;
  }
  int cu = knob_int("RKEOPS_CPU_UNROLL", 0, 64);
  if (cu >= 0)
    c->cpu_unroll = cu;
  int u = knob_int("RKEOPS_CUDA_UNROLLJ", 1, 16);
  if (u > 0)
    c->cuda_unrollj = u;
  if ((v = getenv("RKEOPS_CUDA_PREGS")) && v[0] == '1')
    c->cuda_pregs = 1;
  if ((v = getenv("RKEOPS_CUDA_LSE")) && v[0] == '0')
    c->cuda_lse = 0;
  if ((v = getenv("RKEOPS_CUDA_EXP2")) && v[0] >= '0' && v[0] <= '2')
    c->cuda_exp2 = v[0] - '0';
  int ts = knob_int("RKEOPS_CUDA_TSUM", 1, 2);
  if (ts > 0)
    c->cuda_tsum = ts;
  int un = knob_int("RKEOPS_CUDA_UNROLL", 16, 1024);
  if (un > 0)
    c->cuda_unroll = un;
}

/* ---- running ---------------------------------------------------------- */

/* the backend of the options: the table's row, or the CPU (with a verbose
   message) when that one is not usable */
const rk_backend_i *rk_backend_pick(const rk_options *o) {
  const rk_backend_i *be = rk_backend_get(o->backend);
  const rk_backend_i *cpu = rk_backend_get(RK_BACKEND_CPU);
  if (be == NULL || be == cpu)
    return cpu;
  char why[512] = "";
  if (be->available(why, sizeof why) > 0)
    return be;
  rk_say(o, "no usable %s (%s): computing on the CPU",
         be->id == RK_BACKEND_GPU ? "GPU" : be->name,
         why[0] ? why : "unknown reason");
  return cpu;
}

/* ---- several parts: rows split over devices (or CPU partitions) -------
 * rk_parts_split cuts rows [0, n) into ndevices consecutive blocks in
 * proportion to the measured speed of each device (rows x points per
 * second of its last run, kept per backend and device; equal shares until
 * a device has been measured).  A block of rows is computed by one device
 * over the whole reduction range, so the results are those of one device
 * (no merge is needed).  CUDA parts run on one host thread each; parts
 * sharing a device run on lanes of it (a stream, a memory pool and staging
 * buffers each: be-cuda.c), so they run beside each other too.  Parts on
 * the CPU (whose thread pool serves one caller) run one after the other on
 * the calling thread. */
#define RK_PART_SPEEDS 64
static double part_speed[2][RK_PART_SPEEDS]; /* by backend id, device */
static pthread_mutex_t part_mu = PTHREAD_MUTEX_INITIALIZER;

static double speed_of(int be, int dev) {
  if (be < 0 || be > 1 || dev < 0 || dev >= RK_PART_SPEEDS)
    return 0;
  pthread_mutex_lock(&part_mu);
  double v = part_speed[be][dev];
  pthread_mutex_unlock(&part_mu);
  return v;
}

void rk_parts_note(int be, int dev, double work, double seconds) {
  if (be < 0 || be > 1 || dev < 0 || dev >= RK_PART_SPEEDS || seconds < 1e-3 ||
      work <= 0)
    return; /* too short to say anything */
  pthread_mutex_lock(&part_mu);
  part_speed[be][dev] = work / seconds;
  pthread_mutex_unlock(&part_mu);
}

void rk_parts_split(int be, const int *devices, int ndev, int64_t n,
                    int64_t *cut) {
  double w[RK_PART_SPEEDS], tot = 0;
  int known = 1;
  for (int p = 0; p < ndev && p < RK_PART_SPEEDS; p++) {
    w[p] = be == RK_BACKEND_CPU ? 1 : speed_of(be, devices[p]);
    if (w[p] <= 0)
      known = 0;
  }
  for (int p = 0; p < ndev; p++) {
    if (!known || p >= RK_PART_SPEEDS)
      w[p] = 1;
    tot += w[p];
  }
  double acc = 0;
  cut[0] = 0;
  for (int p = 0; p < ndev; p++) {
    acc += w[p];
    cut[p + 1] = p == ndev - 1 ? n : (int64_t)((double)n * acc / tot + 0.5);
    if (cut[p + 1] < cut[p])
      cut[p + 1] = cut[p];
    if (cut[p + 1] > n)
      cut[p + 1] = n;
  }
}

/* how many times devices[p] is listed before p, and in all */
static int listed(const int *devices, int ndev, int p, int *total) {
  int before = 0, all = 0;
  for (int q = 0; q < ndev; q++)
    if (devices[q] == devices[p]) {
      all++;
      if (q < p)
        before++;
    }
  if (total)
    *total = all;
  return before;
}

/* CUDA parts run on one host thread each: a device listed k times runs
   its parts on k lanes (streams of their own, be-cuda.c), so no two
   threads share a lane's memory, unless it is listed more than
   RK_MAX_LANES times (then one after the other) */
int rk_parts_threaded(const rk_backend_i *be, const int *devices, int ndev) {
  if (be->id == RK_BACKEND_CPU)
    return 0;
  for (int p = 0; p < ndev; p++)
    if (listed(devices, ndev, p, NULL) >= RK_MAX_LANES)
      return 0;
  return 1;
}

typedef struct part_job {
  rk_kernel *k;
  const rk_formula *f;
  rk_options o;
  const rk_data *d;
  rk_span s;
  rk_error e;
  int rc;
} part_job;

static void part_run(part_job *j) {
  const rk_backend_i *be = j->k->be;
  double t0 = rk_now();
  j->rc = be->run(j->k, j->f, &j->o, j->d, &j->s, &j->e);
  if (j->rc == RK_OK)
    rk_parts_note(be->id, j->o.device,
                  (double)(j->s.r1 - j->s.r0) * (double)(j->s.j1 - j->s.j0),
                  rk_now() - t0);
}

static void *part_thread(void *arg) {
  part_run(arg);
  return NULL;
}

/* the options of part p: its device, no further split */
rk_options rk_parts_options(const rk_options *o, int p) {
  rk_options q = *o;
  q.device = o->backend == RK_BACKEND_CPU ? o->device : o->devices[p];
  q.lane = q.nlanes = 0;
  if (o->backend != RK_BACKEND_CPU) {
    q.lane = listed(o->devices, o->ndevices, p, &q.nlanes) % RK_MAX_LANES;
    if (q.nlanes > RK_MAX_LANES)
      q.nlanes = RK_MAX_LANES;
  }
  q.ndevices = 0;
  q.devices = NULL;
  return q;
}

int rk_parts_run(const rk_backend_i *be, rk_kernel **ks, const rk_formula *f,
                 const rk_options *o, const rk_data *const *ds,
                 const rk_span *s, rk_error *e) {
  int np = o->ndevices;
  int64_t *cut = malloc((size_t)(np + 1) * sizeof *cut);
  part_job *jobs = calloc((size_t)np, sizeof *jobs);
  pthread_t *tid = calloc((size_t)np, sizeof *tid);
  char *started = calloc((size_t)np, 1);
  if (!cut || !jobs || !tid || !started) {
    free(cut), free(jobs), free(tid), free(started);
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  }
  rk_parts_split(be->id, o->devices, np, s->r1 - s->r0, cut);
  int threaded = rk_parts_threaded(be, o->devices, np);
  int lanes = 0; /* parts on a lane > 0: a device listed again */
  for (int p = 0; p < np && be->id != RK_BACKEND_CPU; p++)
    lanes += listed(o->devices, np, p, NULL) > 0;
  rk_say(o, "%lld rows in %d parts (%s)%s%s", (long long)(s->r1 - s->r0), np,
         be->name, threaded ? ", one thread each" : "",
         threaded && lanes ? ", a stream each on a shared device" : "");
  for (int p = 0; p < np; p++) {
    part_job *j = &jobs[p];
    j->k = ks[p];
    j->f = f;
    j->o = rk_parts_options(o, p);
    j->d = ds[p];
    j->s = *s;
    j->s.r0 = s->r0 + cut[p];
    j->s.r1 = s->r0 + cut[p + 1];
    j->s.out = s->out ? s->out + cut[p] : NULL;
    j->s.st = s->st ? s->st + cut[p] : NULL;
    rk_err_clear(&j->e);
    if (j->s.r1 == j->s.r0)
      continue;
    if (threaded) {
      /* R is not reentrant: no callback from another thread */
      j->o.interrupted = NULL;
      j->o.message = NULL;
      j->o.verbose = 0;
      started[p] = rk_thread_start(&tid[p], 0, 0, part_thread, j) == 0;
      if (!started[p])
        part_run(j);
    } else {
      part_run(j);
    }
  }
  int rc = RK_OK;
  for (int p = 0; p < np; p++) {
    if (started[p])
      pthread_join(tid[p], NULL);
  }
  for (int p = 0; p < np && rc == RK_OK; p++)
    if (jobs[p].rc != RK_OK) {
      rc = jobs[p].rc;
      if (e) {
        *e = jobs[p].e;
        char m[sizeof e->msg];
        snprintf(m, sizeof m, "part %d (device %d): %.3900s", p + 1,
                 jobs[p].o.device, jobs[p].e.msg);
        memcpy(e->msg, m, sizeof m);
      }
    }
  free(cut), free(jobs), free(tid), free(started);
  return rc;
}

/* inputs of fewer bytes are converted into malloc'ed memory */
#define RK_STAGE_MIN ((size_t)1 << 20)

int rk_nthreads(const rk_options *o) {
  return rk_threads_get(o->nthreads, NULL); /* threads.c: the one getter */
}

/* ---- tiers of GPU kernels ----------------------------------------------
 * The first call of a new formula on the GPU mostly waits for NVRTC (H100:
 * 0.150 s for a Gaussian sum; 0.076 s at -Ofast-compile=mid, whose kernel
 * runs 4.7x slower).  A small call (at most RK_QUICK_PAIRS pairs, where the
 * kernel's speed hardly matters) takes the fully optimised kernel when it
 * is loaded or on disk, else a quick one (rk_options.quick: compiled at
 * that level, cached apart).  A larger call, or any call once the quick
 * kernel has run RK_QUICK_WORK pairs in all (a few ms lost to its
 * slowness), gets the full kernel, compiled once.  Only the single-device
 * run path has tiers (prepared operators, solve() and parts take the full
 * kernel).  Off unless RKEOPS_CUDA_QUICK=1 (read per call): a quick kernel's
 * floating-point results may differ from the full one's in the last bits
 * (the compiler contracts a*b+c into FMAs differently at that level; H100:
 * a joint gradient pass and a single one, identical with full kernels,
 * differ by 1 ulp with quick ones), so with tiers a small call's bits would
 * depend on the calls and the cache before it. */
#define RK_QUICK_PAIRS 1e7
#define RK_QUICK_WORK  2e9
static int tier_kernel(const rk_backend_i *be, const rk_formula *f,
                       const rk_options *o, const rk_cg_config *cfg,
                       double pairs, rk_kernel **k, rk_error *err) {
  const char *kp = getenv("RKEOPS_CUDA_QUICK");
  if (be != rk_backend_get(RK_BACKEND_GPU) || o->quick || !kp ||
      strcmp(kp, "1") != 0 || pairs > RK_QUICK_PAIRS)
    return rk_kernel_get(be, f, o, cfg, k, NULL, err);
  rk_kernel *full = NULL, *qk = NULL;
  int rc = rk_kernel_find(be, f, o, cfg, 0, &full, err); /* loaded */
  if (rc != RK_OK || full) {
    *k = full;
    return rc;
  }
  rk_options q = *o;
  q.quick = 1;
  rc = rk_kernel_find(be, f, &q, cfg, 0, &qk, err);
  if (rc == RK_OK && qk == NULL) {
    rc = rk_kernel_find(be, f, o, cfg, 1, &full, err); /* on disk */
    if (rc != RK_OK || full) {
      *k = full;
      return rc;
    }
    rc = rk_kernel_get(be, f, &q, cfg, &qk, NULL, err);
  }
  if (rc != RK_OK)
    return rc;
  if (qk->work + pairs > RK_QUICK_WORK)
    return rk_kernel_get(be, f, o, cfg, k, NULL, err);
  qk->work += pairs;
  *k = qk;
  return RK_OK;
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
  rk_call_begin(o); /* NVRTC polls the interrupt callback through it */
  const rk_backend_i *be = rk_backend_pick(o);
  /* large inputs are converted into the backend's staging buffer (CUDA:
     page-locked, so the copies to the device run at full speed) */
  void *stage = NULL;
  if (be->staging) {
    size_t nb = rk_data_bytes(f, in, o->precision, ni, nj);
    if (nb >= RK_STAGE_MIN)
      stage = be->staging(o, nb);
  }
  rc = rk_data_prepare_in(f, in, o->precision, ni, nj, rk_nthreads(o), stage,
                          &d, err);
  rk_cg_config cfg;
  rk_cg_config_env(&cfg, o->precision);
  rk_kernel *k = NULL;
  if (rc == RK_OK && o->ndevices > 1 && o->devices == NULL)
    rc = rk_err(err, RK_EINPUT, -1, "%d devices but no list of them",
                o->ndevices);
  if (rc == RK_OK && o->ndevices > 1) {
    /* one kernel per part (a CUDA kernel belongs to its device), got
       here on the calling thread; the data are shared (host memory) */
    int np = o->ndevices;
    rk_kernel **ks = calloc((size_t)np, sizeof *ks);
    const rk_data **ds = calloc((size_t)np, sizeof *ds);
    if (!ks || !ds)
      rc = rk_err(err, RK_ENOMEM, -1, "out of memory");
    for (int p = 0; p < np && rc == RK_OK; p++) {
      rk_options q = rk_parts_options(o, p);
      ds[p] = &d;
      rc = rk_kernel_get(be, f, &q, &cfg, &ks[p], NULL, err);
    }
    if (rc == RK_OK && nout > 0) {
      rk_span s = {0, nout, 0, nred, out, nout, NULL, 0, 0, rk_nthreads(o)};
      rc = rk_parts_run(be, ks, f, o, ds, &s, err);
    }
    free(ks);
    free(ds);
  } else {
    if (rc == RK_OK)
      rc = tier_kernel(be, f, o, &cfg, (double)nout * (double)nred, &k, err);
    if (rc == RK_OK && nout > 0) {
      rk_span s = {0, nout, 0, nred, out, nout, NULL, 0, 0, rk_nthreads(o)};
      rc = be->run(k, f, o, &d, &s, err);
    }
  }
  rk_data_free(&d);
  rk_call_end();
  return rc;
}

int rk_formula_prepare(rk_formula *f, const rk_options *o, int *compiled,
                       rk_error *err) {
  rk_err_clear(err);
  if (compiled)
    *compiled = 0;
  rk_cg_config cfg;
  rk_cg_config_env(&cfg, o->precision);
  rk_kernel *k;
  rk_call_begin(o);
  int rc = rk_kernel_get(rk_backend_pick(o), f, o, &cfg, &k, compiled, err);
  rk_call_end();
  return rc;
}

int64_t rk_formula_source(rk_formula *f, const rk_options *o, char *buf,
                          size_t size, rk_error *err) {
  rk_buf key, src;
  rk_buf_init(&key);
  rk_buf_init(&src);
  rk_err_clear(err);
  const rk_backend_i *be = rk_backend_get(o->backend);
  if (be == NULL)
    return rk_err(err, RK_EVALUE, -1, "unknown backend %d", o->backend), -1;
  rk_cg_config cfg;
  rk_cg_config_env(&cfg, o->precision);
  /* the key of a source shown for inspection names no machine */
  rk_kernel_key(be, f, &cfg, "source", &key);
  int rc = key.oom ? rk_err(err, RK_ENOMEM, -1, "out of memory") : RK_OK;
  if (rc == RK_OK)
    rc = be->source(f, &cfg, key.s, &src, err);
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
  const rk_backend_i *be = rk_backend_get(RK_BACKEND_GPU);
  return be ? be->available(why, size) : 0;
}

size_t rk_config_describe(char *buf, size_t size) {
  rk_buf b;
  rk_buf_init(&b);
  rk_buf_printf(&b, "rkeops %s\n", RK_VERSION_STRING);
  for (int i = 0; i < rk_backend_count(); i++) {
    const rk_backend_i *be = rk_backend_get(i);
    char small[2048];
    size_t n = be->describe(small, sizeof small);
    if (n < sizeof small) {
      rk_buf_puts(&b, small);
    } else {
      char *big = malloc(n + 1);
      if (big) {
        be->describe(big, n + 1);
        rk_buf_puts(&b, big);
        free(big);
      }
    }
  }
  size_t len = b.len;
  if (buf && size > 0)
    snprintf(buf, size, "%s", b.s ? b.s : "");
  rk_buf_free(&b);
  return len;
}
