/*
 * cg-cpu.c -- the CPU skeleton: one complete C11 translation unit per
 * formula, implementing the kernel ABI of be.h (rk_kernel_key,
 * rk_kernel_abi, rk_kernel_state_size, rk_kernel_run, rk_kernel_merge).
 *
 * Loop structure of rk_kernel_run (one OpenMP team):
 *   for each block of BI output rows of [r0, r1) (omp for, dynamic):
 *     states of the block's rows live in a per-thread array of doubles,
 *     initialised, or loaded from the caller's states (mode bit 0);
 *     the block's outer variables are gathered row by row into rk_ob
 *     for each tile of TJ reduction points of [j0, j1):
 *       copy the inner variables' tile into a padded SoA buffer of rk_v
 *       for each pair of rows of the block (RK_RB rows, register blocking;
 *       an odd last row alone): the map over the tile (cg-cpu-map.c)
 *     write the block's outputs, or store its states (mode bit 1)
 * TJ is chosen so that a tile (inner variables + fb) fits in ~24 KiB (L1).
 * rk_kernel_merge folds partial states (later points after earlier ones)
 * with the cg-reduce.c merge snippet: a reduction split over ranges of j
 * and merged gives the unsplit result (order-based reductions bit for
 * bit; sums up to the rounding of the added partial sums).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg-cpu.h"
#include "cg-prelude-cpu.h"

static void cpu_var_ref(rk_cg *g, const rk_node *v, const char *k) {
  cpu_skel *s = g->skel;
  int pos = v->ip[0], cat = v->ip[2];
  if (cat == RK_CAT_P)
    rk_buf_printf(g->b, "rk_pv%d[%s]", pos, k);
  else if (rk_cpu_is_inner(s, cat))
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
  int n = rk_cg_topo(f->ctx, roots, nroots, &order), nu = 0, rc = RK_OK;
  if (n < 0)
    return rk_err(e, RK_ENOMEM, -1, "code generation: no memory");
  for (int i = 0; i < n && rc == RK_OK; i++) {
    const rk_node *x = order[i];
    if (x->op != RK_OP_VAR)
      continue;
    int dup = 0;
    for (int u = 0; u < nu; u++)
      dup |= uv[u].pos == x->ip[0];
    if (dup)
      continue;
    if (nu == max || x->ip[0] >= 64) {
      rc = rk_err(e, RK_EUNSUPPORTED, -1,
                  "code generation: too many variables (at most 64)");
      break;
    }
    uv[nu].pos = x->ip[0];
    uv[nu].dim = x->dim;
    uv[nu].cat = x->ip[2];
    nu++;
  }
  free(order);
  *count = nu;
  return rc;
}

/* choose TJ: tile of inner variables + fb within ~24 KiB (L1: each row of
   a block reads the whole tile), multiple of 8 */
static int choose_tj(int din, int nf, int tsize) {
  long tj = 24L * 1024 / ((long)tsize * (din + nf > 0 ? din + nf : 1));
  if (tj > 2048)
    tj = 2048;
  if (tj < 64)
    tj = 64;
  return (int)(tj / 8 * 8);
}

/* what the generator needs to know about one formula */
typedef struct cpu_gen {
  const rk_formula *f;
  cpu_skel sk;
  used_var uv[64];
  int nu, din, dout, S;
  const rk_node *roots[2];
  int nroots;
  cpu_plan plan;
} cpu_gen;

