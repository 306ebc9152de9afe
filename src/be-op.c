/*
 * be-op.c -- the prepared operator (be.h): one formula, its inputs
 * checked and converted once (and bound to the device on a backend that
 * can keep them there), run many times on parts of the rows and of the
 * reduction range, with one input replaced by new values.  solve() and a
 * split of a reduction over workers stand on it.
 *
 * The kernel is compiled (or loaded) by rk_op_prepare and looked up in the
 * memory cache by each run (a key and a hash: microseconds), so that
 * clean_rkeops() between two runs costs a reload, never a stale kernel.
 */
#define _GNU_SOURCE
#include "be.h"
#include "threads.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rk_operator {
  rk_formula *f;
  rk_options o;    /* a copy, without callbacks                   */
  char *cache_dir; /* owned copy of o.cache_dir                   */
  const rk_backend_i *be;
  rk_cg_config cfg;
  rk_data d;
  int64_t nout, nred;
  int state_size, granule;
  /* several parts (o->ndevices > 1): part p is an operator on device p
     for the rows [cut[p], cut[p + 1]), fixed at prepare time so that each
     device keeps its data between runs; the op itself then holds no data */
  int nparts, threaded;
  rk_operator **part;
  int64_t *cut;
};

int64_t rk_op_nout(const rk_operator *op) {
  return op->nout;
}
int64_t rk_op_nred(const rk_operator *op) {
  return op->nred;
}
int rk_op_state_size(const rk_operator *op) {
  return op->state_size;
}
int rk_op_granule(const rk_operator *op) {
  return op->granule;
}

void rk_op_free(rk_operator *op) {
  if (op == NULL)
    return;
  for (int p = 0; p < op->nparts && op->part; p++)
    rk_op_free(op->part[p]);
  free(op->part);
  free(op->cut);
  if (op->d.dev && op->be->unbind)
    op->be->unbind(&op->d);
  rk_data_free(&op->d);
  free(op->cache_dir);
  free(op);
}

/* the options of a call: the op's, with the caller's callbacks */
static rk_options call_options(const rk_operator *op, const rk_options *cb) {
  rk_options o = op->o;
  if (cb) {
    o.interrupted = cb->interrupted;
    o.interrupt_data = cb->interrupt_data;
    o.message = cb->message;
    o.message_data = cb->message_data;
    o.verbose = cb->verbose;
  }
  return o;
}

static rk_operator *op_prepare_parts(rk_operator *op, rk_formula *f,
                                     const rk_options *o, const rk_input *in,
                                     int nin, rk_error *e) {
  int np = o->ndevices;
  op->nparts = np;
  op->part = calloc((size_t)np, sizeof *op->part);
  op->cut = malloc((size_t)(np + 1) * sizeof *op->cut);
  if (!op->part || !op->cut || !o->devices) {
    rk_err(e, o->devices ? RK_ENOMEM : RK_EINPUT, -1,
           o->devices ? "out of memory" : "no list of devices");
    rk_op_free(op);
    return NULL;
  }
  rk_parts_split(op->be->id, o->devices, np, op->nout, op->cut);
  op->threaded = rk_parts_threaded(op->be, o->devices, np);
  for (int p = 0; p < np; p++) {
    rk_options q = rk_parts_options(o, p);
    op->part[p] = rk_op_prepare(f, &q, in, nin, e);
    if (op->part[p] == NULL) {
      if (e) {
        char m[sizeof e->msg];
        snprintf(m, sizeof m, "part %d (device %d): %.3900s", p + 1, q.device,
                 e->msg);
        memcpy(e->msg, m, sizeof m);
      }
      rk_op_free(op);
      return NULL;
    }
  }
  op->state_size = op->part[0]->state_size;
  op->granule = op->part[0]->granule;
  op->o.ndevices = 0; /* the list need not outlive the call */
  op->o.devices = NULL;
  return op;
}

typedef struct op_job {
  rk_operator *op;
  rk_op_call c;
  rk_error e;
  int rc;
} op_job;

static void *op_thread(void *arg) {
  op_job *j = arg;
  j->rc = rk_op_run(j->op, &j->c, &j->e);
  return NULL;
}

/* a call on several parts: each part computes its rows of [r0, r1) (and
   takes the replacement, so that every part's copy stays current) */
