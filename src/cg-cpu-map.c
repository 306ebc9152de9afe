/*
 * cg-cpu-map.c -- the CPU skeleton's map over a tile's points: the plan
 * (which node is computed where, cg-cpu.h), the hoisted nodes, the
 * register-blocked dot products, and one pass of RK_RB rows over a tile,
 * folded into the rows' states with the cg-reduce.c snippets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg-cpu.h"

int rk_cpu_plan_make(const rk_formula *f, const cpu_skel *s,
                     const rk_node *const *roots, int nroots, cpu_plan *p,
                     rk_error *e) {
  int nn = rk_ctx_nnodes(f->ctx) + 1;
  unsigned char *dep;
  memset(p, 0, sizeof *p);
  p->n = rk_cg_topo(f->ctx, roots, nroots, &p->order);
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
      dep[x->id] = x->ip[2] != RK_CAT_P && rk_cpu_is_inner(s, x->ip[2]);
    for (int a = 0; a < x->nargs; a++)
      dep[x->id] |= dep[x->args[a]->id];
    if (rk_cg_is_leaf(x))
      p->cls[x->id] = CL_LEAF;
    else if (!dep[x->id])
      p->cls[x->id] = CL_HOIST;
    else
      p->cls[x->id] = CL_BODY;
    if (RK_RB > 1 && (x->op == RK_OP_SQDIST || x->op == RK_OP_SCALPROD) &&
        x->nargs == 2 && x->args[0]->op == RK_OP_VAR &&
        x->args[1]->op == RK_OP_VAR && x->args[0]->dim == x->args[1]->dim) {
      const rk_node *a = x->args[0], *b = x->args[1];
      int ia = a->ip[2] != RK_CAT_P && rk_cpu_is_inner(s, a->ip[2]);
      int ib = b->ip[2] != RK_CAT_P && rk_cpu_is_inner(s, b->ip[2]);
      int pa = a->ip[2] == RK_CAT_P, pb = b->ip[2] == RK_CAT_P;
      if (ia + ib == 1 && !pa && !pb)
        p->cls[x->id] = CL_IDOT;
    }
    if (p->cls[x->id] == CL_BODY && x->op == RK_OP_DIVIDE &&
        !dep[x->args[1]->id] && dep[x->args[0]->id])
      p->rcp[x->id] = 1;
  }
  free(dep);
  return RK_OK;
}

void rk_cpu_plan_free(cpu_plan *p) {
  free(p->order);
  p->order = NULL;
  free(p->cls);
  free(p->rcp);
}

int rk_cpu_root_in_tile(const cpu_skel *s, const rk_node *root) {
  return root->op == RK_OP_VAR && root->ip[2] != RK_CAT_P &&
         rk_cpu_is_inner(s, root->ip[2]);
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
    if (uv[u].cat != RK_CAT_P && !rk_cpu_is_inner(s, uv[u].cat)) {
      if (def)
        pp_line(g, "#define rk_os%d rk_os%d_%d", uv[u].pos, uv[u].pos, q);
      else
        pp_line(g, "#undef rk_os%d", uv[u].pos, 0, 0);
    }
  for (int i = 0; i < p->n; i++) {
    int id = p->order[i]->id, c = p->cls[id];
    if (c == CL_HOIST || c == CL_IDOT) {
      if (def)
        pp_line(g,
                c == CL_HOIST ? "#define n%d rk_h%d_%d"
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
    if (p->cls[x->id] == CL_HOIST)
      rk_cg_emitters[x->op](g, x);
  }
  for (int i = 0; i < p->n; i++) {
    const rk_node *x = p->order[i], *b;
    if (!p->rcp[x->id])
      continue;
    b = x->args[1];
    rk_cg_line(g, "rk_v rk_rc%d[%d];", x->id, b->dim);
    rk_cg_line(g, "for (int k = 0; k < %d; k++)", b->dim);
    for (int t = 0; t < g->indent + 1; t++)
      rk_buf_puts(g->b, "  ");
    rk_buf_printf(g->b, "rk_rc%d[k] = RK_SPLAT(1) / ", x->id);
    rk_cg_ref(g, b, "k");
    rk_buf_puts(g->b, ";\n");
  }
}

/* x / b as x * (1 / b), b's reciprocal in rk_rc<id> */
static void emit_rcp_divide(rk_cg *g, const rk_node *x) {
  const char *k = x->dim == 1 ? "0" : "k";
  rk_cg_line(g, "rk_v n%d[%d];", x->id, x->dim);
  if (x->dim > 1)
    rk_cg_line(g, "for (int k = 0; k < %d; k++)", x->dim);
  for (int t = 0; t < g->indent + (x->dim > 1); t++)
    rk_buf_puts(g->b, "  ");
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
  int ain = rk_cpu_is_inner(s, a->ip[2]);
  const rk_node *in = ain ? a : b, *ou = ain ? b : a;
  char acc[64];
  for (int t = 0; t < g->indent; t++)
    rk_buf_puts(g->b, "  ");
  rk_buf_puts(g->b, "rk_v rk_t = ");
  s->row = -1;
  g->var_ref(g, in, kexpr);
  rk_buf_puts(g->b, "; RK_REG(rk_t);\n");
  for (int q = 0; q < s->rb; q++) {
    snprintf(acc, sizeof acc, accfmt, q);
    for (int t = 0; t < g->indent; t++)
      rk_buf_puts(g->b, "  ");
    s->row = q;
    if (x->op == RK_OP_SQDIST) {
      /* (t - o)^2 is (o - t)^2 bit for bit (negation is exact); t stays
         in a register, o is read from memory */
      rk_buf_puts(g->b, "{ rk_v rk_d = rk_t - ");
      g->var_ref(g, ou, kexpr);
      rk_buf_printf(g->b, "; %s += rk_d * rk_d; }\n", acc);
    } else {
      rk_buf_printf(g->b, "%s += ", acc);
      if (ain)
        rk_buf_puts(g->b, "rk_t * ");
      g->var_ref(g, ou, kexpr);
      if (!ain)
        rk_buf_puts(g->b, " * rk_t");
      rk_buf_puts(g->b, ";\n");
    }
  }
  s->row = -1;
}