/* step 1: variables, tile size, offsets, the plan of the map */
static int gen_layout(cpu_gen *q, const rk_formula *f, int precision,
                      rk_error *e) {
  memset(q, 0, sizeof *q);
  q->f = f;
  q->roots[0] = f->f;
  q->roots[1] = f->w;
  q->nroots = f->w ? 2 : 1;
  q->S = rk_cg_red_state_size(f);
  int rc = collect_vars(f, q->roots, q->nroots, q->uv, 64, &q->nu, e);
  if (rc)
    return rc;
  cpu_skel *sk = &q->sk;
  sk->axis = f->axis;
  sk->lanes = precision == 64 ? 4 : 8;
  for (int u = 0; u < q->nu; u++)
    if (q->uv[u].cat != RK_CAT_P && rk_cpu_is_inner(sk, q->uv[u].cat)) {
      q->din += q->uv[u].dim;
    } else if (q->uv[u].cat != RK_CAT_P) {
      sk->ooff[q->uv[u].pos] = q->dout;
      q->dout += q->uv[u].dim;
    }
  sk->row = -1;
  sk->tj = choose_tj(q->din, RK_RB * (f->f->dim + (f->w ? f->w->dim : 0)),
                     precision == 64 ? 8 : 4);
  int off = 0, ng = sk->tj / sk->lanes;
  for (int u = 0; u < q->nu; u++)
    if (q->uv[u].cat != RK_CAT_P && rk_cpu_is_inner(sk, q->uv[u].cat)) {
      sk->off[q->uv[u].pos] = off;
      off += q->uv[u].dim * ng;
    }
  return rk_cpu_plan_make(f, sk, q->roots, q->nroots, &q->plan, e);
}

/* step 2: includes, prelude, the key, the constants of the kernel */
static void gen_prelude(const cpu_gen *q, int precision, const char *key,
                        rk_buf *out) {
  const rk_formula *f = q->f;
  rk_buf_puts(out, "/* generated by rkeops: CPU kernel */\n"
                   "#include <math.h>\n#include <stdint.h>\n"
                   "#include <stdlib.h>\n#include <string.h>\n"
                   "#ifdef _OPENMP\n#include <omp.h>\n#endif\n");
  rk_buf_puts(out, precision == 64 ? rk_prelude_cpu64 : rk_prelude_cpu32);
  /* the scalar definitions (scalar-defs.h): Round and Powf map them lane
     by lane; the vector forms of the others are checked against them */
  rk_buf_puts(out, "#define RK_S(f) RK_LM(f)\n#define RK_SDQ static inline\n");
  rk_buf_puts(out, rk_cg_scalar_src);
  rk_buf_puts(out, rk_prelude_cpu);
  rk_buf_puts(out, rk_prelude_cpu_exp);
  rk_buf_puts(out, "\nconst char rk_kernel_key[] = ");
  put_cstring(out, key ? key : "");
  rk_buf_printf(out, ";\nint rk_kernel_abi(void) { return %d; }\n", RK_CPU_ABI);
  rk_buf_printf(out, "int rk_kernel_state_size(void) { return %d; }\n", q->S);
  rk_buf_printf(out, "int rk_kernel_tile(void) { return %d; }\n\n", q->sk.tj);
  rk_buf_printf(out, "#define TJ %d\n#define RK_G (TJ / RK_LANES)\n", q->sk.tj);
  rk_buf_printf(out,
                "#define RK_BI %d\n#define RK_NST %d\n#define RK_DIN %d\n"
                "#define RK_NF %d\n#define RK_DOUT %d\n\n",
                RK_BI, q->S, q->din, f->f->dim + (f->w ? f->w->dim : 0),
                q->dout);
}

/* step 3: the entry's signature, the rows' blocking, the per-thread
   buffers and the parameters (splats); opens the parallel region */
