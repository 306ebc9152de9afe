/*
 * cg-cpu.c -- the CPU skeleton: one complete C11 translation unit per
 * formula, implementing the kernel ABI of be.h (rk_kernel_key,
 * rk_kernel_abi, rk_kernel_run).
 *
 * Loop structure of the generated kernel (one OpenMP team):
 *   for each block of BI output rows (omp for, dynamic):
 *     states of the block's rows live in a per-thread array of doubles
 *     for each tile of TJ reduction points:
 *       copy the inner variables' tile into a padded SoA buffer of rk_v
 *       for each row of the block:
 *         splat the row's outer variables into rk_v arrays
 *         run the map over the tile's vector groups; either accumulate
 *         the root in rk_v sums (Sum fast path, masked tail) or store the
 *         roots into fb and fold fb into the row's state with the
 *         cg-reduce.c snippets (block_sum: into a fresh partial state,
 *         then merged)
 *     write the block's outputs
 * TJ is chosen so that a tile (inner variables + fb) fits in ~24 KiB (L1).
 */
#include <stdio.h>
#include <string.h>

#include "cg-prelude-cpu.h"
#include "cg.h"

#define RK_BI 32 /* rows per block, upper bound (run time may use fewer) */

typedef struct cpu_skel {
  int axis;
  int tj;      /* points per tile                           */
  int lanes;   /* RK_LANES                                  */
  int off[64]; /* inner variable: offset in rk_tv, in rk_v  */
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
  else
    rk_buf_printf(g->b, "rk_ov%d[%s]", pos, k);
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

/* fold the fb buffer (rk_nj points) into state acc */
static void emit_fold(rk_cg *g, const rk_formula *f, const char *acc) {
  char fp[64], wp[64];
  snprintf(fp, sizeof fp, "rk_fb[(%%s) * TJ + rk_jj]");
  snprintf(wp, sizeof wp, "rk_fb[(%d + %%s) * TJ + rk_jj]", f->f->dim);
  rk_cg_line(g, "for (int rk_jj = 0; rk_jj < rk_nj; rk_jj++)");
  g->indent++;
  rk_cg_red_update(g, f, acc, fp, f->w ? wp : NULL, "(rk_j0 + rk_jj)");
  g->indent--;
}

/* the body run for one row of a block and one tile */
static int emit_row_tile(rk_cg *g, const rk_formula *f,
                         const rk_node *const *roots, int nroots,
                         rk_error *e) {
  int fast = f->red == RK_RED_SUM, d = f->f->dim;
  int kahan = f->scheme == RK_SCHEME_KAHAN;
  if (fast) {
    rk_cg_line(g, "rk_v rk_sv[%d], rk_cv[%d];", d, d);
    rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++)", d);
    rk_cg_line(g, "  rk_sv[rk_c] = rk_cv[rk_c] = RK_SPLAT(0);");
  }
  rk_cg_line(g, "for (int rk_g = 0; rk_g < rk_ng; rk_g++) {");
  g->indent++;
  int rc = rk_cg_emit_map(g, f->ctx, roots, nroots, e);
  if (rc) return rc;
  if (fast) {
    rk_cg_line(g, "rk_vi rk_mk = rk_g < rk_nfull ? rk_one : rk_tail;");
    for (int k = 0; k < d; k++) {
      char ks[16];
      snprintf(ks, sizeof ks, "%d", k);
      for (int i = 0; i < g->indent; i++) rk_buf_puts(g->b, "  ");
      rk_buf_puts(g->b, "{ rk_v rk_x = (rk_v)(rk_mk & (rk_vi)(");
      rk_cg_ref(g, f->f, ks);
      rk_buf_puts(g->b, "));\n");
      if (kahan) {
        rk_cg_line(g, "  rk_v rk_y = rk_x - rk_cv[%d];", k);
        rk_cg_line(g, "  rk_v rk_t = rk_sv[%d] + rk_y;", k);
        rk_cg_line(g, "  rk_v rk_e = (rk_t - rk_sv[%d]) - rk_y;", k);
        rk_cg_line(g, "  rk_cv[%d] = rk_sel(rk_e == rk_e, rk_e, RK_SPLAT(0));",
                   k);
        rk_cg_line(g, "  rk_sv[%d] = rk_t; }", k);
      } else {
        rk_cg_line(g, "  rk_sv[%d] += rk_x; }", k);
      }
    }
  } else {
    for (int r = 0; r < nroots; r++) {
      const rk_node *root = roots[r];
      int base = r == 0 ? 0 : f->f->dim;
      for (int k = 0; k < root->dim; k++) {
        char ks[16];
        snprintf(ks, sizeof ks, "%d", k);
        for (int i = 0; i < g->indent; i++) rk_buf_puts(g->b, "  ");
        rk_buf_puts(g->b, "{ rk_v rk_x = ");
        rk_cg_ref(g, root, ks);
        rk_buf_printf(g->b, "; memcpy(rk_fb + %d * TJ + rk_g * RK_LANES, "
                            "&rk_x, sizeof rk_x); }\n",
                      base + k);
      }
    }
  }
  g->indent--;
  rk_cg_line(g, "}");
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
    emit_fold(g, f, "acc");
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

int rk_cg_cpu_source(const rk_formula *f, int precision, const char *key,
                     rk_buf *out, rk_error *e) {
  cpu_skel sk;
  rk_cg g0, *g = &g0;
  used_var uv[64];
  const rk_node *roots[2] = {f->f, f->w};
  int nroots = f->w ? 2 : 1, nu, din = 0, rc;
  int S = rk_cg_red_state_size(f);
  if (precision != 32 && precision != 64)
    return rk_err(e, RK_EINTERNAL, -1, "bad precision %d", precision);
  rc = collect_vars(f, roots, nroots, uv, 64, &nu, e);
  if (rc) return rc;
  memset(&sk, 0, sizeof sk);
  sk.axis = f->axis;
  sk.lanes = precision == 64 ? 4 : 8;
  for (int u = 0; u < nu; u++)
    if (uv[u].cat != RK_CAT_P && is_inner(&sk, uv[u].cat)) din += uv[u].dim;
  sk.tj = choose_tj(din, f->f->dim + (f->w ? f->w->dim : 0),
                    precision == 64 ? 8 : 4);
  {
    int off = 0, ng = sk.tj / sk.lanes;
    for (int u = 0; u < nu; u++)
      if (uv[u].cat != RK_CAT_P && is_inner(&sk, uv[u].cat)) {
        sk.off[uv[u].pos] = off;
        off += uv[u].dim * ng;
      }
  }
  memset(g, 0, sizeof *g);
  g->b = out;
  g->var_ref = cpu_var_ref;
  g->skel = &sk;
  g->precision = precision;

  /* ---- prelude ---- */
  rk_buf_puts(out, "/* generated by rkeops: CPU kernel */\n"
                   "#include <math.h>\n#include <stdint.h>\n"
                   "#include <stdlib.h>\n#include <string.h>\n"
                   "#ifdef _OPENMP\n#include <omp.h>\n#endif\n");
  rk_buf_puts(out, precision == 64 ? rk_prelude_cpu64 : rk_prelude_cpu32);
  rk_buf_puts(out, rk_prelude_cpu);
  rk_buf_puts(out, "\nconst char rk_kernel_key[] = ");
  put_cstring(out, key ? key : "");
  rk_buf_puts(out, ";\nint rk_kernel_abi(void) { return 1; }\n\n");
  rk_buf_printf(out, "#define TJ %d\n#define RK_G (TJ / RK_LANES)\n", sk.tj);
  rk_buf_printf(out, "#define RK_BI %d\n#define RK_S %d\n#define RK_DIN %d\n"
                     "#define RK_NF %d\n\n",
                RK_BI, S, din, f->f->dim + (f->w ? f->w->dim : 0));
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
  rk_cg_line(g, "if (rk_bi < 1) rk_bi = 1;");
  rk_cg_line(g, "int64_t rk_nb = (rk_nrows + rk_bi - 1) / rk_bi;");
  rk_cg_line(g, "int rk_fail = 0;");
  rk_cg_line(g, "#pragma omp parallel num_threads(nthreads)");
  rk_cg_line(g, "{");
  g->indent++;
  rk_cg_line(g, "rk_v *rk_tv = aligned_alloc(32, sizeof(rk_v) * "
                "(RK_DIN * RK_G + 1));");
  rk_cg_line(g, "T *rk_fb = aligned_alloc(32, sizeof(T) * (RK_NF * TJ + "
                "RK_LANES));");
  rk_cg_line(g, "double *rk_st = malloc(sizeof(double) * (RK_BI * RK_S + 1));");
  rk_cg_line(g, "int rk_ok = rk_tv && rk_fb && rk_st;");
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
  rk_cg_line(g, "for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r++) {");
  g->indent++;
  for (int u = 0; u < nu; u++) {
    if (uv[u].cat == RK_CAT_P || is_inner(&sk, uv[u].cat)) continue;
    int p = uv[u].pos;
    rk_cg_line(g, "rk_v rk_ov%d[%d];", p, uv[u].dim);
    rk_cg_line(g, "for (int k = 0; k < %d; k++) rk_ov%d[k] = "
                  "RK_SPLAT(rk_x%d[k * rk_ld%d + rk_r]);",
               uv[u].dim, p, p, p);
  }
  rk_cg_red_decl(g, f, "acc");
  rk_cg_red_load(g, f, "acc", "rk_st[(rk_r - rk_ra) * RK_S + %s]");
  rc = emit_row_tile(g, f, roots, nroots, e);
  if (rc) return rc;
  rk_cg_red_store(g, f, "acc", "rk_st[(rk_r - rk_ra) * RK_S + %s]");
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
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "return rk_fail ? -1 : 0;");
  g->indent--;
  rk_cg_line(g, "}");
  if (out->oom) return rk_err(e, RK_ENOMEM, -1, "code generation: no memory");
  return RK_OK;
}
