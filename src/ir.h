/*
 * ir.h -- the immutable, hash-consed intermediate representation.
 *
 * A formula is a DAG of rk_node.  Nodes are created only through
 * rk_build() (or the helpers below), which checks dimensions with the op's
 * DIMFN, simplifies trivial algebra (ir-simplify.c), and returns the unique
 * node of the context with that (op, args, params, dim): structurally equal
 * subexpressions are the same pointer, so common subexpressions are shared
 * for free and pointer equality is structural equality.
 *
 * Modules:  ir.c (context, hash-consing, builders, topological order)
 *           ir-check.c (DIMFN functions: dimension rules)
 *           ir-simplify.c (rk_simplify: rewrites applied by rk_build)
 *           ir-format.c (canonical text)
 *           lex.c parse.c parse-decl.c (formula text -> rk_formula)
 * These files are the IR layer: they compile and link alone
 * (tools/ir-standalone.sh).  The layers above own their parallel tables,
 * indexed by enum rk_op and built from the same ops.def rows:
 *           ad.h ad.c ad-rules.c (Grad, Diff, Laplacian, Divergence; the
 *                 derivative rules rk_ad_rules[])
 *           cg.h cg-*.c (the emitters rk_cg_emitters[])
 * The IR reaches differentiation only through the context's expander
 * (rk_ctx_set_expand), which formula.c sets to rk_ad_expand.
 */
#ifndef RK_IR_H
#define RK_IR_H

#include "rk.h"

/* op-class flags of ops.def's CLASS column */
enum { RK_OPC_KEEPZ = 1, RK_OPC_KEEPZ_POS = 2, RK_OPC_LINEAR = 4 };

enum rk_op {
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls)       \
  RK_OP_##E,
#include "ops.def"
#undef X
  RK_OP__COUNT
};

enum rk_redop {
#define R(E, name, nf, hask, outkind, diff, unit, outdim, f1) RK_RED_##E,
#include "red.def"
#undef R
  RK_RED__COUNT
};

#define RK_MAX_ARGS 3
#define RK_MAX_IP   3

/* dependency flags of a node */
enum { RK_DEP_I = 1, RK_DEP_J = 2, RK_DEP_P = 4 };

typedef struct rk_node rk_node;
struct rk_node {
  int op;    /* enum rk_op                          */
  int dim;   /* output dimension (>= 1)             */
  int nargs; /* formula arguments                   */
  const rk_node *args[RK_MAX_ARGS];
  int nip;           /* integer parameters                  */
  int ip[RK_MAX_IP]; /* Var: {pos, dim, cat}; IntCst: {n};
                        Zero: {dim}; Pow: {n}; Round: {d};
                        ClampInt: {a, b}; Elem: {m};
                        ElemT: {n, m}; Extract: {start, len};
                        ExtractT: {start, dim}; OneHot: {dim};
                        SumT: {dim}                         */
  double dp;         /* Cst: the value                      */
  unsigned deps;     /* RK_DEP_* of the subtree             */
  int id;            /* creation order in the context       */
  uint64_t hash;
  const rk_node *next; /* hash-cons chain (internal)          */
};

typedef struct rk_ctx rk_ctx; /* arena + hash-cons table, one per compile */

rk_ctx *rk_ctx_new(void);
void rk_ctx_free(rk_ctx *c);
rk_arena *rk_ctx_arena(rk_ctx *c);
int rk_ctx_nnodes(const rk_ctx *c);

/* Expansion of GRAD / DIFF / LAPLACIAN / DIVERGENCE applied to args (their
   dimensions already checked): returns the plain formula, or NULL with e
   set.  rk_ad_expand (ad.h) is the one the engine uses. */
typedef const rk_node *(*rk_expand_fn)(rk_ctx *c, int op,
                                       const rk_node *const *args, rk_error *e);
/* the context's expander; NULL (the default) makes rk_build refuse the
   differentiation operations with RK_EUNSUPPORTED */
void rk_ctx_set_expand(rk_ctx *c, rk_expand_fn fn);

/* The one constructor.  Checks arity and dimensions (error RK_EDIM with a
   message naming the op and the dimensions), simplifies, hash-conses.
   Returns NULL with err set on failure.  GRAD/DIFF/LAPLACIAN/DIVERGENCE are
   expanded here by the context's expander (rk_ctx_set_expand). */