static void gen_entry(rk_cg *g, const cpu_gen *q) {
  rk_cg_line(g, "int rk_kernel_run(int64_t r0, int64_t r1, int64_t j0, "
                "int64_t j1,");
  rk_cg_line(g, "                  const void *const *vars, const int64_t "
                "*ld, double *out,");
  rk_cg_line(g, "                  int64_t ldo, double *st, int64_t ldst, "
                "int mode, int nthreads) {");
  g->indent++;
  for (int u = 0; u < q->nu; u++) {
    int p = q->uv[u].pos;
    rk_cg_line(g, "const T *rk_x%d = (const T *)vars[%d];", p, p);
    rk_cg_line(g, "const int64_t rk_ld%d = ld[%d];", p, p);
    rk_cg_line(g, "(void)rk_ld%d;", p);
  }
  rk_cg_line(g, "(void)vars; (void)ld; (void)ldo; (void)st; (void)ldst;");
  rk_cg_line(g, "int64_t rk_nrows = r1 - r0;");
  rk_cg_line(g, "if (rk_nrows <= 0) return 0;");
  rk_cg_line(g, "if (nthreads < 1) nthreads = 1;");
  /* blocks of rows share each tile of the reduction variables: on one
     thread (the pool's calls, be-cpu.c) one block of up to RK_BI rows, on
     several about 8 blocks per thread for the dynamic schedule */
  rk_cg_line(
      g, "int64_t rk_bi = nthreads > 1 ? rk_nrows / (8 * (int64_t)nthreads) "
         ": rk_nrows;");
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
  rk_cg_line(g,
             "T *rk_fb = aligned_alloc(32, sizeof(T) * (%d * RK_NF * TJ + "
             "RK_LANES));",
             RK_RB);
  rk_cg_line(g,
             "double *rk_st = malloc(sizeof(double) * (RK_BI * RK_NST + 1));");
  rk_cg_line(g, "T *rk_ob = malloc(sizeof(T) * (RK_BI * RK_DOUT + 1));");
  rk_cg_line(g, "int rk_ok = rk_tv && rk_fb && rk_st && rk_ob;");
  rk_cg_line(g, "if (!rk_ok) {");
  rk_cg_line(g, "#pragma omp atomic write");
  rk_cg_line(g, "  rk_fail = 1;");
  rk_cg_line(g, "}");
  rk_cg_line(g, "const rk_vi rk_one = (rk_vi){0} - 1;");
  rk_cg_line(g, "(void)rk_one;");
  for (int u = 0; u < q->nu; u++)
    if (q->uv[u].cat == RK_CAT_P) {
      rk_cg_line(g, "rk_v rk_pv%d[%d];", q->uv[u].pos, q->uv[u].dim);
      rk_cg_line(g,
                 "for (int k = 0; k < %d; k++) rk_pv%d[k] = "
                 "RK_SPLAT(rk_x%d[k]);",
                 q->uv[u].dim, q->uv[u].pos, q->uv[u].pos);
    }
}

/* step 4: a block of rows opens: its states (initialised, or the caller's
   with mode bit 0) and its outer variables, row by row */
static void gen_block_open(rk_cg *g, const cpu_gen *q) {
  const rk_formula *f = q->f;
  rk_cg_line(g, "#pragma omp for schedule(dynamic)");
  rk_cg_line(g, "for (int64_t rk_b = 0; rk_b < rk_nb; rk_b++) {");
  g->indent++;
  rk_cg_line(g, "if (!rk_ok) continue;");
  rk_cg_line(g, "const int64_t rk_ra = r0 + rk_b * rk_bi;");
  rk_cg_line(g, "const int64_t rk_re = rk_ra + rk_bi < r1 ? rk_ra + rk_bi "
                ": r1;");
  rk_cg_line(g, "for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r++) {");
  g->indent++;
  rk_cg_red_decl(g, f, "acc");
  rk_cg_line(g, "if (mode & 1) {");
  g->indent++;
  rk_cg_red_load(g, f, "acc", "st[(int64_t)(%s) * ldst + (rk_r - r0)]");
  g->indent--;
  rk_cg_line(g, "} else {");
  g->indent++;
  rk_cg_red_init(g, f, "acc");
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_red_store(g, f, "acc", "rk_st[(rk_r - rk_ra) * RK_NST + %s]");
  g->indent--;
  rk_cg_line(g, "}");
  for (int u = 0; u < q->nu; u++) {
    if (q->uv[u].cat == RK_CAT_P || rk_cpu_is_inner(&q->sk, q->uv[u].cat))
      continue;
    int p = q->uv[u].pos;
    rk_cg_line(g, "for (int k = 0; k < %d; k++)", q->uv[u].dim);
    rk_cg_line(g, "  for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r++)");
    rk_cg_line(g,
               "    rk_ob[(rk_r - rk_ra) * RK_DOUT + %d + k] = "
               "rk_x%d[k * rk_ld%d + rk_r];",
               q->sk.ooff[p], p, p);
  }
}

