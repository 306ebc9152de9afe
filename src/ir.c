/*
 * ir.c -- the IR context: arena, hash-consing (rk_make), the checked
 * constructor rk_build, convenience builders, predicates, topological
 * order, and the op / reduction tables built from ops.def and red.def.
 */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir-check.h"

/* ---- the tables ---------------------------------------------------------- */

const rk_opinfo rk_ops[RK_OP__COUNT] = {
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls)       \
  [RK_OP_##E] = {name, na, nip, dimfn, cexpr, cls},
#include "ops.def"
#undef X
};

const rk_redinfo rk_reds[RK_RED__COUNT] = {
#define R(E, name, nf, hask, outkind, diff, unit, outdim, f1)                                    \
  [RK_RED_##E] = {name, nf, hask, outkind, diff},
#include "red.def"
#undef R
};

const char *const rk_cat_names[RK_CAT__COUNT] = {
    [RK_CAT_I] = "Vi", [RK_CAT_J] = "Vj", [RK_CAT_P] = "Pm"};
_Static_assert(RK_CAT_P + 1 == RK_CAT__COUNT,
               "rk_cat_names: one name per category of enum rk_cat");

int rk_op_lookup(const char *name, size_t len) {
  for (int i = 0; i < RK_OP__COUNT; i++)
    if (strlen(rk_ops[i].name) == len && memcmp(rk_ops[i].name, name, len) == 0)
      return i;
  return -1;
}

int rk_red_lookup(const char *name, size_t len) {
  for (int i = 0; i < RK_RED__COUNT; i++)
    if (strlen(rk_reds[i].name) == len &&
        memcmp(rk_reds[i].name, name, len) == 0)
      return i;
  return -1;
}

/* ---- the context -----------------------------------------------------------
 */

struct rk_ctx {
  rk_arena *arena;
  const rk_node **tab; /* hash-cons buckets (malloc'ed), chained by next */
  size_t nbuckets;
  int nnodes;
  rk_expand_fn expand; /* Grad & co; NULL: refused */
};

rk_ctx *rk_ctx_new(void) {
  rk_ctx *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->arena = rk_arena_new();
  c->nbuckets = 256;
  c->tab = calloc(c->nbuckets, sizeof *c->tab);
  if (c->arena == NULL || c->tab == NULL) {
    rk_ctx_free(c);
    return NULL;
  }
  return c;
}

void rk_ctx_free(rk_ctx *c) {
  if (c == NULL)
    return;
  rk_arena_free(c->arena);
  free(c->tab);
  free(c);
}

rk_arena *rk_ctx_arena(rk_ctx *c) {
  return c->arena;
}

int rk_ctx_nnodes(const rk_ctx *c) {
  return c->nnodes;
}

void rk_ctx_set_expand(rk_ctx *c, rk_expand_fn fn) {
  c->expand = fn;
}

static uint64_t rk_ir_hash(int op, int dim, const rk_node *const *args,
                           int nargs, const int *ip, int nip, double dp) {
  int head[4] = {op, dim, nargs, nip};
  uint64_t h = rk_hash_bytes(head, sizeof head, 0x1d);
  for (int i = 0; i < nargs; i++)
    h = rk_hash_bytes(&args[i]->hash, sizeof args[i]->hash, h);
  if (nip > 0)
    h = rk_hash_bytes(ip, (size_t)nip * sizeof *ip, h);
  if (op == RK_OP_CST)
    h = rk_hash_bytes(&dp, sizeof dp, h);
  return h;
}

static int rk_ir_same(const rk_node *n, int op, int dim,
                      const rk_node *const *args, int nargs, const int *ip,
                      int nip, double dp) {
  if (n->op != op || n->dim != dim || n->nargs != nargs || n->nip != nip)
    return 0;
  for (int i = 0; i < nargs; i++)
    if (n->args[i] != args[i])
      return 0;
  for (int i = 0; i < nip; i++)
    if (n->ip[i] != ip[i])
      return 0;
  /* bitwise: keeps -0.0 apart from 0.0, and NaN equal to itself */
  return op != RK_OP_CST || memcmp(&n->dp, &dp, sizeof dp) == 0;
}

static int rk_ir_grow(rk_ctx *c) {
  size_t nb = c->nbuckets * 2;
  const rk_node **tab = calloc(nb, sizeof *tab);
  if (tab == NULL)
    return 0;
  for (size_t i = 0; i < c->nbuckets; i++) {
    const rk_node *n = c->tab[i];
    while (n) {
      const rk_node *next = n->next;
      rk_node *m = (rk_node *)n; /* the context owns its nodes */
      size_t k = (size_t)(m->hash & (nb - 1));
      m->next = tab[k];
      tab[k] = m;
      n = next;
    }
  }
  free(c->tab);
  c->tab = tab;
  c->nbuckets = nb;
  return 1;
}

const rk_node *rk_make(rk_ctx *c, int op, int dim, const rk_node *const *args,
                       int nargs, const int *ip, int nip, double dp) {
  if (op != RK_OP_CST)
    dp = 0;
  uint64_t h = rk_ir_hash(op, dim, args, nargs, ip, nip, dp);
  size_t k = (size_t)(h & (c->nbuckets - 1));
  for (const rk_node *n = c->tab[k]; n; n = n->next)
    if (n->hash == h && rk_ir_same(n, op, dim, args, nargs, ip, nip, dp))
      return n;
  if ((size_t)c->nnodes >= c->nbuckets && rk_ir_grow(c))
    k = (size_t)(h & (c->nbuckets - 1));
  rk_node *n = rk_arena_alloc(c->arena, sizeof *n);
  if (n == NULL)
    return NULL;
  n->op = op;
  n->dim = dim;
  n->nargs = nargs;
  n->nip = nip;
  n->dp = dp;
  n->hash = h;
  for (int i = 0; i < nargs; i++) {
    n->args[i] = args[i];
    n->deps |= args[i]->deps;
  }
  for (int i = 0; i < nip; i++)
    n->ip[i] = ip[i];
  if (op == RK_OP_VAR)
    n->deps = ip[2] == RK_CAT_I   ? RK_DEP_I
              : ip[2] == RK_CAT_J ? RK_DEP_J
                                  : RK_DEP_P;
  n->id = c->nnodes++;
  n->next = c->tab[k];
  c->tab[k] = n;
  return n;
}

/* ---- the checked constructor ------------------------------------------------
 */

/* prefix the op's name to the reason a DIMFN wrote */
static void rk_ir_name_error(int op, rk_error *e) {
  if (e == NULL)
    return;
  char reason[sizeof e->msg];
  memcpy(reason, e->msg, sizeof reason);
  if (snprintf(e->msg, sizeof e->msg, "%s: %.*s", rk_ops[op].name,
               rk_utf8_prefix(reason, 4000), reason) >= (int)sizeof e->msg)
    rk_utf8_trim_end(e->msg);
}

const rk_node *rk_build(rk_ctx *c, int op, const rk_node *const *args,
                        int nargs, const int *ip, int nip, double dp,
                        rk_error *err) {
  if (op < 0 || op >= RK_OP__COUNT) {
    rk_err(err, RK_EINTERNAL, -1, "rk_build: unknown op %d", op);
    return NULL;
  }
  const rk_opinfo *oi = &rk_ops[op];
  if (nargs != oi->nargs || nip != oi->nip) {
    rk_err(err, RK_EINTERNAL, -1,
           "rk_build: %s takes %d argument(s) and %d integer parameter(s), "
           "got %d and %d",
           oi->name, oi->nargs, oi->nip, nargs, nip);
    return NULL;
  }
  /* padded copies: DIMFNs see NULL / 0 past the end */
  const rk_node *a[RK_MAX_ARGS + 1] = {0};
  int p[RK_MAX_IP + 1] = {0};
  for (int i = 0; i < nargs; i++) {
    if (args[i] == NULL) {
      rk_err(err, RK_EINTERNAL, -1, "rk_build: %s: argument %d is NULL",
             oi->name, i + 1);
      return NULL;
    }
    a[i] = args[i];
  }
  for (int i = 0; i < nip; i++)
    p[i] = ip[i];

  int dim;
  if (nargs == 0) {
    dim = rk_ir_dim_leaf(op, p, err);
  } else {
    dim = oi->dim(a, p, err);
    if (dim > 0 && (op == RK_OP_GRAD || op == RK_OP_DIFF ||
                    op == RK_OP_LAPLACIAN || op == RK_OP_DIVERGENCE))
      dim = rk_ir_dim_ad(op, a, err);
    if (dim < 0)
      rk_ir_name_error(op, err);
  }
  if (dim < 0)
    return NULL;
  if (dim > RK_IR_MAX_DIM) {
    rk_err(err, RK_EDIM, -1, "%s: dimension %d is larger than %d", oi->name,
           dim, RK_IR_MAX_DIM);
    return NULL;
  }
  if (op == RK_OP_GRAD || op == RK_OP_DIFF || op == RK_OP_LAPLACIAN ||
      op == RK_OP_DIVERGENCE) {
    if (c->expand == NULL) {
      rk_err(err, RK_EUNSUPPORTED, -1,
             "%s: differentiation is not available here (no expander in "
             "this context: see rk_ctx_set_expand)",
             oi->name);
      return NULL;
    }
    return c->expand(c, op, a, err);
  }

  const rk_node *n = rk_simplify(c, op, a, nargs, p, nip, dp, dim);
  if (n == NULL)
    rk_err(err, RK_ENOMEM, -1, "out of memory while building %s", oi->name);
  return n;
}

/* ---- convenience builders
 * ---------------------------------------------------- */

const rk_node *rk_var(rk_ctx *c, int pos, int dim, int cat, rk_error *e) {
  int ip[3] = {pos, dim, cat};
  return rk_build(c, RK_OP_VAR, NULL, 0, ip, 3, 0, e);
}

const rk_node *rk_intcst(rk_ctx *c, int n) {
  return rk_make(c, RK_OP_INTCST, 1, NULL, 0, &n, 1, 0);
}

const rk_node *rk_cst(rk_ctx *c, double v) {
  return rk_make(c, RK_OP_CST, 1, NULL, 0, NULL, 0, v);
}

const rk_node *rk_zero(rk_ctx *c, int dim) {
  if (dim < 1)
    return NULL;
  return rk_make(c, RK_OP_ZERO, dim, NULL, 0, &dim, 1, 0);
}

const rk_node *rk_op1(rk_ctx *c, int op, const rk_node *a, rk_error *e) {
  const rk_node *args[1] = {a};
  return rk_build(c, op, args, 1, NULL, 0, 0, e);
}

const rk_node *rk_op2(rk_ctx *c, int op, const rk_node *a, const rk_node *b,
                      rk_error *e) {
  const rk_node *args[2] = {a, b};
  return rk_build(c, op, args, 2, NULL, 0, 0, e);
}

const rk_node *rk_op3(rk_ctx *c, int op, const rk_node *a, const rk_node *b,
                      const rk_node *d, rk_error *e) {
  const rk_node *args[3] = {a, b, d};
  return rk_build(c, op, args, 3, NULL, 0, 0, e);
}

const rk_node *rk_op1i(rk_ctx *c, int op, const rk_node *a, int p0, int p1,
                       rk_error *e) {
  const rk_node *args[1] = {a};
  int ip[2] = {p0, p1};
  int nip = (op >= 0 && op < RK_OP__COUNT) ? rk_ops[op].nip : 0;
  return rk_build(c, op, args, 1, ip, nip, 0, e);
}

/* ---- predicates
 * ------------------------------------------------------------------ */

int rk_is_zero(const rk_node *n) {
  return n != NULL &&
         (n->op == RK_OP_ZERO || (n->op == RK_OP_INTCST && n->ip[0] == 0) ||
          (n->op == RK_OP_CST && n->dp == 0));
}

int rk_is_one(const rk_node *n) {
  return n != NULL && ((n->op == RK_OP_INTCST && n->ip[0] == 1) ||
                       (n->op == RK_OP_CST && n->dp == 1));
}

int rk_is_cst(const rk_node *n, double *v) {
  if (n == NULL)
    return 0;
  if (n->op == RK_OP_INTCST) {
    if (v)
      *v = n->ip[0];
    return 1;
  }
  if (n->op == RK_OP_CST) {
    if (v)
      *v = n->dp;
    return 1;
  }
  return 0;
}

/* ---- topological order (iterative: formulas may be deep)
 * ---------------------- */
/* The cost is in the nodes reachable from the roots, not in the size of the
   context: the AD driver orders one small formula per component of a
   Divergence in a context that holds all the others (a Laplacian in
   dimension d would otherwise cost d times the whole context). */

typedef struct topo_set { /* open addressing on node pointers */
  const rk_node **keys;
  size_t mask, used;
} topo_set;

static size_t topo_slot(const topo_set *s, const rk_node *n) {
  size_t i = (size_t)((uint64_t)n->id * 0x9E3779B97F4A7C15ULL >> 17) & s->mask;
  while (s->keys[i] != NULL && s->keys[i] != n)
    i = (i + 1) & s->mask;
  return i;
}

/* 1 when n was not in the set (now added), 0 when it was, -1 when OOM */
static int topo_add(topo_set *s, const rk_node *n) {
  if (2 * (s->used + 1) > s->mask + 1) {
    topo_set g = {calloc(2 * (s->mask + 1), sizeof *g.keys), 2 * s->mask + 1,
                  0};
    if (g.keys == NULL)
      return -1;
    for (size_t i = 0; i <= s->mask; i++)
      if (s->keys[i] != NULL)
        g.keys[topo_slot(&g, s->keys[i])] = s->keys[i];
    g.used = s->used;
    free(s->keys);
    *s = g;
  }
  size_t i = topo_slot(s, n);
  if (s->keys[i] == n)
    return 0;
  s->keys[i] = n;
  s->used++;
  return 1;
}

/* grow a malloc'ed array of *cap elements of size sz to hold need */
static int topo_grow(void *pp, size_t *cap, size_t need, size_t sz) {
  void **p = pp;
  if (need <= *cap)
    return 1;
  size_t nc = *cap ? *cap : 64;
  while (nc < need)
    nc *= 2;
  void *q = realloc(*p, nc * sz);
  if (q == NULL)
    return 0;
  *p = q;
  *cap = nc;
  return 1;
}

int rk_topo(rk_ctx *c, const rk_node *const *roots, int nroots,
            const rk_node ***out) {
  topo_set seen = {calloc(64, sizeof(const rk_node *)), 63, 0};
  const rk_node **order = NULL, **stack = NULL;
  int *next = NULL;
  size_t cap_order = 0, cap_stack = 0, cap_next = 0, count = 0;
  int ok = seen.keys != NULL;
  for (int r = 0; r < nroots && ok; r++) {
    if (roots[r] == NULL)
      continue;
    int added = topo_add(&seen, roots[r]);
    if (added <= 0) {
      ok = added == 0;
      continue;
    }
    size_t sp = 0;
    ok = topo_grow(&stack, &cap_stack, 1, sizeof *stack) &&
         topo_grow(&next, &cap_next, 1, sizeof *next);
    if (!ok)
      break;
    stack[sp] = roots[r];
    next[sp++] = 0;
    while (sp > 0 && ok) {
      const rk_node *t = stack[sp - 1];
      if (next[sp - 1] < t->nargs) {
        const rk_node *ch = t->args[next[sp - 1]++];
        int a = topo_add(&seen, ch);
        if (a < 0 ||
            (a > 0 && (!topo_grow(&stack, &cap_stack, sp + 1, sizeof *stack) ||
                       !topo_grow(&next, &cap_next, sp + 1, sizeof *next)))) {
          ok = 0;
        } else if (a > 0) {
          stack[sp] = ch;
          next[sp++] = 0;
        }
      } else {
        ok = topo_grow(&order, &cap_order, count + 1, sizeof *order);
        if (ok)
          order[count++] = t;
        sp--;
      }
    }
  }
  const rk_node **res =
      ok ? rk_arena_alloc(c->arena, (count + 1) * sizeof *res) : NULL;
  if (res != NULL && count > 0)
    memcpy(res, order, count * sizeof *res);
  free(seen.keys);
  free(order);
  free(stack);
  free(next);
  *out = res;
  return res != NULL ? (int)count : -1;
}
