/*
 * cg-cpu.c -- the CPU skeleton: one complete C11 translation unit per
 * formula, implementing the kernel ABI of be.h (rk_kernel_key,
 * rk_kernel_abi, rk_kernel_run).
 *
 * Loop structure of the generated kernel (one OpenMP team):
 *   for each block of BI output rows (omp for, dynamic):
 *     states of the block's rows live in a per-thread array of doubles;
 *     the block's outer variables are gathered row by row into rk_ob
 *     for each tile of TJ reduction points:
 *       copy the inner variables' tile into a padded SoA buffer of rk_v
 *       for each pair of rows of the block (RK_RB rows, register blocking;
 *       an odd last row alone):
 *         compute the nodes that do not depend on the reduction index
 *         (and the reciprocals of such divisors) once per row
 *         run the map over the tile's vector groups for both rows (one
 *         load of a tile value serves both); either accumulate the root
 *         in rk_v sums (Sum fast path, the tail group masked) or store the
 *         roots into fb and fold fb into each row's state with the
 *         cg-reduce.c snippets (block_sum: into a fresh partial state,
 *         then merged)
 *     write the block's outputs
 * TJ is chosen so that a tile (inner variables + fb) fits in ~24 KiB (L1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg-prelude-cpu.h"
#include "cg.h"

/* rows per block, upper bound (run time may use fewer): each block copies
   every tile of the inner variables once, so larger blocks read them fewer
   times */
#define RK_BI 256

typedef struct cpu_skel {
  int axis;
  int tj;      /* points per tile                           */
  int lanes;   /* RK_LANES                                  */
  int off[64]; /* inner variable: offset in rk_tv, in rk_v  */
  int ooff[64]; /* outer variable: offset in a row of rk_ob   */
  int row;     /* >= 0: outer variables named rk_os<pos>_<row> */
  int rb;      /* rows of the pass being emitted (RK_RB, or 1)  */
} cpu_skel;

typedef struct used_var {
  int pos, dim, cat;
} used_var;

static int is_inner(const cpu_skel *s, int cat) {
  return cat == (s->axis == 1 ? RK_CAT_J : RK_CAT_I);
}

static void cpu_var_ref(rk_cg *g, const rk_node *v, const char *k) {
  cpu_skel *s = g->skel;
  int pos = v->ip[0], cat = v->ip[2];
  if (cat == RK_CAT_P)
    rk_buf_printf(g->b, "rk_pv%d[%s]", pos, k);
  else if (is_inner(s, cat))
    rk_buf_printf(g->b, "rk_tv[%d + (%s) * RK_G + rk_g]", s->off[pos], k);
  else if (s->row >= 0)
    rk_buf_printf(g->b, "RK_SPLAT(rk_os%d_%d[%s])", pos, s->row, k);
  else
    rk_buf_printf(g->b, "RK_SPLAT(rk_os%d[%s])", pos, k);
}

/* C string literal of s */
static void put_cstring(rk_buf *b, const char *s) {
  rk_buf_putc(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      rk_buf_printf(b, "\\%c", *p);
    else if (*p < 32 || *p > 126)
      rk_buf_printf(b, "\\%03o", *p);
    else
      rk_buf_putc(b, (char)*p);
  }
  rk_buf_putc(b, '"');
}

