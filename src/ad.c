/*
 * ad.c -- symbolic automatic differentiation of formulas.
 *
 * rk_ad_grad is reverse mode over the DAG: the nodes of f that depend on
 * the variable v are visited parents first (reverse topological order);
 * each one hands its cotangent to its arguments through the op's VJPFN
 * (ad-rules.c), and contributions to a node are added with rk_build, so
 * zeros vanish and shared subexpressions stay shared.  An argument of
 * dimension 1 that was broadcast against a larger one receives the Sum of
 * its contribution (or, when the contribution is zero outside one
 * component, e.g. behind a one-hot seed, that component).
 *
 * rk_ad_expand turns the formula-language operations into plain formulas:
 *   Grad(f, v, u)     reverse mode: u^T (df/dv), dimension dim v.
 *   Diff(f, v, u)     forward mode: (df/dv) u, dimension dim f, by double
 *                     transposition: Grad(Grad(f, v, w), w, u) with a fresh
 *                     dummy variable w of dimension dim f.  Grad(f, v, w) is
 *                     linear in w, so w disappears from the result.
 *   Divergence(f, v)  (dim f = dim v) sum_k d f_k / d v_k: one reverse
 *                     pass per component, with Elem pushed through
 *                     elementwise operations (ad_elem) so that the one-hot
 *                     seeds fold away and the sum is computed on scalars.
 *   Laplacian(f, v)   (dim f = 1) Divergence(Grad(f, v, 1), v), the trace
 *                     of the Hessian.
 * Each operation may add at most RK_AD_MAX_NODES nodes (ad.h); the cost
 * of a Divergence is linear in the dimension because rk_topo and the maps
 * here cost the nodes of the one component being differentiated.
 * The results are ordinary formulas, so every construction nests: Grad of
 * Grad, Hessian-vector products Diff(Grad(f, v, 1), v, u), ...
 */
#include "ad.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- a small map from node to its index in the topological order ---- */

typedef struct ad_map {
  const rk_node **keys;
  int *vals;
  size_t mask;
} ad_map;

static size_t ad_slot(const ad_map *m, const rk_node *n) {
  size_t h = (size_t)(n->hash ^ ((uint64_t)(uintptr_t)n >> 4));
  size_t i = h & m->mask;
  while (m->keys[i] != NULL && m->keys[i] != n)
    i = (i + 1) & m->mask;
  return i;
}

static int ad_map_init(ad_map *m, rk_arena *a, int count) {
  size_t cap = 16;
  while (cap < 2 * (size_t)count)
    cap <<= 1;
  m->keys = rk_arena_alloc(a, cap * sizeof *m->keys);
  m->vals = rk_arena_alloc(a, cap * sizeof *m->vals);
  m->mask = cap - 1;
  return m->keys && m->vals;
}

static int ad_map_get(const ad_map *m, const rk_node *n) {
  size_t i = ad_slot(m, n);
  return m->keys[i] == n ? m->vals[i] : -1;
}

static void ad_map_put(ad_map *m, const rk_node *n, int v) {
  size_t i = ad_slot(m, n);
  m->keys[i] = n;
  m->vals[i] = v;
}