static int op_run_parts(rk_operator *op, const rk_op_call *c, rk_error *e) {
  int np = op->nparts, rc = RK_OK;
  op_job *jobs = calloc((size_t)np, sizeof *jobs);
  pthread_t *tid = calloc((size_t)np, sizeof *tid);
  char *started = calloc((size_t)np, 1);
  if (!jobs || !tid || !started) {
    free(jobs), free(tid), free(started);
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  }
  rk_options quiet = {0};
  if (c->o) {
    quiet = *c->o;
    quiet.interrupted = NULL;
    quiet.message = NULL;
    quiet.verbose = 0;
  }
  for (int p = 0; p < np; p++) {
    op_job *j = &jobs[p];
    int64_t a = op->cut[p] > c->r0 ? op->cut[p] : c->r0;
    int64_t b = op->cut[p + 1] < c->r1 ? op->cut[p + 1] : c->r1;
    if (b < a)
      b = a; /* no rows here: only the replacement */
    j->op = op->part[p];
    j->c = *c;
    j->c.r0 = a;
    j->c.r1 = b;
    /* a call's blocks are (r1 - r0) x k: the part's rows go to buffers
       of its own and are copied into the caller's afterwards */
    j->c.out = j->c.st = NULL;
    size_t n = (size_t)(b - a);
    if (c->out && n > 0 && op->f->outdim > 0 &&
        !(j->c.out = malloc(n * (size_t)op->f->outdim * sizeof(double))))
      rc = RK_ENOMEM;
    if (c->st && n > 0 &&
        !(j->c.st = malloc(n * (size_t)op->state_size * sizeof(double))))
      rc = RK_ENOMEM;
    if (j->c.st && (c->mode & 1))
      for (int q = 0; q < op->state_size; q++)
        memcpy(j->c.st + (size_t)q * n,
               c->st + (size_t)q * (size_t)(c->r1 - c->r0) + (a - c->r0),
               n * sizeof(double));
    rk_err_clear(&j->e);
    if (rc != RK_OK)
      break;
    if (op->threaded) {
      j->c.o = c->o ? &quiet : NULL; /* no R callback off the main thread */
      started[p] = rk_thread_start(&tid[p], 0, 0, op_thread, j) == 0;
      if (started[p])
        continue;
    }
    op_thread(j);
  }
  for (int p = 0; p < np; p++)
    if (started[p])
      pthread_join(tid[p], NULL);
  if (rc != RK_OK)
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
  int64_t ld = c->r1 - c->r0;
  for (int p = 0; p < np && rc == RK_OK; p++) {
    op_job *j = &jobs[p];
    size_t n = (size_t)(j->c.r1 - j->c.r0), at = (size_t)(j->c.r0 - c->r0);
    if (j->rc != RK_OK || n == 0)
      continue;
    if (j->c.out && !(c->mode & 2))
      for (int q = 0; q < op->f->outdim; q++)
        memcpy(c->out + (size_t)q * (size_t)ld + at, j->c.out + (size_t)q * n,
               n * sizeof(double));
    if (j->c.st && (c->mode & 2))
      for (int q = 0; q < op->state_size; q++)
        memcpy(c->st + (size_t)q * (size_t)ld + at, j->c.st + (size_t)q * n,
               n * sizeof(double));
  }
  for (int p = 0; p < np; p++) {
    free(jobs[p].c.out);
    free(jobs[p].c.st);
  }
  for (int p = 0; p < np && rc == RK_OK; p++)
    if (jobs[p].rc != RK_OK) {
      rc = jobs[p].rc;
      if (e) {
        *e = jobs[p].e;
        char m[sizeof e->msg];
        snprintf(m, sizeof m, "part %d: %.3900s", p + 1, jobs[p].e.msg);
        memcpy(e->msg, m, sizeof m);
      }
    }
  free(jobs), free(tid), free(started);
  return rc;
}

rk_operator *rk_op_prepare(rk_formula *f, const rk_options *o,
                           const rk_input *in, int nin, rk_error *e) {
  int64_t ni, nj;
  rk_err_clear(e);
  if (f == NULL || o == NULL) {
    rk_err(e, RK_EINPUT, -1, "no formula or no options");
    return NULL;
  }
  if (o->precision != 32 && o->precision != 64) {
    rk_err(e, RK_EVALUE, -1, "precision must be 32 or 64, not %d",
           o->precision);
    return NULL;
  }
  if (rk_inputs_check(f, in, nin, &ni, &nj, e) != RK_OK)
    return NULL;
  rk_operator *op = calloc(1, sizeof *op);
  if (op == NULL) {
    rk_err(e, RK_ENOMEM, -1, "out of memory");
    return NULL;
  }
  op->f = f;
  op->o = *o;
  op->o.interrupted = NULL;
  op->o.message = NULL;
  op->o.verbose = 0;
  if (o->cache_dir) {
    op->cache_dir = strdup(o->cache_dir);
    op->o.cache_dir = op->cache_dir;
  }
  op->nout = f->axis == 1 ? ni : nj;
  op->nred = f->axis == 1 ? nj : ni;
  op->be = rk_backend_pick(o);
  if (o->ndevices > 1)
    return op_prepare_parts(op, f, o, in, nin, e);
  rk_cg_config_env(&op->cfg, o->precision);
  rk_kernel *k = NULL;
  int rc = (o->cache_dir && !op->cache_dir)
               ? rk_err(e, RK_ENOMEM, -1, "out of memory")
               : rk_data_prepare(f, in, o->precision, ni, nj, rk_nthreads(o),
                                 &op->d, e);
  if (rc == RK_OK)
    rc = rk_kernel_get(op->be, f, o, &op->cfg, &k, NULL, e);
  if (rc == RK_OK) {
    op->state_size = k->state_size;
    op->granule = k->granule > 0 ? k->granule : 1;
    if (op->be->bind)
      rc = op->be->bind(k, f, o, &op->d, e);
  }
  if (rc != RK_OK) {
    rk_op_free(op);
    return NULL;
  }
  return op;
}