/* the variables reached by the formula (and weight), by position */
static int collect_vars(const rk_formula *f, const rk_node *const *roots,
                        int nroots, used_var *uv, int max, int *count,
                        rk_error *e) {
  const rk_node **order = NULL;
  int n = rk_topo(f->ctx, roots, nroots, &order), nu = 0;
  if (n < 0) return rk_err(e, RK_ENOMEM, -1, "code generation: no memory");
  for (int i = 0; i < n; i++) {
    const rk_node *x = order[i];
    if (x->op != RK_OP_VAR) continue;
    int dup = 0;
    for (int u = 0; u < nu; u++) dup |= uv[u].pos == x->ip[0];
    if (dup) continue;
    if (nu == max || x->ip[0] >= 64)
      return rk_err(e, RK_EUNSUPPORTED, -1,
                    "code generation: too many variables (at most 64)");
    uv[nu].pos = x->ip[0];
    uv[nu].dim = x->dim;
    uv[nu].cat = x->ip[2];
    nu++;
  }
  *count = nu;
  return RK_OK;
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
#define RK_RB 2
enum { CL_LEAF, CL_HOIST, CL_IDOT, CL_BODY };

typedef struct cpu_plan {
  const rk_node **order;
  int n;
  unsigned char *cls; /* by node id */
  unsigned char *rcp; /* by node id: Divide through a reciprocal */
} cpu_plan;

static int is_leaf(const rk_node *x) {
  return x->op == RK_OP_VAR || x->op == RK_OP_CST || x->op == RK_OP_INTCST ||
         x->op == RK_OP_ZERO;
}

static int make_plan(const rk_formula *f, const cpu_skel *s,
                     const rk_node *const *roots, int nroots, cpu_plan *p,
                     rk_error *e) {
  int nn = rk_ctx_nnodes(f->ctx) + 1;
  unsigned char *dep;
  memset(p, 0, sizeof *p);
  p->n = rk_topo(f->ctx, roots, nroots, &p->order);
  p->cls = calloc((size_t)nn, 1);
  p->rcp = calloc((size_t)nn, 1);
  dep = calloc((size_t)nn, 1);
  if (p->n < 0 || (p->n > 0 && !p->order) || !p->cls || !p->rcp || !dep) {
    free(dep);
    return rk_err(e, RK_ENOMEM, -1, "code generation: no memory");
  }
  for (int i = 0; i < p->n; i++) {
    const rk_node *x = p->order[i];
    if (x->id < 0 || x->id >= nn) {
      free(dep);
      return rk_err(e, RK_EINTERNAL, -1, "code generation: bad node id");
    }
    if (x->op == RK_OP_VAR)
      dep[x->id] = x->ip[2] != RK_CAT_P && is_inner(s, x->ip[2]);
    for (int a = 0; a < x->nargs; a++) dep[x->id] |= dep[x->args[a]->id];
    if (is_leaf(x))
      p->cls[x->id] = CL_LEAF;
    else if (!dep[x->id])
      p->cls[x->id] = CL_HOIST;
    else
      p->cls[x->id] = CL_BODY;
    if (RK_RB > 1 && (x->op == RK_OP_SQDIST || x->op == RK_OP_SCALPROD) &&
        x->nargs == 2 && x->args[0]->op == RK_OP_VAR &&
        x->args[1]->op == RK_OP_VAR && x->args[0]->dim == x->args[1]->dim) {
      const rk_node *a = x->args[0], *b = x->args[1];
      int ia = a->ip[2] != RK_CAT_P && is_inner(s, a->ip[2]);
      int ib = b->ip[2] != RK_CAT_P && is_inner(s, b->ip[2]);
      int pa = a->ip[2] == RK_CAT_P, pb = b->ip[2] == RK_CAT_P;
      if (ia + ib == 1 && !pa && !pb) p->cls[x->id] = CL_IDOT;
    }
    if (p->cls[x->id] == CL_BODY && x->op == RK_OP_DIVIDE &&
        !dep[x->args[1]->id] && dep[x->args[0]->id])
      p->rcp[x->id] = 1;
  }
  free(dep);
  return RK_OK;
}

static void free_plan(cpu_plan *p) {
  free(p->cls);
  free(p->rcp);
}

/* a root that is an inner variable is folded straight from the tile */
static int root_in_tile(const cpu_skel *s, const rk_node *root) {
  return root->op == RK_OP_VAR && root->ip[2] != RK_CAT_P &&
         is_inner(s, root->ip[2]);
}

/* a preprocessor line (no indentation) */
static void pp_line(rk_cg *g, const char *fmt, int a, int b, int c) {
  rk_buf_printf(g->b, fmt, a, b, c);
  rk_buf_putc(g->b, '\n');
}

/* rename (def) or unrename the names of row q */
static void row_names(rk_cg *g, const cpu_plan *p, const used_var *uv, int nu,
                      const cpu_skel *s, int q, int def) {
  for (int u = 0; u < nu; u++)
    if (uv[u].cat != RK_CAT_P && !is_inner(s, uv[u].cat)) {
      if (def)
        pp_line(g, "#define rk_os%d rk_os%d_%d", uv[u].pos, uv[u].pos, q);
      else
        pp_line(g, "#undef rk_os%d", uv[u].pos, 0, 0);
    }
  for (int i = 0; i < p->n; i++) {
    int id = p->order[i]->id, c = p->cls[id];
    if (c == CL_HOIST || c == CL_IDOT) {
      if (def)
        pp_line(g, c == CL_HOIST ? "#define n%d rk_h%d_%d"
                                 : "#define n%d rk_m%d_%d",
                id, q, id);
      else
        pp_line(g, "#undef n%d", id, 0, 0);
    }
    if (p->rcp[id]) {
      if (def)
        pp_line(g, "#define rk_rc%d rk_rc%d_%d", id, q, id);
      else
        pp_line(g, "#undef rk_rc%d", id, 0, 0);
    }
  }
  if (def) {
    pp_line(g, "#define rk_sv rk_sv_%d", q, 0, 0);
    pp_line(g, "#define rk_cv rk_cv_%d", q, 0, 0);
  } else {
    pp_line(g, "#undef rk_sv", 0, 0, 0);
    pp_line(g, "#undef rk_cv", 0, 0, 0);
  }
}

/* the hoisted nodes and reciprocals of the current row (names renamed) */
static void emit_hoisted(rk_cg *g, const cpu_plan *p) {
  for (int i = 0; i < p->n; i++) {
    const rk_node *x = p->order[i];
    if (p->cls[x->id] == CL_HOIST) rk_ops[x->op].emit(g, x);
  }
  for (int i = 0; i < p->n; i++) {
    const rk_node *x = p->order[i], *b;
    if (!p->rcp[x->id]) continue;
    b = x->args[1];
    rk_cg_line(g, "rk_v rk_rc%d[%d];", x->id, b->dim);
    rk_cg_line(g, "for (int k = 0; k < %d; k++)", b->dim);
    for (int t = 0; t < g->indent + 1; t++) rk_buf_puts(g->b, "  ");
    rk_buf_printf(g->b, "rk_rc%d[k] = RK_SPLAT(1) / ", x->id);
    rk_cg_ref(g, b, "k");
    rk_buf_puts(g->b, ";\n");
  }
}

/* x / b as x * (1 / b), b's reciprocal in rk_rc<id> */
static void emit_rcp_divide(rk_cg *g, const rk_node *x) {
  const char *k = x->dim == 1 ? "0" : "k";
  rk_cg_line(g, "rk_v n%d[%d];", x->id, x->dim);
  if (x->dim > 1) rk_cg_line(g, "for (int k = 0; k < %d; k++)", x->dim);
  for (int t = 0; t < g->indent + (x->dim > 1); t++) rk_buf_puts(g->b, "  ");
  rk_buf_printf(g->b, "n%d[%s] = (", x->id, k);
  rk_cg_ref(g, x->args[0], k);
  rk_buf_printf(g->b, " * rk_rc%d[%s]);\n", x->id,
                x->args[1]->dim == 1 ? "0" : k);
}

/* one term of an IDOT node for all rows: component kexpr, accumulators
   named by accfmt (printf with the row) */
static void idot_term(rk_cg *g, cpu_skel *s, const rk_node *x,
                      const char *kexpr, const char *accfmt) {
  const rk_node *a = x->args[0], *b = x->args[1];
  int ain = is_inner(s, a->ip[2]);
  const rk_node *in = ain ? a : b, *ou = ain ? b : a;
  char acc[64];
  for (int t = 0; t < g->indent; t++) rk_buf_puts(g->b, "  ");
  rk_buf_puts(g->b, "rk_v rk_t = ");
  s->row = -1;
  g->var_ref(g, in, kexpr);
  rk_buf_puts(g->b, "; RK_REG(rk_t);\n");
  for (int q = 0; q < s->rb; q++) {
    snprintf(acc, sizeof acc, accfmt, q);
    for (int t = 0; t < g->indent; t++) rk_buf_puts(g->b, "  ");
    s->row = q;
    if (x->op == RK_OP_SQDIST) {
      /* (t - o)^2 is (o - t)^2 bit for bit (negation is exact); t stays
         in a register, o is read from memory */
      rk_buf_puts(g->b, "{ rk_v rk_d = rk_t - ");
      g->var_ref(g, ou, kexpr);
      rk_buf_printf(g->b, "; %s += rk_d * rk_d; }\n", acc);
    } else {
      rk_buf_printf(g->b, "%s += ", acc);
      if (ain) rk_buf_puts(g->b, "rk_t * ");
      g->var_ref(g, ou, kexpr);
      if (!ain) rk_buf_puts(g->b, " * rk_t");
      rk_buf_puts(g->b, ";\n");
    }
  }
  s->row = -1;
}

/* an IDOT node for the RK_RB rows into rk_m<q>_<id>[0]; the same
   operations in the same order as cg-expr.c's dot (same bits) */
static void emit_idot(rk_cg *g, cpu_skel *s, const rk_node *x) {
  int d = x->args[0]->dim;
  for (int q = 0; q < s->rb; q++) rk_cg_line(g, "rk_v rk_m%d_%d[1];", q, x->id);
  rk_cg_line(g, "{");
  g->indent++;
  if (d >= 8) {
    int d4 = d / 4 * 4;
    char fmt[64];
    for (int q = 0; q < s->rb; q++)
      rk_cg_line(g, "rk_v rk_s%d[4] = {RK_SPLAT(0), RK_SPLAT(0), "
                    "RK_SPLAT(0), RK_SPLAT(0)};", q);
    rk_cg_line(g, "for (int k = 0; k < %d; k += 4) {", d4);
    rk_cg_line(g, "  for (int l = 0; l < 4; l++) {");
    g->indent += 2;
    idot_term(g, s, x, "(k + l)", "rk_s%d[l]");
    g->indent -= 2;
    rk_cg_line(g, "  }");
    rk_cg_line(g, "}");
    if (d > d4) {
      rk_cg_line(g, "for (int k = %d; k < %d; k++) {", d4, d);
      g->indent++;
      snprintf(fmt, sizeof fmt, "rk_s%%d[k - %d]", d4);
      idot_term(g, s, x, "k", fmt);
      g->indent--;
      rk_cg_line(g, "}");
    }
    for (int q = 0; q < s->rb; q++)
      rk_cg_line(g, "rk_m%d_%d[0] = (rk_s%d[0] + rk_s%d[1]) + (rk_s%d[2] + "
                    "rk_s%d[3]);", q, x->id, q, q, q, q);
  } else {
    for (int q = 0; q < s->rb; q++)
      rk_cg_line(g, "rk_v rk_s%d = RK_SPLAT(0);", q);
    if (d > 1) {
      rk_cg_line(g, "for (int k = 0; k < %d; k++) {", d);
      g->indent++;
    }
    idot_term(g, s, x, d > 1 ? "k" : "0", "rk_s%d");
    if (d > 1) {
      g->indent--;
      rk_cg_line(g, "}");
    }
    for (int q = 0; q < s->rb; q++)
      rk_cg_line(g, "rk_m%d_%d[0] = rk_s%d;", q, x->id, q);
  }
  g->indent--;
  rk_cg_line(g, "}");
}

/* the body of one vector group rk_g for the RK_RB rows: the fast path
   accumulates into rk_sv (tail group: masked), the other stores the roots
   into row q's part of fb */
static void emit_group(rk_cg *g, const rk_formula *f, const cpu_plan *p,
                       const used_var *uv, int nu,
                       const rk_node *const *roots, int nroots, int masked) {
  cpu_skel *s = g->skel;
  int fast = f->red == RK_RED_SUM, d = f->f->dim;
  int kahan = f->scheme == RK_SCHEME_KAHAN;
  int nf = f->f->dim + (f->w ? f->w->dim : 0);
  for (int i = 0; i < p->n; i++)
    if (p->cls[p->order[i]->id] == CL_IDOT) emit_idot(g, s, p->order[i]);
  for (int q = 0; q < s->rb; q++) {
    row_names(g, p, uv, nu, s, q, 1);
    rk_cg_line(g, "{");
    g->indent++;
    for (int i = 0; i < p->n; i++) {
      const rk_node *x = p->order[i];
      if (p->cls[x->id] != CL_BODY) continue;
      if (p->rcp[x->id])
        emit_rcp_divide(g, x);
      else
        rk_ops[x->op].emit(g, x);
    }
    if (fast) {
      for (int k = 0; k < d; k++) {
        char ks[16];
        snprintf(ks, sizeof ks, "%d", k);
        for (int t = 0; t < g->indent; t++) rk_buf_puts(g->b, "  ");
        rk_buf_puts(g->b, masked ? "{ rk_v rk_x = (rk_v)(rk_tail & (rk_vi)("
                                 : "{ rk_v rk_x = ((");
        rk_cg_ref(g, f->f, ks);
        rk_buf_puts(g->b, "));\n");
        if (kahan) {
          rk_cg_line(g, "  rk_v rk_y = rk_x - rk_cv[%d];", k);
          rk_cg_line(g, "  rk_v rk_t = rk_sv[%d] + rk_y;", k);
          rk_cg_line(g, "  rk_v rk_e = (rk_t - rk_sv[%d]) - rk_y;", k);
          rk_cg_line(g, "  rk_cv[%d] = rk_sel(rk_e == rk_e, rk_e, "
                        "RK_SPLAT(0));", k);
          rk_cg_line(g, "  rk_sv[%d] = rk_t; }", k);
        } else {
          rk_cg_line(g, "  rk_sv[%d] += rk_x; }", k);
        }
      }
    } else {
      for (int r = 0; r < nroots; r++) {
        const rk_node *root = roots[r];
        int base = r == 0 ? 0 : f->f->dim;
        if (root_in_tile(s, root)) continue;
        for (int k = 0; k < root->dim; k++) {
          char ks[16];
          snprintf(ks, sizeof ks, "%d", k);
          for (int t = 0; t < g->indent; t++) rk_buf_puts(g->b, "  ");
          rk_buf_puts(g->b, "{ rk_v rk_x = ");
          rk_cg_ref(g, root, ks);
          rk_buf_printf(g->b, "; memcpy(rk_fb + %d * TJ + rk_g * RK_LANES, "
                              "&rk_x, sizeof rk_x); }\n",
                        q * nf + base + k);
        }
      }
    }
    g->indent--;
    rk_cg_line(g, "}");
    row_names(g, p, uv, nu, s, q, 0);
  }
}

/* one pass of s->rb rows (rk_r, rk_r + 1, ...) over the current tile
   (a row past rk_re would repeat the last row, computed but not stored;
   the skeleton emits a one-row pass for an odd last row instead) */
static int emit_rows_tile(rk_cg *g, const rk_formula *f, const cpu_plan *p,
                          const used_var *uv, int nu,
                          const rk_node *const *roots, int nroots) {
  cpu_skel *s = g->skel;
  int fast = f->red == RK_RED_SUM, d = f->f->dim;
  int kahan = f->scheme == RK_SCHEME_KAHAN;
  int nf = f->f->dim + (f->w ? f->w->dim : 0);
  for (int q = 0; q < s->rb; q++) {
    rk_cg_line(g, "const int64_t rk_r_%d = rk_r + %d < rk_re ? rk_r + %d : "
                  "rk_re - 1;", q, q, q);
    for (int u = 0; u < nu; u++) {
      if (uv[u].cat == RK_CAT_P || is_inner(s, uv[u].cat)) continue;
      int ps = uv[u].pos;
      rk_cg_line(g, "const T *const rk_os%d_%d = rk_ob + (rk_r_%d - rk_ra) * "
                    "RK_DOUT + %d;", ps, q, q, s->ooff[ps]);
      rk_cg_line(g, "(void)rk_os%d_%d;", ps, q);
    }
    row_names(g, p, uv, nu, s, q, 1);
    emit_hoisted(g, p);
    if (fast) {
      rk_cg_line(g, "rk_v rk_sv[%d], rk_cv[%d];", d, d);
      rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++)", d);
      rk_cg_line(g, "  rk_sv[rk_c] = rk_cv[rk_c] = RK_SPLAT(0);");
    }
    row_names(g, p, uv, nu, s, q, 0);
  }
  if (fast) {
    rk_cg_line(g, "int rk_g = 0;");
    rk_cg_line(g, "for (; rk_g < rk_nfull; rk_g++) {");
    g->indent++;
    emit_group(g, f, p, uv, nu, roots, nroots, 0);
    g->indent--;
    rk_cg_line(g, "}");
    rk_cg_line(g, "if (rk_g < rk_ng) {");
    g->indent++;
    emit_group(g, f, p, uv, nu, roots, nroots, 1);
    g->indent--;
    rk_cg_line(g, "}");
  } else {
    rk_cg_line(g, "for (int rk_g = 0; rk_g < rk_ng; rk_g++) {");
    g->indent++;
    emit_group(g, f, p, uv, nu, roots, nroots, 0);
    g->indent--;
    rk_cg_line(g, "}");
  }
  for (int q = 0; q < s->rb; q++) {
    row_names(g, p, uv, nu, s, q, 1);
    rk_cg_line(g, "{");
    g->indent++;
    rk_cg_red_decl(g, f, "acc");
    rk_cg_line(g, "double *rk_sq = rk_st + (rk_r_%d - rk_ra) * RK_S;", q);
    rk_cg_red_load(g, f, "acc", "rk_sq[%s]");
    if (fast) {
      /* tile partial sums, lane by lane, folded with the scheme's update */
      rk_cg_line(g, "T rk_ls[%d];", d);
      if (kahan) {
        rk_cg_line(g, "for (int rk_l = 0; rk_l < RK_LANES; rk_l++) {");
        g->indent++;
        rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) "
                      "rk_ls[rk_c] = rk_sv[rk_c][rk_l];", d);
        rk_cg_red_update(g, f, "acc", "rk_ls[%s]", NULL, "0");
        rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) "
                      "rk_ls[rk_c] = -rk_cv[rk_c][rk_l];", d);
        rk_cg_red_update(g, f, "acc", "rk_ls[%s]", NULL, "0");
        g->indent--;
        rk_cg_line(g, "}");
      } else {
        /* a fresh partial state for the tile, merged (block_sum); for
           direct_sum the same code is acc += (sum of the tile) */
        rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", d);
        rk_cg_line(g, "  T rk_s = 0;");
        rk_cg_line(g, "  for (int rk_l = 0; rk_l < RK_LANES; rk_l++) "
                      "rk_s += rk_sv[rk_c][rk_l];");
        rk_cg_line(g, "  rk_ls[rk_c] = rk_s;");
        rk_cg_line(g, "}");
        rk_cg_red_update(g, f, "acc", "rk_ls[%s]", NULL, "0");
      }
    } else {
      char fp[96], wp[96];
      if (root_in_tile(s, f->f))
        snprintf(fp, sizeof fp, "((const T *)(rk_tv + %d))[(%%s) * TJ + rk_jj]",
                 s->off[f->f->ip[0]]);
      else
        snprintf(fp, sizeof fp, "rk_fb[(%d + (%%s)) * TJ + rk_jj]", q * nf);
      if (f->w && root_in_tile(s, f->w))
        snprintf(wp, sizeof wp, "((const T *)(rk_tv + %d))[(%%s) * TJ + rk_jj]",
                 s->off[f->w->ip[0]]);
      else
        snprintf(wp, sizeof wp, "rk_fb[(%d + (%%s)) * TJ + rk_jj]",
                 q * nf + f->f->dim);
      rk_cg_line(g, "for (int rk_jj = 0; rk_jj < rk_nj; rk_jj++)");
      g->indent++;
      rk_cg_red_update(g, f, "acc", fp, f->w ? wp : NULL, "(rk_j0 + rk_jj)");
      g->indent--;
    }
    rk_cg_line(g, "if (rk_r + %d < rk_re) {", q);
    g->indent++;
    rk_cg_red_store(g, f, "acc", "rk_sq[%s]");
    g->indent--;
    rk_cg_line(g, "}");
    g->indent--;
    rk_cg_line(g, "}");
    row_names(g, p, uv, nu, s, q, 0);
  }
  return RK_OK;
}