static const rk_node *ad_fail(rk_error *e, int code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* set e (code, message) and return NULL */
static const rk_node *ad_fail(rk_error *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rk_verr(e, code, -1, fmt, ap);
  va_end(ap);
  return NULL;
}

static const rk_node *ad_oom(rk_error *e) {
  if (e != NULL && e->code == RK_OK)
    rk_err(e, RK_ENOMEM, -1, "out of memory while differentiating");
  return NULL;
}

/* ---- components: Elem pushed through sparse structure ------------------ */
/* The Divergence and Laplacian need single components of gradients whose
   seeds are one-hot (ElemT), and un-broadcasting sums vectors that are
   zero but in one component.  ad_elem(n, k) builds Elem(n, k), pushing it
   through elementwise operations (with dimension-1 operands left as they
   are: they broadcast), ElemT, SumT, Concat, Extract and ExtractT when
   that reaches such sparse structure, so that one-hot seeds fold away. */

typedef struct ad_memo {
  const rk_node **keys;
  int *ks;
  const rk_node **vals;
  size_t mask, used;
  rk_arena *a;
} ad_memo;

static int ad_memo_init(ad_memo *m, rk_arena *a, size_t cap) {
  m->a = a;
  m->mask = cap - 1;
  m->used = 0;
  m->keys = rk_arena_alloc(a, cap * sizeof *m->keys);
  m->ks = rk_arena_alloc(a, cap * sizeof *m->ks);
  m->vals = rk_arena_alloc(a, cap * sizeof *m->vals);
  return m->keys && m->ks && m->vals;
}

static size_t ad_memo_slot(const ad_memo *m, const rk_node *n, int k) {
  size_t i = (size_t)(n->hash * 31u + (uint64_t)k) & m->mask;
  while (m->keys[i] != NULL && (m->keys[i] != n || m->ks[i] != k))
    i = (i + 1) & m->mask;
  return i;
}

static int ad_memo_put(ad_memo *m, const rk_node *n, int k, const rk_node *v) {
  if (2 * (m->used + 1) > m->mask + 1) { /* grow (old arrays stay in arena) */
    ad_memo old = *m;
    if (!ad_memo_init(m, old.a, 2 * (old.mask + 1)))
      return 0;
    for (size_t i = 0; i <= old.mask; i++)
      if (old.keys[i] != NULL) {
        size_t j = ad_memo_slot(m, old.keys[i], old.ks[i]);
        m->keys[j] = old.keys[i];
        m->ks[j] = old.ks[i];
        m->vals[j] = old.vals[i];
        m->used++;
      }
  }
  size_t i = ad_memo_slot(m, n, k);
  m->keys[i] = n;
  m->ks[i] = k;
  m->vals[i] = v;
  m->used++;
  return 1;
}

/* does pushing Elem into n reach sparse structure? (bounded look-ahead) */
static int ad_sparse(const rk_node *n, int depth) {
  if (n->dim == 1)
    return 0;
  switch (n->op) {
  case RK_OP_ZERO:
  case RK_OP_ELEMT:
  case RK_OP_SUMT:
  case RK_OP_CONCAT:
  case RK_OP_EXTRACTT:
    return 1;
  default:
    break;
  }
  if (rk_ops[n->op].cexpr == NULL || depth <= 0)
    return 0;
  for (int i = 0; i < n->nargs; i++)
    if (n->args[i]->dim == 1 || ad_sparse(n->args[i], depth - 1))
      return 1;
  return 0;
}

static const rk_node *ad_elem_rec(rk_ctx *c, ad_memo *m, const rk_node *n,
                                  int k, rk_error *e) {
  if (n->dim == 1)
    return n;
  size_t slot = ad_memo_slot(m, n, k);
  if (m->keys[slot] != NULL)
    return m->vals[slot];
  const rk_node *r = NULL, *x = n->nargs > 0 ? n->args[0] : NULL;
  switch (n->op) {
  case RK_OP_ZERO:
    r = rk_zero(c, 1);
    break;
  case RK_OP_ELEMT:
    r = k == n->ip[1] ? x : rk_zero(c, 1);
    break;
  case RK_OP_SUMT:
    r = x;
    break;
  case RK_OP_CONCAT:
    r = k < x->dim ? ad_elem_rec(c, m, x, k, e)
                   : ad_elem_rec(c, m, n->args[1], k - x->dim, e);
    break;
  case RK_OP_EXTRACT:
    r = ad_elem_rec(c, m, x, n->ip[0] + k, e);
    break;
  case RK_OP_EXTRACTT:
    r = (k >= n->ip[0] && k < n->ip[0] + x->dim)
            ? ad_elem_rec(c, m, x, k - n->ip[0], e)
            : rk_zero(c, 1);
    break;
  default:
    if (ad_sparse(n, 4)) { /* elementwise: componentwise */
      const rk_node *a[RK_MAX_ARGS] = {0};
      for (int i = 0; i < n->nargs; i++)
        if ((a[i] = ad_elem_rec(c, m, n->args[i], k, e)) == NULL)
          return NULL;
      r = rk_build(c, n->op, a, n->nargs, n->ip, n->nip, n->dp, e);
    } else {
      r = rk_op1i(c, RK_OP_ELEM, n, k, 0, e);
    }
  }
  if (r == NULL || !ad_memo_put(m, n, k, r))
    return ad_oom(e);
  return r;
}

/* Elem(n, k), simplified */
static const rk_node *ad_elem(rk_ctx *c, const rk_node *n, int k, rk_error *e) {
  ad_memo m;
  if (!ad_memo_init(&m, rk_ctx_arena(c), 64))
    return ad_oom(e);
  return ad_elem_rec(c, &m, n, k, e);
}

/* the component outside of which n is known to be zero, or -1 */
static int ad_support(const rk_node *n, int depth) {
  int s = -1;
  if (n->dim == 1 || depth <= 0)
    return -1;
  switch (n->op) {
  case RK_OP_ELEMT:
    return n->ip[1];
  case RK_OP_EXTRACTT:
    return n->args[0]->dim == 1 ? n->ip[0] : -1;
  case RK_OP_MULT:
    if (n->args[0]->dim > 1)
      s = ad_support(n->args[0], depth - 1);
    if (s < 0 && n->args[1]->dim > 1)
      s = ad_support(n->args[1], depth - 1);
    return s;
  case RK_OP_DIVIDE:
  case RK_OP_MINUS:
    return n->args[0]->dim > 1 ? ad_support(n->args[0], depth - 1) : -1;
  default:
    return -1;
  }
}

/* Sum(d) of a contribution to a broadcast dimension-1 argument */
static const rk_node *ad_unbroadcast(rk_ctx *c, const rk_node *d, rk_error *e) {
  int m = ad_support(d, 16);
  if (m >= 0)
    return ad_elem(c, d, m, e);
  return rk_op1(c, RK_OP_SUM, d, e);
}

/* ---- reverse mode -------------------------------------------------------- */

const rk_node *rk_ad_grad(rk_ctx *c, const rk_node *f, const rk_node *v,
                          const rk_node *g, rk_error *e) {
  if (f == NULL || v == NULL || g == NULL)
    return ad_oom(e);
  if (v->op != RK_OP_VAR)
    return ad_fail(e, RK_EVAR,
                   "Grad: the variable of differentiation "
                   "must be a variable, not %s",
                   rk_ops[v->op].name);
  if (g->dim != f->dim) {
    if (g->dim != 1)
      return ad_fail(e, RK_EDIM,
                     "Grad: the gradient input has dimension "
                     "%d, the formula %d",
                     g->dim, f->dim);
    g = rk_op1i(c, RK_OP_SUMT, g, f->dim, 0, e); /* a scalar, replicated */
    if (g == NULL)
      return NULL;
  }

  const rk_node **topo = NULL;
  const rk_node *root = f;
  int nt = rk_topo(c, &root, 1, &topo);
  if (nt <= 0 || topo == NULL)
    return ad_oom(e);

  rk_arena *a = rk_ctx_arena(c);
  ad_map map;
  char *dep = rk_arena_alloc(a, (size_t)nt);
  const rk_node **cot = rk_arena_alloc(a, (size_t)nt * sizeof *cot);
  if (dep == NULL || cot == NULL || !ad_map_init(&map, a, nt))
    return ad_oom(e);

  /* which nodes depend on v (children come first in topo) */
  int any = 0;
  for (int k = 0; k < nt; k++) {
    const rk_node *n = topo[k];
    ad_map_put(&map, n, k);
    dep[k] = (n == v);
    for (int i = 0; i < n->nargs && !dep[k]; i++)
      dep[k] = dep[ad_map_get(&map, n->args[i])];
    any |= dep[k];
  }
  int fi = ad_map_get(&map, f);
  if (!any || fi < 0 || !dep[fi]) {
    const rk_node *z = rk_zero(c, v->dim);
    return z ? z : ad_oom(e);
  }

  /* parents first: hand each cotangent down to the arguments */
  cot[fi] = g;
  for (int k = fi; k >= 0; k--) {
    const rk_node *n = topo[k];
    if (!dep[k] || cot[k] == NULL || n == v || n->nargs == 0)
      continue;
    if (rk_is_zero(cot[k]))
      continue;
    rk_vjp_fn rule = rk_ad_rules[n->op];
    for (int i = 0; i < n->nargs; i++) {
      const rk_node *x = n->args[i];
      int xi = ad_map_get(&map, x);
      if (!dep[xi])
        continue;
      const rk_node *d = rule(c, n, i, cot[k], e);
      if (d == NULL)
        return ad_oom(e);
      if (d->dim != x->dim) {
        if (x->dim != 1)
          return ad_fail(e, RK_EINTERNAL,
                         "Grad: the derivative rule of "
                         "%s gave dimension %d for an argument of dimension "
                         "%d",
                         rk_ops[n->op].name, d->dim, x->dim);
        d = ad_unbroadcast(c, d, e);
        if (d == NULL)
          return ad_oom(e);
      }
      if (rk_is_zero(d))
        continue;
      cot[xi] = cot[xi] ? rk_op2(c, RK_OP_ADD, cot[xi], d, e) : d;
      if (cot[xi] == NULL)
        return ad_oom(e);
    }
  }
  int vi = ad_map_get(&map, v);
  const rk_node *r = cot[vi] ? cot[vi] : rk_zero(c, v->dim);
  return r ? r : ad_oom(e);
}

/* ---- Diff, Divergence, Laplacian ---------------------------------------- */

/* largest position of a variable in the given formulas, or -1 */
static int ad_maxpos(rk_ctx *c, const rk_node *const *roots, int nroots,
                     rk_error *e, int *ok) {
  const rk_node **topo = NULL;
  int nt = rk_topo(c, roots, nroots, &topo), m = -1;
  *ok = nt > 0 && topo != NULL;
  if (!*ok) {
    ad_oom(e);
    return -1;
  }
  for (int k = 0; k < nt; k++)
    if (topo[k]->op == RK_OP_VAR && topo[k]->ip[0] > m)
      m = topo[k]->ip[0];
  return m;
}

/* (df/dv) u by double transposition through a fresh variable */
static const rk_node *ad_diff(rk_ctx *c, const rk_node *f, const rk_node *v,
                              const rk_node *u, rk_error *e) {
  const rk_node *roots[3] = {f, v, u};
  int ok;
  int pos = ad_maxpos(c, roots, 3, e, &ok) + 1;
  if (!ok)
    return NULL;
  const rk_node *w = rk_var(c, pos, f->dim, RK_CAT_P, e);
  if (w == NULL)
    return ad_oom(e);
  const rk_node *h = rk_ad_grad(c, f, v, w, e);
  if (h == NULL)
    return NULL;
  return rk_ad_grad(c, h, w, u, e);
}

/* RK_AD_MAX_NODES: refuse when the operation `name`, which began with
   `start` nodes in the context, has made more than the budget */
static int ad_over_budget(rk_ctx *c, int start, const char *name, int dim,
                          rk_error *e) {
  int made = rk_ctx_nnodes(c) - start;
  if (made <= RK_AD_MAX_NODES)
    return 0;
  ad_fail(e, RK_EUNSUPPORTED,
          "%s: differentiation would add more than %d nodes to the formula "
          "(the limit RK_AD_MAX_NODES), with a variable of dimension %d: "
          "use a smaller dimension, or split the formula",
          name, RK_AD_MAX_NODES, dim);
  return 1;
}

/* ---- Divergence by structured Jacobians ----------------------------------
   For a field built from v with elementwise operations (a dimension-1
   operand broadcasting) the Jacobian of every node n of dimension d = dim v
   has the form J(n) = diag(a) + sum_i b_i c_i^T, where each c_i is the
   gradient of a scalar node s_i (dimension 1, broadcast into n) and a, b_i
   have dimension d, or 1 for a constant vector (a = 1: the identity):
     J(v) = diag(1);  J(op(u, w, s)) = sum over the arguments of
     diag(op'_u) J(u) + ... + op'_s grad(s)^T,
   the products diag(op'_u) x being the op's own VJP rule applied to x
   (elementwise rules are componentwise and broadcast a dimension-1 x).
   The divergence is the trace, Sum(a) + sum_i (b_i | c_i) (d a and
   b_i Sum(c_i) for dimension-1 a and b_i): a few nodes of dimension d whatever
   d, instead of one scalar formula per component.  Any other operation of
   dimension d on the way (Concat, Extract, MatVecMult, ...) makes
   ad_divergence fall back on components (NULL with no error here). */

#define AD_SJ_MAXTERMS 16

typedef struct ad_sj {
  int ok;           /* the structure above holds for this node       */
  const rk_node *a; /* NULL: no diagonal part                        */
  int nt;
  const rk_node *b[AD_SJ_MAXTERMS], *cv[AD_SJ_MAXTERMS];
  const rk_node *grad; /* dimension-1 nodes: their gradient (lazily)  */
} ad_sj;

/* J += (b, cv), merging terms of the same gradient; 0 when full */
static int ad_sj_term(rk_ctx *c, ad_sj *j, const rk_node *b, const rk_node *cv,
                      rk_error *e) {
  for (int i = 0; i < j->nt; i++)
    if (j->cv[i] == cv)
      return (j->b[i] = rk_op2(c, RK_OP_ADD, j->b[i], b, e)) != NULL;
  if (j->nt == AD_SJ_MAXTERMS)
    return 0;
  j->b[j->nt] = b;
  j->cv[j->nt++] = cv;
  return 1;
}

/* the trace of J(f), or NULL: out of memory (e set) or no structure */
static const rk_node *ad_divergence_sj(rk_ctx *c, const rk_node *f,
                                       const rk_node *v, rk_error *e) {
  const rk_node **topo = NULL;
  int nt = rk_topo(c, &f, 1, &topo), d = v->dim;
  if (nt <= 0 || topo == NULL)
    return ad_oom(e);
  rk_arena *ar = rk_ctx_arena(c);
  ad_map map;
  ad_sj *J = rk_arena_alloc(ar, (size_t)nt * sizeof *J);
  char *dep = rk_arena_alloc(ar, (size_t)nt);
  const rk_node *one = rk_intcst(c, 1);
  if (J == NULL || dep == NULL || one == NULL || !ad_map_init(&map, ar, nt))
    return ad_oom(e);
  for (int k = 0; k < nt; k++) {
    const rk_node *n = topo[k];
    ad_map_put(&map, n, k);
    dep[k] = n == v;
    for (int i = 0; i < n->nargs && !dep[k]; i++)
      dep[k] = dep[ad_map_get(&map, n->args[i])];
    ad_sj *j = &J[k];
    j->ok = 1; /* zero when independent of v, a scalar otherwise */
    if (!dep[k] || n->dim == 1)
      continue;
    if (n == v) {
      j->a = one;
      continue;
    }
    j->ok = n->dim == d && rk_ops[n->op].cexpr != NULL;
    for (int i = 0; i < n->nargs && j->ok; i++) {
      const rk_node *x = n->args[i];
      int xi = ad_map_get(&map, x);
      if (!dep[xi])
        continue;
      const ad_sj *jx = &J[xi];
      if (x->dim == 1) { /* broadcast scalar s: op'_s grad(s)^T */
        ad_sj *js = &J[xi];
        if (js->grad == NULL &&
            (js->grad = rk_ad_grad(c, x, v, one, e)) == NULL)
          return NULL;
        const rk_node *b = rk_ad_rules[n->op](c, n, i, one, e);
        if (b == NULL)
          return NULL;
        if (rk_is_zero(b))
          continue;
        j->ok =
            (b->dim == d || b->dim == 1) && ad_sj_term(c, j, b, js->grad, e);
        continue;
      }
      if (!jx->ok || x->dim != d) {
        j->ok = 0;
        break;
      }
      /* diag(op'_x) J(x): the rule applied to a and to each b */
      if (jx->a != NULL) {
        const rk_node *a = rk_ad_rules[n->op](c, n, i, jx->a, e);
        if (a == NULL)
          return NULL;
        if (!rk_is_zero(a)) {
          if (a->dim != d && a->dim != 1) {
            j->ok = 0;
            break;
          }
          j->a = j->a ? rk_op2(c, RK_OP_ADD, j->a, a, e) : a;
          if (j->a == NULL)
            return ad_oom(e);
        }
      }
      for (int t = 0; t < jx->nt && j->ok; t++) {
        const rk_node *b = rk_ad_rules[n->op](c, n, i, jx->b[t], e);
        if (b == NULL)
          return NULL;
        if (!rk_is_zero(b))
          j->ok =
              (b->dim == d || b->dim == 1) && ad_sj_term(c, j, b, jx->cv[t], e);
      }
    }
    if (e != NULL && e->code != RK_OK)
      return NULL;
  }
  const ad_sj *jf = &J[ad_map_get(&map, f)];
  if (!jf->ok)
    return NULL; /* no error set: the caller falls back */
  const rk_node *tr = jf->a == NULL ? rk_zero(c, 1)
                      : jf->a->dim == 1
                          ? rk_op2(c, RK_OP_MULT, rk_intcst(c, d), jf->a, e)
                          : rk_op1(c, RK_OP_SUM, jf->a, e);
  for (int t = 0; t < jf->nt && tr; t++) {
    const rk_node *b = jf->b[t], *cv = jf->cv[t];
    tr = rk_op2(c, RK_OP_ADD, tr,
                b->dim == 1
                    ? rk_op2(c, RK_OP_MULT, b, rk_op1(c, RK_OP_SUM, cv, e), e)
                    : rk_op2(c, RK_OP_SCALPROD, b, cv, e),
                e);
  }
  return tr ? tr : ad_oom(e);
}

static const rk_node *ad_divergence(rk_ctx *c, const rk_node *f,
                                    const rk_node *v, int start,
                                    const char *name, rk_error *e) {
  if (f->dim != v->dim)
    return ad_fail(e, RK_EDIM,
                   "Divergence: the formula has dimension "
                   "%d, the variable %d",
                   f->dim, v->dim);
  const rk_node *one = rk_intcst(c, 1), *sum = NULL;
  if (one == NULL)
    return ad_oom(e);
  if (f->dim == 1)
    return rk_ad_grad(c, f, v, one, e);
  int code = e ? e->code : RK_OK;
  const rk_node *tr = ad_divergence_sj(c, f, v, e);
  if (tr != NULL || (e != NULL && e->code != code))
    return tr; /* the trace, or an error; else component by component */
  for (int k = 0; k < f->dim; k++) {
    const rk_node *fk = ad_elem(c, f, k, e);
    const rk_node *gk = fk ? rk_ad_grad(c, fk, v, one, e) : NULL;
    const rk_node *dk = gk ? ad_elem(c, gk, k, e) : NULL;
    if (dk == NULL)
      return ad_oom(e);
    sum = sum ? rk_op2(c, RK_OP_ADD, sum, dk, e) : dk;
    if (sum == NULL)
      return ad_oom(e);
    if (ad_over_budget(c, start, name, v->dim, e)) /* one per component */
      return NULL;
  }
  return sum;
}

const rk_node *rk_ad_expand(rk_ctx *c, int op, const rk_node *const *args,
                            rk_error *e) {
  const char *name = (op >= 0 && op < RK_OP__COUNT) ? rk_ops[op].name : "?";
  int na = (op >= 0 && op < RK_OP__COUNT) ? rk_ops[op].nargs : 0;
  for (int i = 0; i < na; i++)
    if (args[i] == NULL)
      return ad_oom(e);
  if (na >= 2 && args[1]->op != RK_OP_VAR)
    return ad_fail(e, RK_EVAR,
                   "%s: the second argument must be a "
                   "variable, not %s",
                   name, rk_ops[args[1]->op].name);
  int start = rk_ctx_nnodes(c);
  const rk_node *r;
  switch (op) {
  case RK_OP_GRAD:
    r = rk_ad_grad(c, args[0], args[1], args[2], e);
    break;
  case RK_OP_DIFF:
    if (args[2]->dim != args[1]->dim)
      return ad_fail(e, RK_EDIM,
                     "Diff: the direction has dimension %d, "
                     "the variable %d",
                     args[2]->dim, args[1]->dim);
    r = ad_diff(c, args[0], args[1], args[2], e);
    break;
  case RK_OP_DIVERGENCE:
    r = ad_divergence(c, args[0], args[1], start, name, e);
    break;
  case RK_OP_LAPLACIAN: {
    if (args[0]->dim != 1)
      return ad_fail(e, RK_EDIM,
                     "Laplacian: the formula must have "
                     "dimension 1, not %d",
                     args[0]->dim);
    const rk_node *one = rk_intcst(c, 1);
    const rk_node *gr = one ? rk_ad_grad(c, args[0], args[1], one, e) : NULL;
    r = gr ? ad_divergence(c, gr, args[1], start, name, e) : ad_oom(e);
    break;
  }
  default:
    return ad_fail(e, RK_EINTERNAL,
                   "rk_ad_expand: %s is not a "
                   "differentiation operation",
                   name);
  }
  /* reverse mode is linear in the formula: checked once, at the end */
  if (r != NULL && ad_over_budget(c, start, name, args[1]->dim, e))
    return NULL;
  return r;
}