/* step 5: the tiles of [j0, j1): copy the inner variables, then the rows
   in passes of RK_RB (a block's odd last row alone) */
static int gen_tiles(rk_cg *g, cpu_gen *q) {
  rk_cg_line(g, "for (int64_t rk_j0 = j0; rk_j0 < j1; rk_j0 += TJ) {");
  g->indent++;
  rk_cg_line(g, "const int rk_nj = j1 - rk_j0 < TJ ? (int)(j1 - rk_j0) "
                ": TJ;");
  rk_cg_line(g, "const int rk_ng = (rk_nj + RK_LANES - 1) / RK_LANES;");
  rk_cg_line(g, "const int rk_nfull = rk_nj / RK_LANES;");
  rk_cg_line(g, "const rk_vi rk_tail = (rk_vi)RK_IOTA < "
                "(rk_nj - rk_nfull * RK_LANES);");
  rk_cg_line(g, "(void)rk_tail; (void)rk_nfull;");
  for (int u = 0; u < q->nu; u++) {
    if (q->uv[u].cat == RK_CAT_P || !rk_cpu_is_inner(&q->sk, q->uv[u].cat))
      continue;
    int p = q->uv[u].pos;
    rk_cg_line(g, "for (int k = 0; k < %d; k++) {", q->uv[u].dim);
    rk_cg_line(g, "  T *rk_tt = (T *)(rk_tv + %d + k * RK_G);", q->sk.off[p]);
    rk_cg_line(g, "  const T *rk_src = rk_x%d + k * rk_ld%d + rk_j0;", p, p);
    rk_cg_line(g, "  for (int rk_jj = 0; rk_jj < rk_nj; rk_jj++) "
                  "rk_tt[rk_jj] = rk_src[rk_jj];");
    rk_cg_line(g, "  for (int rk_jj = rk_nj; rk_jj < rk_ng * RK_LANES; "
                  "rk_jj++) rk_tt[rk_jj] = 0;");
    rk_cg_line(g, "}");
  }
  rk_cg_line(g, "for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r += %d) {",
             RK_RB);
  g->indent++;
  rk_cg_line(g, "if (rk_r + %d < rk_re) {", RK_RB - 1);
  g->indent++;
  q->sk.rb = RK_RB;
  int rc = rk_cpu_emit_rows_tile(g, q->f, &q->plan, q->uv, q->nu, q->roots,
                                 q->nroots);
  g->indent--;
  rk_cg_line(g, "} else {");
  g->indent++;
  q->sk.rb = 1;
  if (!rc)
    rc = rk_cpu_emit_rows_tile(g, q->f, &q->plan, q->uv, q->nu, q->roots,
                               q->nroots);
  g->indent--;
  rk_cg_line(g, "}");
  g->indent--;
  rk_cg_line(g, "}");
  g->indent--;
  rk_cg_line(g, "}");
  return rc;
}

/* step 6: the block's results (or states, mode bit 1); closes the block
   loop, the parallel region and the entry */
static void gen_block_close(rk_cg *g, const cpu_gen *q) {
  const rk_formula *f = q->f;
  rk_cg_line(g, "for (int64_t rk_r = rk_ra; rk_r < rk_re; rk_r++) {");
  g->indent++;
  rk_cg_red_decl(g, f, "acc");
  rk_cg_red_load(g, f, "acc", "rk_st[(rk_r - rk_ra) * RK_NST + %s]");
  rk_cg_line(g, "if (mode & 2) {");
  g->indent++;
  rk_cg_red_store(g, f, "acc", "st[(int64_t)(%s) * ldst + (rk_r - r0)]");
  g->indent--;
  rk_cg_line(g, "} else {");
  g->indent++;
  rk_cg_red_final(g, f, "acc", "out[(int64_t)(%s) * ldo + (rk_r - r0)]");
  g->indent--;
  rk_cg_line(g, "}");
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
  rk_cg_line(g, "}\n");
}