/* choose TJ: tile of inner variables + fb within ~24 KiB (L1: each row of
   a block reads the whole tile), multiple of 8 */
static int choose_tj(int din, int nf, int tsize) {
  long tj = 24L * 1024 / ((long)tsize * (din + nf > 0 ? din + nf : 1));
  if (tj > 2048) tj = 2048;
  if (tj < 64) tj = 64;
  return (int)(tj / 8 * 8);
}

/* read in rk_cg_cpu_source */
const char *const rk_cg_cpu_knobs[] = {"RKEOPS_CPU_LSE", NULL};

int rk_cg_cpu_source(const rk_formula *f, int precision, const char *key,
                     rk_buf *out, rk_error *e) {
  cpu_skel sk;
  rk_cg g0, *g = &g0;
  used_var uv[64];
  const rk_node *roots[2] = {f->f, f->w};
  int nroots = f->w ? 2 : 1, nu = 0, din = 0, dout = 0, rc;
  int S = rk_cg_red_state_size(f);
  cpu_plan plan;
  if (precision != 32 && precision != 64)
    return rk_err(e, RK_EINTERNAL, -1, "bad precision %d", precision);
  rc = collect_vars(f, roots, nroots, uv, 64, &nu, e);
  if (rc) return rc;
  memset(&sk, 0, sizeof sk);
  sk.axis = f->axis;
  sk.lanes = precision == 64 ? 4 : 8;
  for (int u = 0; u < nu; u++)
    if (uv[u].cat != RK_CAT_P && is_inner(&sk, uv[u].cat)) {
      din += uv[u].dim;
    } else if (uv[u].cat != RK_CAT_P) {
      sk.ooff[uv[u].pos] = dout;
      dout += uv[u].dim;
    }
  sk.row = -1;
  sk.tj = choose_tj(din, RK_RB * (f->f->dim + (f->w ? f->w->dim : 0)),
                    precision == 64 ? 8 : 4);
  {
    int off = 0, ng = sk.tj / sk.lanes;
    for (int u = 0; u < nu; u++)
      if (uv[u].cat != RK_CAT_P && is_inner(&sk, uv[u].cat)) {
        sk.off[uv[u].pos] = off;
        off += uv[u].dim * ng;
      }
  }
  rc = make_plan(f, &sk, roots, nroots, &plan, e);
  if (rc) {
    free_plan(&plan);
    return rc;
  }
  memset(g, 0, sizeof *g);
  g->b = out;
  g->var_ref = cpu_var_ref;
  g->skel = &sk;
  /* the LogSumExp fold with its rare branch: 1.18 s against 1.41 s for
     the branch-free one (float64, N = M = 2e4, 2 threads); the exp is
     scalar either way.  RKEOPS_CPU_LSE=1 (a knob for the tests) gives the
     CPU the branch-free fold of the CUDA kernels. */
  {
    const char *lv = getenv("RKEOPS_CPU_LSE");
    g->lse_select = lv && lv[0] == '1';
  }
  g->precision = precision;

  /* ---- prelude ---- */
  rk_buf_puts(out, "/* generated by rkeops: CPU kernel */\n"
                   "#include <math.h>\n#include <stdint.h>\n"
                   "#include <stdlib.h>\n#include <string.h>\n"
                   "#ifdef _OPENMP\n#include <omp.h>\n#endif\n");
  rk_buf_puts(out, precision == 64 ? rk_prelude_cpu64 : rk_prelude_cpu32);
  rk_buf_puts(out, rk_prelude_cpu);
  rk_buf_puts(out, rk_prelude_cpu_exp);
  rk_buf_puts(out, "\nconst char rk_kernel_key[] = ");
  put_cstring(out, key ? key : "");
  rk_buf_puts(out, ";\nint rk_kernel_abi(void) { return 1; }\n\n");
  rk_buf_printf(out, "#define TJ %d\n#define RK_G (TJ / RK_LANES)\n", sk.tj);
  rk_buf_printf(out, "#define RK_BI %d\n#define RK_S %d\n#define RK_DIN %d\n"
                     "#define RK_NF %d\n#define RK_DOUT %d\n\n",
                RK_BI, S, din, f->f->dim + (f->w ? f->w->dim : 0), dout);
  /* ---- entry ---- */
  rk_cg_line(g, "int rk_kernel_run(int64_t r0, int64_t r1, int64_t nout, "
                "int64_t nred,");
  rk_cg_line(g, "                  const void *const *vars, const int64_t "
                "*ld, double *out,");
  rk_cg_line(g, "                  int nthreads) {");
  g->indent++;
  for (int u = 0; u < nu; u++) {
    rk_cg_line(g, "const T *rk_x%d = (const T *)vars[%d];", uv[u].pos,
               uv[u].pos);
    rk_cg_line(g, "const int64_t rk_ld%d = ld[%d];", uv[u].pos, uv[u].pos);
    rk_cg_line(g, "(void)rk_ld%d;", uv[u].pos);
  }
  rk_cg_line(g, "(void)vars; (void)ld;");
  rk_cg_line(g, "int64_t rk_nrows = r1 - r0;");
  rk_cg_line(g, "if (rk_nrows <= 0) return 0;");
  rk_cg_line(g, "if (nthreads < 1) nthreads = 1;");
  rk_cg_line(g, "int64_t rk_bi = rk_nrows / (8 * (int64_t)nthreads);");
  rk_cg_line(g, "if (rk_bi > RK_BI) rk_bi = RK_BI;");
  rk_cg_line(g, "if (rk_bi < %d) rk_bi = %d;", RK_RB, RK_RB);
  rk_cg_line(g, "rk_bi = (rk_bi + %d) / %d * %d;", RK_RB - 1, RK_RB, RK_RB);
  rk_cg_line(g, "int64_t rk_nb = (rk_nrows + rk_bi - 1) / rk_bi;");
  rk_cg_line(g, "int rk_fail = 0;");
  rk_cg_line(g, "#pragma omp parallel num_threads(nthreads)");
  rk_cg_line(g, "{");
  g->indent++;
  rk_cg_line(g, "rk_v *rk_tv = aligned_alloc(32, sizeof(rk_v) * "
                "(RK_DIN * RK_G + 1));");
  rk_cg_line(g, "T *rk_fb = aligned_alloc(32, sizeof(T) * (%d * RK_NF * TJ + "
                "RK_LANES));", RK_RB);
  rk_cg_line(g, "double *rk_st = malloc(sizeof(double) * (RK_BI * RK_S + 1));");
  rk_cg_line(g, "T *rk_ob = malloc(sizeof(T) * (RK_BI * RK_DOUT + 1));");
  rk_cg_line(g, "int rk_ok = rk_tv && rk_fb && rk_st && rk_ob;");
  rk_cg_line(g, "if (!rk_ok) {");
  rk_cg_line(g, "#pragma omp atomic write");
  rk_cg_line(g, "  rk_fail = 1;");
  rk_cg_line(g, "}");
  rk_cg_line(g, "const rk_vi rk_one = (rk_vi){0} - 1;");
  rk_cg_line(g, "(void)rk_one;");
  for (int u = 0; u < nu; u++)
    if (uv[u].cat == RK_CAT_P) {
      rk_cg_line(g, "rk_v rk_pv%d[%d];", uv[u].pos, uv[u].dim);
      rk_cg_line(g, "for (int k = 0; k < %d; k++) rk_pv%d[k] = "
                    "RK_SPLAT(rk_x%d[k]);",
                 uv[u].dim, uv[u].pos, uv[u].pos);
    }
  rk_cg_line(g, "#pragma omp for schedule(dynamic)");
  rk_cg_line(g, "for (int64_t rk_b = 0; rk_b < rk_nb; rk_b++) {");
  g->indent++;
  rk_cg_line(g, "if (!rk_ok) continue;");
  rk_cg_line(g, "const int64_t rk_ra = r0 + rk_b * rk_bi;");
  rk_cg_line(g, "const int64_t rk_re = rk_ra + rk_bi < r1 ? rk_ra + rk_bi "
                ": r1;");
  /* init states */
  rk_cg_line(g, "for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r++) {");
  g->indent++;
  rk_cg_red_decl(g, f, "acc");
  rk_cg_red_init(g, f, "acc");
  rk_cg_red_store(g, f, "acc", "rk_st[(rk_r - rk_ra) * RK_S + %s]");
  g->indent--;
  rk_cg_line(g, "}");
  /* the block's outer variables, row by row (read once per block) */
  for (int u = 0; u < nu; u++) {
    if (uv[u].cat == RK_CAT_P || is_inner(&sk, uv[u].cat)) continue;
    int p = uv[u].pos;
    rk_cg_line(g, "for (int k = 0; k < %d; k++)", uv[u].dim);
    rk_cg_line(g, "  for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r++)");
    rk_cg_line(g, "    rk_ob[(rk_r - rk_ra) * RK_DOUT + %d + k] = "
                  "rk_x%d[k * rk_ld%d + rk_r];", sk.ooff[p], p, p);
  }
  /* tiles */
  rk_cg_line(g, "for (int64_t rk_j0 = 0; rk_j0 < nred; rk_j0 += TJ) {");
  g->indent++;
  rk_cg_line(g, "const int rk_nj = nred - rk_j0 < TJ ? (int)(nred - rk_j0) "
                ": TJ;");
  rk_cg_line(g, "const int rk_ng = (rk_nj + RK_LANES - 1) / RK_LANES;");
  rk_cg_line(g, "const int rk_nfull = rk_nj / RK_LANES;");
  rk_cg_line(g, "const rk_vi rk_tail = (rk_vi)RK_IOTA < "
                "(rk_nj - rk_nfull * RK_LANES);");
  rk_cg_line(g, "(void)rk_tail; (void)rk_nfull;");
  for (int u = 0; u < nu; u++) {
    if (uv[u].cat == RK_CAT_P || !is_inner(&sk, uv[u].cat)) continue;
    int p = uv[u].pos;
    rk_cg_line(g, "for (int k = 0; k < %d; k++) {", uv[u].dim);
    rk_cg_line(g, "  T *rk_tt = (T *)(rk_tv + %d + k * RK_G);", sk.off[p]);
    rk_cg_line(g, "  const T *rk_src = rk_x%d + k * rk_ld%d + rk_j0;", p, p);
    rk_cg_line(g, "  for (int rk_jj = 0; rk_jj < rk_nj; rk_jj++) "
                  "rk_tt[rk_jj] = rk_src[rk_jj];");
    rk_cg_line(g, "  for (int rk_jj = rk_nj; rk_jj < rk_ng * RK_LANES; "
                  "rk_jj++) rk_tt[rk_jj] = 0;");
    rk_cg_line(g, "}");
  }
  /* RK_RB rows at a time; a block's odd last row goes alone */
  rk_cg_line(g, "for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r += %d) {",
             RK_RB);
  g->indent++;
  rk_cg_line(g, "if (rk_r + %d < rk_re) {", RK_RB - 1);
  g->indent++;
  sk.rb = RK_RB;
  rc = emit_rows_tile(g, f, &plan, uv, nu, roots, nroots);
  g->indent--;
  rk_cg_line(g, "} else {");
  g->indent++;
  sk.rb = 1;
  if (!rc) rc = emit_rows_tile(g, f, &plan, uv, nu, roots, nroots);
  g->indent--;
  rk_cg_line(g, "}");
  if (rc) {
    free_plan(&plan);
    return rc;
  }
  g->indent--;
  rk_cg_line(g, "}");
  g->indent--;
  rk_cg_line(g, "}");
  /* outputs */
  rk_cg_line(g, "for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r++) {");
  g->indent++;
  rk_cg_red_decl(g, f, "acc");
  rk_cg_red_load(g, f, "acc", "rk_st[(rk_r - rk_ra) * RK_S + %s]");
  rk_cg_red_final(g, f, "acc", "out[(int64_t)(%s) * nout + rk_r]");
  g->indent--;
  rk_cg_line(g, "}");
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "free(rk_tv);");
  rk_cg_line(g, "free(rk_fb);");
  rk_cg_line(g, "free(rk_st);");
  rk_cg_line(g, "free(rk_ob);");
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "return rk_fail ? -1 : 0;");
  g->indent--;
  rk_cg_line(g, "}");
  free_plan(&plan);
  if (out->oom) return rk_err(e, RK_ENOMEM, -1, "code generation: no memory");
  return RK_OK;
}