const rk_node *rk_build(rk_ctx *c, int op, const rk_node *const *args,
                        int nargs, const int *ip, int nip, double dp,
                        rk_error *err);

/* hash-cons without simplification (used by rk_simplify itself) */
const rk_node *rk_make(rk_ctx *c, int op, int dim, const rk_node *const *args,
                       int nargs, const int *ip, int nip, double dp);

/* convenience builders (all go through rk_build; NULL on error) */
const rk_node *rk_var(rk_ctx *c, int pos, int dim, int cat, rk_error *e);
const rk_node *rk_intcst(rk_ctx *c, int n);
const rk_node *rk_cst(rk_ctx *c, double v);
const rk_node *rk_zero(rk_ctx *c, int dim);
const rk_node *rk_op1(rk_ctx *c, int op, const rk_node *a, rk_error *e);
const rk_node *rk_op2(rk_ctx *c, int op, const rk_node *a, const rk_node *b,
                      rk_error *e);
const rk_node *rk_op3(rk_ctx *c, int op, const rk_node *a, const rk_node *b,
                      const rk_node *d, rk_error *e);
const rk_node *rk_op1i(rk_ctx *c, int op, const rk_node *a, int p0, int p1,
                       rk_error *e); /* one formula arg + 1 or 2 int params */

/* predicates */
int rk_is_zero(const rk_node *n);           /* Zero, Cst 0, IntCst 0  */
int rk_is_one(const rk_node *n);            /* Cst 1 or IntCst 1      */
int rk_is_cst(const rk_node *n, double *v); /* IntCst or Cst: value   */

/* nodes reachable from roots, children before parents, each once */
int rk_topo(rk_ctx *c, const rk_node *const *roots, int nroots,
            const rk_node ***out); /* returns count; *out arena-allocated */

/* ---- the op table as data ---- */
typedef int (*rk_dim_fn)(const rk_node *const *args, const int *ip,
                         rk_error *e); /* >= 1, or -1 with e set     */

/* the IR's columns of ops.def; the emitters (EMITFN) are in cg's table
   rk_cg_emitters (cg.h), the derivative rules (VJPFN) in ad's table
   rk_ad_rules (ad.h) */
typedef struct rk_opinfo {
  const char *name;
  int nargs, nip;
  rk_dim_fn dim;
  const char *cexpr; /* non-NULL: an elementwise op (ops.def CEXPR) */
  int cls;           /* RK_OPC_* flags (ops.def CLASS)              */
} rk_opinfo;

extern const rk_opinfo rk_ops[RK_OP__COUNT];

typedef struct rk_redinfo {
  const char *name; /* "Sum", spelled "Sum_Reduction" */
  int nf, hask, outkind;
  int diff; /* 1: has a gradient (red.def DIFF) */
} rk_redinfo;

extern const rk_redinfo rk_reds[RK_RED__COUNT];

/* the declaration kind of each category, by enum rk_cat: "Vi", "Vj", "Pm" */
#define RK_CAT__COUNT 3
extern const char *const rk_cat_names[RK_CAT__COUNT];

/* op / reduction lookup by formula-language name; -1 when unknown */
int rk_op_lookup(const char *name, size_t len);
int rk_red_lookup(const char *name, size_t len); /* name without _Reduction */

/* ---- a parsed reduction ---- */
typedef struct rk_vardecl {
  const char *name; /* "" for a variable only used as Var(...) */
  int dim;
  int cat; /* RK_CAT_I, RK_CAT_J, RK_CAT_P */
} rk_vardecl;

struct rk_formula {
  rk_ctx *ctx;
  int red;          /* enum rk_redop                                  */
  int axis;         /* 1: over j, one output per i; 0: over i         */
  int K;            /* for KMin & co, else 0                          */
  const rk_node *f; /* the reduced formula                            */
  const rk_node *w; /* weight (LogSumExpWeight, SumSoftMaxWeight)     */
  int outdim;
  int scheme; /* enum rk_scheme, AUTO resolved to BLOCK         */
  int nvars;
  rk_vardecl *vars; /* by position, arena-allocated                   */
  char *canonical;  /* rk_formula_canonical(), arena-allocated        */
  char key[33];     /* rk_hash_hex of the canonical text              */
};

/* canonical text of a node / of a whole formula (ir-format.c) */
void rk_format_node(rk_buf *b, const rk_node *n);
void rk_format_formula(rk_buf *b, const rk_formula *f);

#endif /* RK_IR_H */