/* step 7: rk_kernel_merge(n, nparts, st, ldst, stpart, out, ldo, mode):
   for each row r < n, the states of parts 0..nparts-1 (part p at
   st + p * stpart, slot s of row r at [s * ldst + r], in point order)
   merged; the result goes to out[c * ldo + r], or (mode bit 1) the merged
   state to part 0 */
static void gen_merge(rk_cg *g, const rk_formula *f) {
  const char *pa = "st[(int64_t)(%s) * ldst + rk_r]";
  rk_cg_line(g, "int rk_kernel_merge(int64_t n, int nparts, double *st, "
                "int64_t ldst, int64_t stpart,");
  rk_cg_line(g, "                    double *out, int64_t ldo, int mode) {");
  g->indent++;
  rk_cg_line(g, "for (int64_t rk_r = 0; rk_r < n; rk_r++) {");
  g->indent++;
  rk_cg_red_decl(g, f, "acc");
  rk_cg_red_decl(g, f, "acc2");
  rk_cg_red_load(g, f, "acc", pa);
  rk_cg_line(g, "for (int rk_p = 1; rk_p < nparts; rk_p++) {");
  g->indent++;
  rk_cg_line(g, "const double *rk_q = st + rk_p * stpart;");
  rk_cg_red_load(g, f, "acc2", "rk_q[(int64_t)(%s) * ldst + rk_r]");
  rk_cg_red_merge(g, f, "acc", "acc2");
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "if (mode & 2) {");
  g->indent++;
  rk_cg_red_store(g, f, "acc", pa);
  g->indent--;
  rk_cg_line(g, "} else {");
  g->indent++;
  rk_cg_red_final(g, f, "acc", "out[(int64_t)(%s) * ldo + rk_r]");
  g->indent--;
  rk_cg_line(g, "}");
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "return 0;");
  g->indent--;
  rk_cg_line(g, "}");
}

int rk_cg_cpu_source(const rk_formula *f, const rk_cg_config *cfg,
                     const char *key, rk_buf *out, rk_error *e) {
  int precision = cfg->precision;
  if (precision != 32 && precision != 64)
    return rk_err(e, RK_EINTERNAL, -1, "bad precision %d", precision);
  int rc = rk_cg_check_cost(f, e);
  if (rc)
    return rc;
  size_t start = out->len;
  cpu_gen q;
  rc = gen_layout(&q, f, precision, e);
  if (rc) {
    rk_cpu_plan_free(&q.plan);
    return rc;
  }
  rk_cg g0, *g = &g0;
  memset(g, 0, sizeof *g);
  g->b = out;
  g->var_ref = cpu_var_ref;
  g->skel = &q.sk;
  g->precision = precision;
  /* the LogSumExp fold with its rare branch: 1.18 s against 1.41 s for
     the branch-free one (float64, N = M = 2e4, 2 threads); the exp is
     scalar either way.  RKEOPS_CPU_LSE=1 (a knob for the tests) gives the
     CPU the branch-free fold of the CUDA kernels. */
  g->lse_select = cfg->cpu_lse != 0;
  q.sk.unroll = cfg->cpu_unroll;
  gen_prelude(&q, precision, key, out);
  gen_entry(g, &q);
  gen_block_open(g, &q);
  rc = gen_tiles(g, &q);
  if (rc == RK_OK) {
    gen_block_close(g, &q);
    gen_merge(g, f);
  }
  rk_cpu_plan_free(&q.plan);
  if (rc == RK_OK && out->oom)
    rc = rk_err(e, RK_ENOMEM, -1, "code generation: no memory");
  if (rc == RK_OK)
    rc = rk_cg_check_bytes(out, start, "CPU", e);
  return rc;
}
