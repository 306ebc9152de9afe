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

#include <stdlib.h>
#include <string.h>

struct rk_operator {
  rk_formula *f;
  rk_options o;       /* a copy, without callbacks                   */
  char *cache_dir;    /* owned copy of o.cache_dir                   */
  const rk_backend_i *be;
  rk_cg_config cfg;
  rk_data d;
  int64_t nout, nred;
  int state_size, granule;
};

int64_t rk_op_nout(const rk_operator *op) { return op->nout; }
int64_t rk_op_nred(const rk_operator *op) { return op->nred; }
int rk_op_state_size(const rk_operator *op) { return op->state_size; }
int rk_op_granule(const rk_operator *op) { return op->granule; }

void rk_op_free(rk_operator *op) {
  if (op == NULL) return;
  if (op->d.dev && op->be->unbind) op->be->unbind(&op->d);
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

rk_operator *rk_op_prepare(rk_formula *f, const rk_options *o, const rk_input *in,
                     int nin, rk_error *e) {
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
  if (rk_inputs_check(f, in, nin, &ni, &nj, e) != RK_OK) return NULL;
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
  rk_cg_config_env(&op->cfg, o->precision);
  rk_kernel *k = NULL;
  int rc = (o->cache_dir && !op->cache_dir)
               ? rk_err(e, RK_ENOMEM, -1, "out of memory")
               : rk_data_prepare(f, in, o->precision, ni, nj, &op->d, e);
  if (rc == RK_OK) rc = rk_kernel_get(op->be, f, o, &op->cfg, &k, NULL, e);
  if (rc == RK_OK) {
    op->state_size = k->state_size;
    op->granule = k->granule > 0 ? k->granule : 1;
    if (op->be->bind) rc = op->be->bind(k, f, o, &op->d, e);
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
                  (long long)c->j1, (long long)op->nout,
                  (long long)op->nred);
  if ((c->mode & ~3) != 0 || ((c->mode & 2) == 0 && c->out == NULL &&
                              c->r1 > c->r0 && op->f->outdim > 0) ||
      (c->mode != 0 && c->st == NULL && c->r1 > c->r0))
    return rk_err(e, RK_EINPUT, -1, "mode %d: missing results or states",
                  c->mode);
  rk_options o = call_options(op, c->o);
  int rc = RK_OK;
  if (c->replace >= 0) {
    rc = rk_data_replace(op->f, c->replace, c->x, op->o.precision, &op->d, e);
    if (rc == RK_OK && op->d.dev && op->be->rebind)
      rc = op->be->rebind(op->f, &o, &op->d, c->replace, e);
    if (rc != RK_OK) return rc;
  }
  if (c->r1 == c->r0) return RK_OK;
  rk_kernel *k = NULL;
  rc = op_kernel(op, &o, &k, e);
  if (rc != RK_OK) return rc;
  rk_span s = {c->r0, c->r1, c->j0, c->j1, c->out, c->r1 - c->r0,
               c->st, c->r1 - c->r0, c->mode, rk_nthreads(&o)};
  return op->be->run(k, op->f, &o, &op->d, &s, e);
}

int rk_op_merge(rk_operator *op, const rk_merge_args *m, rk_error *e) {
  rk_err_clear(e);
  if (op == NULL || m == NULL || m->n < 0 || m->nparts < 1 ||
      (m->n > 0 && (m->st == NULL || m->ldst < m->n ||
                    (m->nparts > 1 && m->stpart < m->ldst * op->state_size) ||
                    (!(m->mode & 2) && (m->out == NULL || m->ldo < m->n)))))
    return rk_err(e, RK_EINPUT, -1, "invalid states to merge");
  if (m->n == 0) return RK_OK;
  rk_kernel *k = NULL;
  int rc = op_kernel(op, &op->o, &k, e);
  if (rc != RK_OK) return rc;
  return op->be->merge(k, m, e);
}
