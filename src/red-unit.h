/*
 * red-unit.h -- a reduction family is one unit: its state and its code
 * snippets behind one interface.  red.def names the unit of each reduction
 * (column UNIT); cg-reduce.c dispatches rk_cg_red_* (cg.h) to it and writes
 * what every family shares from the unit's state layout (the declarations,
 * init, store/load of partial states, the state size).  One file per
 * family: red-sum.c (Sum and its summation schemes), red-minmax.c (Min,
 * Max and their Arg forms), red-kmin.c (KMin, ArgKMin, KMin_ArgKMin),
 * red-lse.c (LogSumExp, LogSumExpWeight, SumSoftMaxWeight).
 *
 * The state of one output row is a set of local C variables whose names
 * start with the prefix `acc` (see each unit for its meaning):
 *   acc[n]                  values (type T, or double: block_sum in float32)
 *   acc_t[n]                float tile sums (block_sum on CUDA)
 *   acc_c[n] or acc_i[n]    Kahan compensations, or 0-based indices (-1: none)
 *   acc_m, acc_z            running max, sum of exponentials (LogSumExp family)
 * A stored state is acc[0..n) then the second array [0..n) then acc_m, acc_z.
 *
 * A unit also gives the gradient plan of its differentiable reductions
 * (grad, below): the formula whose Sum reduction is the gradient, and the
 * forward reductions that formula needs.
 */
#ifndef RK_RED_UNIT_H
#define RK_RED_UNIT_H

#include "cg.h"

/* the state of one output row */
typedef struct rk_red_layout {
  int n;              /* length of acc[]                               */
  const char *vtype;  /* its C type: "T" or "double"                   */
  int tile;           /* acc_t[n]: float tile sums, flushed per tile   */
  int lo;             /* acc_l[n]: the float low part of acc (acc + acc_l
                         is the sum; block_sum with g->tile_sums == 2)   */
  const char *second; /* "_c", "_i" or NULL: the second array of n     */
  const char *stype;  /* its C type                                    */
  const char *sinit;  /* its initial value                             */
  int m, z;           /* acc_m, acc_z                                  */
  const char *init;   /* initial value of acc[] (empty reduction)      */
} rk_red_layout;

/* The gradient plan of a differentiable reduction (red.def DIFF): its
   gradient is the Sum reduction of Grad(body, x, eta), where body may use
   the outputs of forward reductions of the same formula (and weight), which
   the gradient operator computes first and passes in as variables indexed
   like the output.  formula-grad.c builds the whole gradient formula. */
enum { RK_RED_MAXFWD = 2 };
typedef struct rk_red_grad {
  int nfwd; /* forward outputs the body uses                      */
  /* forward output k: the reduction (RK_RED_*; f->red: the reduction
     itself) of f's formula (and weight when it takes one), its output
     dimension, the base of its input's name in the gradient operator */
  int fwd_red[RK_RED_MAXFWD];
  int fwd_dim[RK_RED_MAXFWD];
  const char *fwd_name[RK_RED_MAXFWD];
  const rk_node *body; /* in the context given to grad                 */
} rk_red_grad;

typedef struct rk_red_unit {
  const char *family;
  /* the layout; g may be NULL (only the counts are then meaningful) */
  void (*layout)(const rk_cg *g, const rk_formula *f, rk_red_layout *L);
  /* fold the pair (fpat, wpat: patterns of the formula's and weight's
     components, %s the component; jexpr: the point's 0-based index) */
  void (*update)(rk_cg *g, const rk_formula *f, const char *acc,
                 const char *fpat, const char *wpat, const char *jexpr);
  void (*flush)(rk_cg *g, const rk_formula *f, const char *acc); /* or NULL */
  void (*merge)(rk_cg *g, const rk_formula *f, const char *acc,
                const char *acc2);
  /* the result components (outpat: %s the output component) */
  void (*final)(rk_cg *g, const rk_formula *f, const char *acc,
                const char *outpat);
  /* the gradient plan, NULL for a unit whose reductions select points (no
     derivative): fill gr, building in context c (where f's nodes live),
     forward output k being the variable Var(pos0 + k, fwd_dim[k], cat);
     RK_OK, or an error code with e set */
  int (*grad)(rk_ctx *c, const rk_formula *f, int pos0, int cat,
              rk_red_grad *gr, rk_error *e);
} rk_red_unit;

extern const rk_red_unit rk_red_unit_sum, rk_red_unit_minmax, rk_red_unit_kmin,
    rk_red_unit_lse;

/* the unit of a reduction (red.def UNIT) */
const rk_red_unit *rk_red_unit_of(int red);

/* ---- shared by the units (cg-reduce.c) ---- */
enum { RK_RED_MAXE = 256 };
/* expand pattern pat (one %s) with component expression c into out
   (RK_RED_MAXE bytes) */
const char *rk_red_pat1(char *out, const char *pat, const char *c);
/* open "for rk_c < n" (or a block when n == 1); returns the index text */
const char *rk_red_cloop(rk_cg *g, int n);
void rk_red_cend(rk_cg *g);
int rk_red_fdim(const rk_formula *f);
int rk_red_wdim(const rk_formula *f);

#endif /* RK_RED_UNIT_H */
