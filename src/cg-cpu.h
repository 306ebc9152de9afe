/*
 * cg-cpu.h -- private to the CPU skeleton (cg-cpu.c: the kernel's entry,
 * blocks, tiles and states; cg-cpu-map.c: the map over a tile's points).
 */
#ifndef RK_CG_CPU_H
#define RK_CG_CPU_H

#include "cg.h"

/* rows per block, upper bound (run time may use fewer): each block copies
   every tile of the inner variables once, so larger blocks read them fewer
   times */
#define RK_BI 256
#define RK_RB 2 /* rows per pass over a tile (register blocking) */

typedef struct cpu_skel {
  int axis;
  int tj;       /* points per tile                               */
  int lanes;    /* RK_LANES                                      */
  int off[64];  /* inner variable: offset in rk_tv, in rk_v      */
  int ooff[64]; /* outer variable: offset in a row of rk_ob      */
  int row;      /* >= 0: outer variables named rk_os<pos>_<row>  */
  int rb;       /* rows of the pass being emitted (RK_RB, or 1)  */
  int unroll;   /* per-component statements up to this dimension,
                   a loop above (rk_cg_config.cpu_unroll)        */
} cpu_skel;

typedef struct used_var {
  int pos, dim, cat;
} used_var;

static inline int rk_cpu_is_inner(const cpu_skel *s, int cat) {
  return cat == (s->axis == 1 ? RK_CAT_J : RK_CAT_I);
}

/* ---- the plan of the map: which node is computed where ------------------
 * Register blocking: RK_RB output rows share each pass over a tile (the
 * tile's loads serve all of them).  The nodes of the map fall in classes:
 *   LEAF   variables and constants, referenced in place;
 *   HOIST  nodes that do not depend on the reduction index: computed once
 *          per row and tile, before the loop over the tile's vector groups
 *          (their values are splats);
 *   IDOT   SqDist / Scalprod of an outer and an inner variable (RK_RB > 1):
 *          computed for the RK_RB rows at once, so that each component of
 *          the inner variable is loaded once for all rows;
 *   BODY   the rest, computed per row and vector group.
 * A BODY Divide by a HOIST or LEAF divisor multiplies by the reciprocal,
 * computed with the hoisted nodes (rk_rc<id>).  Each row q sees its own
 * copies through preprocessor renaming (#define n<id> rk_h<q>_<id>, ...),
 * so the shared emitter (cg-expr.c) writes the same names as always.
 */
enum { CL_LEAF, CL_HOIST, CL_IDOT, CL_BODY };

typedef struct cpu_plan {
  const rk_node **order; /* malloc'ed (rk_cg_topo) */
  int n;
  unsigned char *cls; /* by node id */
  unsigned char *rcp; /* by node id: Divide through a reciprocal */
} cpu_plan;

int rk_cpu_plan_make(const rk_formula *f, const cpu_skel *s,
                     const rk_node *const *roots, int nroots, cpu_plan *p,
                     rk_error *e);
void rk_cpu_plan_free(cpu_plan *p);
/* a root that is an inner variable is folded straight from the tile */
int rk_cpu_root_in_tile(const cpu_skel *s, const rk_node *root);
/* one pass of s->rb rows over the current tile (see cg-cpu-map.c) */
int rk_cpu_emit_rows_tile(rk_cg *g, const rk_formula *f, const cpu_plan *p,
                          const used_var *uv, int nu,
                          const rk_node *const *roots, int nroots);

#endif /* RK_CG_CPU_H */