static int op_kernel(rk_operator *op, const rk_options *o, rk_kernel **k,
                     rk_error *e) {
  return rk_kernel_get(op->be, op->f, o, &op->cfg, k, NULL, e);
}

int rk_op_run(rk_operator *op, const rk_op_call *c, rk_error *e) {
  rk_err_clear(e);
  if (op == NULL || c == NULL)
    return rk_err(e, RK_EINPUT, -1, "no operator or no call");
  if (c->r0 < 0 || c->r1 < c->r0 || c->r1 > op->nout || c->j0 < 0 ||
      c->j1 < c->j0 || c->j1 > op->nred)
    return rk_err(e, RK_EINPUT, -1,
                  "rows [%lld, %lld) and points [%lld, %lld) must lie in "
                  "[0, %lld) and [0, %lld)",
                  (long long)c->r0, (long long)c->r1, (long long)c->j0,
                  (long long)c->j1, (long long)op->nout, (long long)op->nred);
  if ((c->mode & ~3) != 0 ||
      ((c->mode & 2) == 0 && c->out == NULL && c->r1 > c->r0 &&
       op->f->outdim > 0) ||
      (c->mode != 0 && c->st == NULL && c->r1 > c->r0))
    return rk_err(e, RK_EINPUT, -1, "mode %d: missing results or states",
                  c->mode);
  if (op->nparts > 1)
    return op_run_parts(op, c, e);
  rk_options o = call_options(op, c->o);
  int rc = RK_OK;
  if (c->replace >= 0) {
    rc = rk_data_replace(op->f, c->replace, c->x, op->o.precision, &op->d, e);
    if (rc == RK_OK && op->d.dev && op->be->rebind)
      rc = op->be->rebind(op->f, &o, &op->d, c->replace, e);
    if (rc != RK_OK)
      return rc;
  }
  if (c->r1 == c->r0)
    return RK_OK;
  rk_kernel *k = NULL;
  rc = op_kernel(op, &o, &k, e);
  if (rc != RK_OK)
    return rc;
  rk_span s = {c->r0,         c->r1, c->j0,         c->j1,   c->out,
               c->r1 - c->r0, c->st, c->r1 - c->r0, c->mode, rk_nthreads(&o)};
  return op->be->run(k, op->f, &o, &op->d, &s, e);
}

int rk_op_merge(rk_operator *op, const rk_merge_args *m, rk_error *e) {
  rk_err_clear(e);
  if (op == NULL || m == NULL || m->n < 0 || m->nparts < 1 ||
      (m->n > 0 && (m->st == NULL || m->ldst < m->n ||
                    (m->nparts > 1 && m->stpart < m->ldst * op->state_size) ||
                    (!(m->mode & 2) && (m->out == NULL || m->ldo < m->n)))))
    return rk_err(e, RK_EINPUT, -1, "invalid states to merge");
  if (m->n == 0)
    return RK_OK;
  if (op->nparts > 1)
    return rk_op_merge(op->part[0], m, e);
  rk_kernel *k = NULL;
  int rc = op_kernel(op, &op->o, &k, e);
  if (rc != RK_OK)
    return rc;
  return op->be->merge(k, m, e);
}

int rk_op_pin(rk_operator *op, void *p, size_t bytes) {
  if (op == NULL || p == NULL || bytes == 0 || op->be->pin == NULL)
    return 0;
  return op->be->pin(&op->o, p, bytes) == 0;
}

void rk_op_unpin(rk_operator *op, void *p) {
  if (op != NULL && p != NULL && op->be->unpin != NULL)
    op->be->unpin(p);
}