/* an IDOT node for the RK_RB rows into rk_m<q>_<id>[0]; the same
   operations in the same order as cg-expr.c's dot (same bits) */
static void emit_idot(rk_cg *g, cpu_skel *s, const rk_node *x) {
  int d = x->args[0]->dim;
  for (int q = 0; q < s->rb; q++)
    rk_cg_line(g, "rk_v rk_m%d_%d[1];", q, x->id);
  rk_cg_line(g, "{");
  g->indent++;
  if (d >= 8) {
    int d4 = d / 4 * 4;
    char fmt[64];
    for (int q = 0; q < s->rb; q++)
      rk_cg_line(g,
                 "rk_v rk_s%d[4] = {RK_SPLAT(0), RK_SPLAT(0), "
                 "RK_SPLAT(0), RK_SPLAT(0)};",
                 q);
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
      rk_cg_line(g,
                 "rk_m%d_%d[0] = (rk_s%d[0] + rk_s%d[1]) + (rk_s%d[2] + "
                 "rk_s%d[3]);",
                 q, x->id, q, q, q, q);
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

/* The statements of a result of dim components: one per component up to
   s->unroll components, else one statement in a loop over rk_k (the
   source stays linear in the formula's size, not in its dimensions).
   comp_passes: how many statements to write; comp_open: the index text of
   pass k (in ks), after the loop's header when there is one. */
static int comp_passes(const cpu_skel *s, int dim) {
  return dim > s->unroll ? 1 : dim;
}
static void comp_open(rk_cg *g, const cpu_skel *s, int dim, int k, char *ks,
                      size_t size) {
  if (dim > s->unroll) {
    snprintf(ks, size, "rk_k");
    rk_cg_line(g, "for (int rk_k = 0; rk_k < %d; rk_k++)", dim);
  } else {
    snprintf(ks, size, "%d", k);
  }
}

/* the body of one vector group rk_g for the RK_RB rows: the fast path
   accumulates into rk_sv (tail group: masked), the other stores the roots
   into row q's part of fb */
static void emit_group(rk_cg *g, const rk_formula *f, const cpu_plan *p,
                       const used_var *uv, int nu, const rk_node *const *roots,
                       int nroots, int masked) {
  cpu_skel *s = g->skel;
  int fast = f->red == RK_RED_SUM, d = f->f->dim;
  int kahan = f->scheme == RK_SCHEME_KAHAN;
  int nf = f->f->dim + (f->w ? f->w->dim : 0);
  for (int i = 0; i < p->n; i++)
    if (p->cls[p->order[i]->id] == CL_IDOT)
      emit_idot(g, s, p->order[i]);
  for (int q = 0; q < s->rb; q++) {
    row_names(g, p, uv, nu, s, q, 1);
    rk_cg_line(g, "{");
    g->indent++;
    for (int i = 0; i < p->n; i++) {
      const rk_node *x = p->order[i];
      if (p->cls[x->id] != CL_BODY)
        continue;
      if (p->rcp[x->id])
        emit_rcp_divide(g, x);
      else
        rk_cg_emitters[x->op](g, x);
    }
    if (fast) {
      for (int k = 0; k < comp_passes(s, d); k++) {
        char ks[16];
        comp_open(g, s, d, k, ks, sizeof ks);
        for (int t = 0; t < g->indent; t++)
          rk_buf_puts(g->b, "  ");
        rk_buf_puts(g->b, masked ? "{ rk_v rk_x = (rk_v)(rk_tail & (rk_vi)("
                                 : "{ rk_v rk_x = ((");
        rk_cg_ref(g, f->f, ks);
        rk_buf_puts(g->b, "));\n");
        if (kahan) {
          rk_cg_line(g, "  rk_v rk_y = rk_x - rk_cv[%s];", ks);
          rk_cg_line(g, "  rk_v rk_t = rk_sv[%s] + rk_y;", ks);
          rk_cg_line(g, "  rk_v rk_e = (rk_t - rk_sv[%s]) - rk_y;", ks);
          rk_cg_line(g,
                     "  rk_cv[%s] = rk_sel(rk_e == rk_e, rk_e, "
                     "RK_SPLAT(0));",
                     ks);
          rk_cg_line(g, "  rk_sv[%s] = rk_t; }", ks);
        } else {
          rk_cg_line(g, "  rk_sv[%s] += rk_x; }", ks);
        }
      }
    } else {
      for (int r = 0; r < nroots; r++) {
        const rk_node *root = roots[r];
        int base = r == 0 ? 0 : f->f->dim;
        if (rk_cpu_root_in_tile(s, root))
          continue;
        for (int k = 0; k < comp_passes(s, root->dim); k++) {
          char ks[16], slot[48];
          comp_open(g, s, root->dim, k, ks, sizeof ks);
          if (root->dim > s->unroll)
            snprintf(slot, sizeof slot, "(%d + rk_k)", q * nf + base);
          else
            snprintf(slot, sizeof slot, "%d", q * nf + base + k);
          for (int t = 0; t < g->indent; t++)
            rk_buf_puts(g->b, "  ");
          rk_buf_puts(g->b, "{ rk_v rk_x = ");
          rk_cg_ref(g, root, ks);
          rk_buf_printf(g->b,
                        "; memcpy(rk_fb + %s * TJ + rk_g * RK_LANES, "
                        "&rk_x, sizeof rk_x); }\n",
                        slot);
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
int rk_cpu_emit_rows_tile(rk_cg *g, const rk_formula *f, const cpu_plan *p,
                          const used_var *uv, int nu,
                          const rk_node *const *roots, int nroots) {
  cpu_skel *s = g->skel;
  int fast = f->red == RK_RED_SUM, d = f->f->dim;
  int kahan = f->scheme == RK_SCHEME_KAHAN;
  int nf = f->f->dim + (f->w ? f->w->dim : 0);
  for (int q = 0; q < s->rb; q++) {
    rk_cg_line(g,
               "const int64_t rk_r_%d = rk_r + %d < rk_re ? rk_r + %d : "
               "rk_re - 1;",
               q, q, q);
    for (int u = 0; u < nu; u++) {
      if (uv[u].cat == RK_CAT_P || rk_cpu_is_inner(s, uv[u].cat))
        continue;
      int ps = uv[u].pos;
      rk_cg_line(g,
                 "const T *const rk_os%d_%d = rk_ob + (rk_r_%d - rk_ra) * "
                 "RK_DOUT + %d;",
                 ps, q, q, s->ooff[ps]);
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
    rk_cg_line(g, "double *rk_sq = rk_st + (rk_r_%d - rk_ra) * RK_NST;", q);
    rk_cg_red_load(g, f, "acc", "rk_sq[%s]");
    if (fast) {
      /* tile partial sums, lane by lane, folded with the scheme's update */
      rk_cg_line(g, "T rk_ls[%d];", d);
      if (kahan) {
        rk_cg_line(g, "for (int rk_l = 0; rk_l < RK_LANES; rk_l++) {");
        g->indent++;
        rk_cg_line(g,
                   "for (int rk_c = 0; rk_c < %d; rk_c++) "
                   "rk_ls[rk_c] = rk_sv[rk_c][rk_l];",
                   d);
        rk_cg_red_update(g, f, "acc", "rk_ls[%s]", NULL, "0");
        rk_cg_line(g,
                   "for (int rk_c = 0; rk_c < %d; rk_c++) "
                   "rk_ls[rk_c] = -rk_cv[rk_c][rk_l];",
                   d);
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
      if (rk_cpu_root_in_tile(s, f->f))
        snprintf(fp, sizeof fp, "((const T *)(rk_tv + %d))[(%%s) * TJ + rk_jj]",
                 s->off[f->f->ip[0]]);
      else
        snprintf(fp, sizeof fp, "rk_fb[(%d + (%%s)) * TJ + rk_jj]", q * nf);
      if (f->w && rk_cpu_root_in_tile(s, f->w))
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
