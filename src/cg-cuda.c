/*
 * cg-cuda.c -- the CUDA skeleton around the shared formula emitter
 * (cg-expr.c) and the shared reduction snippets (cg-reduce.c).
 *
 * Kernel ABI (T = float or double; "ll" = long long; all extern "C"):
 *
 *   __global__ void rk_main(ll ni, ll nj, ll jbase, ll jchunk,
 *                           double *out, ll ldo,
 *                           double *st, ll ldst, ll stpart, int mode,
 *                           const T *v0, ll ld0, const T *v1, ll ld1, ...)
 *     one (const T *, ll) pair per variable position 0..nvars-1 (NULL for
 *     unused positions), structure of arrays as in be.h: component k of
 *     local point p of variable v is v[k * ld + p].  Outer variables (the
 *     output index) are read at rows 0 <= r < ni, inner ones at points
 *     0 <= j < nj; jbase is the global index of inner point 0 (for Arg*).
 *     Grid: x over rows (tpb * rb rows per block), y over reduction parts:
 *     block (x, y) reduces points [y * jchunk, min(nj, (y + 1) * jchunk))
 *     into state st + y * stpart.
 *     mode bit 0: start from the state at st[s * ldst + r] (else init);
 *     mode bit 1: end by storing the state there (else write the result
 *     out[c * ldo + r], double, indices 1-based).
 *   __global__ void rk_merge(ll ni, int nparts, double *st, ll ldst,
 *                            ll stpart, double *out, ll ldo, int mode)
 *     one thread per row: merges the nparts states (in increasing point
 *     order) and writes the result, or (mode bit 1) stores the merged
 *     state into part 0.  Block size tpb.
 *   Each kernel is under a guard (#ifndef RK_NO_MAIN, #ifndef RK_NO_MERGE):
 *   NVRTC compiles them as two programs in parallel (be-cuda-nvrtc.c), and
 *   the image is the pair of modules (rk_cuda_pair_*).
 *
 * The skeleton: one thread owns rb output rows (register blocking); the
 * reduction index runs in tiles of tj points staged through shared memory
 * (point-major, pad values per point, so that the components of a point
 * load as 16-byte vectors); the accumulators, the outer variables and the
 * parameters live in registers (every loop of the emitted formula gets
 * "#pragma unroll", so register arrays are indexed by constants only;
 * formulas with a node wider than 256 fall back to plain loops and
 * global-memory reads).  The geometry (tpb, rb, tj, pad) is chosen by
 * rk_cg_cuda_geom, identically for the source and the launcher; the
 * developer knob RKEOPS_CUDA_GEOM="tpb,rb" overrides it (bench/gpu.R uses
 * it to compare geometries; like every field of rk_cg_config it is part
 * of the cache key).
 * float32 computes exp with __expf (the hardware exp2 unit), as KeOps'
 * -use_fast_math does; everything else uses the accurate libdevice
 * functions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"

typedef struct cuda_skel {
  const rk_formula *f;
  int outer_cat;  /* RK_CAT_I when axis = 1, else RK_CAT_J */
  int row;        /* row of the register block being emitted */
  int regs;       /* outer variables held in registers */
  int pregs;      /* parameters held in registers */
  int unroll;     /* loops of the emitted code unrolled (cuda_unroll) */
  int unroll_max; /* ... up to this many trips for a formula node's loops */
  int off[64];    /* offset of each inner variable in a tile point */
  int ginner;     /* inner variables read from global memory */
} cuda_skel;

#define MAXPOS 64

/* positions used by the formula: used[pos] = 1; returns the largest node
   dimension, or -1 (out of memory) */
static int used_vars(const rk_formula *f, char *used, rk_error *e) {
  const rk_node *roots[2] = {f->f, f->w};
  const rk_node **order = NULL;
  int n = rk_cg_topo(f->ctx, roots, f->w ? 2 : 1, &order);
  if (n < 0) {
    rk_err(e, RK_ENOMEM, -1, "code generation: out of memory");
    return -1;
  }
  memset(used, 0, MAXPOS);
  int maxdim = 1;
  for (int i = 0; i < n; i++) {
    if (order[i]->dim > maxdim)
      maxdim = order[i]->dim;
    if (order[i]->op == RK_OP_VAR && order[i]->ip[0] >= 0 &&
        order[i]->ip[0] < MAXPOS)
      used[order[i]->ip[0]] = 1;
  }
  free(order);
  return maxdim;
}

int rk_cg_cuda_geom(const rk_formula *f, const rk_cg_config *cfg,
                    rk_cuda_geom *gm, rk_error *e) {
  int precision = cfg->precision;
  char used[MAXPOS];
  if (f->nvars > MAXPOS)
    return rk_err(e, RK_EUNSUPPORTED, -1,
                  "the CUDA backend handles at most %d variables", MAXPOS);
  int maxdim = used_vars(f, used, e);
  if (maxdim < 0)
    return RK_ENOMEM;
  int es = precision == 64 ? 8 : 4, vec = 16 / es;
  int inner = 0, outer = 0, outer_cat = f->axis == 1 ? RK_CAT_I : RK_CAT_J;
  for (int v = 0; v < f->nvars; v++) {
    if (!used[v] || f->vars[v].dim <= 0)
      continue;
    if (f->vars[v].cat == outer_cat)
      outer += f->vars[v].dim;
    else if (f->vars[v].cat != RK_CAT_P)
      inner += f->vars[v].dim;
  }
  gm->state = rk_cg_red_state_size(f);
  gm->pad = inner == 0 ? vec : (inner + vec - 1) / vec * vec;
  /* rows per thread (register blocking) and threads per block, from the
     32-bit words a row keeps in registers; tuned on an H200 (bench/gpu.R
     with RKEOPS_CUDA_GEOM): 4 rows for Sum, Min and Max of small state
     (Gaussian float32 at 1e6 with the unrolled point loop: 0.368 s at
     256 threads x 4 rows, 0.395 s at 512 x 4, 0.440 s at 512 x 2), 2 rows
     for the others (LogSumExp: 0.564 s at 256 x 2, 0.565 s at 256 x 4;
     KMin & co: their updates branch), 128 threads per block when a thread
     holds much */
  int words = (outer + gm->state) * (es / 4);
  int simple =
      f->red == RK_RED_SUM || f->red == RK_RED_MIN || f->red == RK_RED_MAX;
  if (simple && words * 4 <= 96) {
    gm->rb = 4;
    gm->tpb = 256;
  } else if (words * 2 <= 160) {
    gm->rb = 2;
    gm->tpb = words * 2 > 64 ? 128 : 256;
  } else {
    gm->rb = 1;
    gm->tpb = 128;
  }
  /* the K-min family of a short point (kNN in low dimension): one row a
     thread.  H100, K = 10, D = 3 (RKEOPS_CUDA_GEOM, medians of 7 / 3):
     N = 1e5 0.017 s at 256 x 2 (the rule above), 0.011 s at 256 x 1,
     0.012 s at 128 x 1 or 64 x 1; N = 1e6 0.586 -> 0.538 s */
  int kmin = f->red == RK_RED_KMIN || f->red == RK_RED_ARGKMIN ||
             f->red == RK_RED_KMIN_ARGKMIN;
  if (kmin && words <= 32) {
    gm->rb = 1;
    gm->tpb = 256;
  }
  if (maxdim > 256) {
    gm->rb = 1;
    gm->tpb = 128;
  }
  /* the loop over a tile's points unrolled 4 times for the small
     branch-free folds: on an H200 the Gaussian float32 sum at 1e6 goes
     from 0.482 s to 0.394 s (bench/gpu.R with tools/device-tune.sh) */
  int lse = f->red == RK_RED_LOGSUMEXP || f->red == RK_RED_LOGSUMEXPWEIGHT ||
            f->red == RK_RED_SUMSOFTMAXWEIGHT;
  gm->uj = (simple || lse) && gm->rb >= 2 && maxdim <= 16 ? 4 : 1;
  /* twice for a Sum, Min or Max of a wide result on 2 rows a thread: the
     solver's block products (E right-hand sides, state E).  H200, N = 1e5,
     D = 3 (bench/ab-block.R, one run, medians of 5): E = 31 0.067 -> 0.058 s
     (float64), 0.029 -> 0.026 s (float32); E = 64 float32 0.103 -> 0.082 s;
     results bit-identical.  Not on one row (E = 64 float64: 0.136 ->
     0.147 s) */
  if (simple && gm->rb == 2 && gm->state > 16)
    gm->uj = 2;
  if (cfg->cuda_unrollj >= 1 && cfg->cuda_unrollj <= 16)
    gm->uj = cfg->cuda_unrollj;
  /* developer knob for tuning: RKEOPS_CUDA_GEOM="tpb,rb" (validated when
     the configuration is read, run.c) */
  if (cfg->cuda_tpb > 0 && cfg->cuda_rb > 0) {
    gm->tpb = cfg->cuda_tpb;
    gm->rb = cfg->cuda_rb;
  }
  gm->tj = gm->tpb;
  gm->ginner = 0;
  while (gm->tj > 16 && (size_t)gm->tj * gm->pad * es > 40960)
    gm->tj /= 2;
  if ((size_t)gm->tj * gm->pad * es > 49152) {
    /* the inner variables of 16 points do not fit in 48 KB of shared
       memory (more than 384 values per point in float64, 768 in float32):
       every thread reads a point's components from global memory, where
       the threads of a block read the same point at the same time (one
       broadcast load, cached) */
    gm->ginner = 1;
    gm->tj = gm->tpb;
    gm->pad = vec;
  }
  return RK_OK;
}

static void var_ref(rk_cg *g, const rk_node *v, const char *k) {
  cuda_skel *s = g->skel;
  int pos = v->ip[0], cat = s->f->vars[pos].cat;
  if (cat == RK_CAT_P && s->pregs)
    rk_buf_printf(g->b, "sk_p%d[%s]", pos, k);
  else if (cat == RK_CAT_P)
    rk_buf_printf(g->b, "sk_v%d[%s]", pos, k);
  else if (cat == s->outer_cat && s->regs)
    rk_buf_printf(g->b, "sk_x%d_%d[%s]", pos, s->row, k);
  else if (cat == s->outer_cat)
    rk_buf_printf(g->b, "sk_v%d[(long long)(%s) * sk_ld%d + sk_row%d]", pos, k,
                  pos, s->row);
  else if (s->ginner)
    rk_buf_printf(g->b, "sk_v%d[(long long)(%s) * sk_ld%d + sk_jt + sk_jj]",
                  pos, k, pos);
  else
    rk_buf_printf(g->b, "sk_sh[sk_jj * RK_PAD + %d + (%s)]", s->off[pos], k);
}

static const char *prelude32 = "typedef float T;\n"
                               "typedef float rk_v;\n"
                               "#define RK_INF __int_as_float(0x7f800000)\n"
                               "#define RK_NAN __int_as_float(0x7fffffff)\n"
                               "#define RK_F(name) name##f\n"
                               "#define RK_LOG2E 1.4426950408889634f\n";
/* float32: exp through the hardware exp2 unit, as KeOps does
   (-use_fast_math), with denormal results flushed to zero: the exp2 is one
   MUFU.EX2 (without .ftz, ptxas adds a range test and two multiplies around
   it); relative error about 1e-7 * (2 + 1.2 |x|) */
static const char *exp32_ftz =
    "__device__ __forceinline__ static float rk_ex2(float x) {\n"
    "  float r;\n"
    "  asm(\"ex2.approx.ftz.f32 %0, %1;\" : \"=f\"(r) : \"f\"(x));\n"
    "  return r;\n"
    "}\n"
    "#define RK_EXPF(x) rk_ex2((x) * RK_LOG2E)\n"
    "#define RK_EXP2S(x) rk_ex2(x)\n";
static const char *exp32_old = "#define RK_EXPF(x) __expf(x)\n";
static const char *prelude64 =
    "typedef double T;\n"
    "typedef double rk_v;\n"
    "#define RK_INF __longlong_as_double(0x7ff0000000000000LL)\n"
    "#define RK_NAN __longlong_as_double(0x7ff8000000000000LL)\n"
    "#define RK_F(name) name\n"
    "#define RK_EXPF(x) exp(x)\n";
/* scalar semantics: see the top comment of cg-expr.c */
static const char *prelude =
    "#define RK_SPLAT(c) ((T)(c))\n"
    "#define RK_EXPS(x) RK_EXPF(x)\n"
    "#define RK_LOGS(x) RK_F(log)(x)\n"
    "#define RK_ABSS(x) RK_F(fabs)(x)\n"
    "#define RK_D __device__ __forceinline__ static\n"
    "#define RK_LIBM1(f, x) RK_F(f)(x)\n"
    "RK_D rk_v rk_exp(rk_v x) { return RK_EXPF(x); }\n"
    "RK_D rk_v rk_log(rk_v x) { return RK_F(log)(x); }\n"
    "RK_D rk_v rk_sin(rk_v x) { return RK_F(sin)(x); }\n"
    "RK_D rk_v rk_cos(rk_v x) { return RK_F(cos)(x); }\n"
    "RK_D rk_v rk_tan(rk_v x) { return RK_F(tan)(x); }\n"
    "RK_D rk_v rk_asin(rk_v x) { return RK_F(asin)(x); }\n"
    "RK_D rk_v rk_acos(rk_v x) { return RK_F(acos)(x); }\n"
    "RK_D rk_v rk_atan(rk_v x) { return RK_F(atan)(x); }\n"
    "RK_D rk_v rk_sqrt(rk_v x) { return RK_F(sqrt)(x); }\n"
    "RK_D rk_v rk_atan2(rk_v y, rk_v x) { return RK_F(atan2)(y, x); }\n"
    "RK_D rk_v rk_abs(rk_v x) { return RK_F(fabs)(x); }\n"
    "RK_D rk_v rk_floor(rk_v x) { return RK_F(floor)(x); }\n"
    "RK_D rk_v rk_max2(rk_v a, rk_v b) { return (a != a || b != b) ? RK_NAN "
    ": (a > b ? a : b); }\n"
    "RK_D rk_v rk_min2(rk_v a, rk_v b) { return (a != a || b != b) ? RK_NAN "
    ": (a < b ? a : b); }\n"
    "RK_D rk_v rk_ifgt(rk_v a, rk_v b, rk_v x, rk_v y) { return a > b ? x : "
    "y; }\n"
    "RK_D rk_v rk_ifeq(rk_v a, rk_v b, rk_v x, rk_v y) { return a == b ? x : "
    "y; }\n";

/* Loops of more iterations than this stay rolled: unrolling a KMin state
   of K = 1000 (or any large array) only moves it from local memory into
   thousands of registers that spill anyway, and makes NVRTC take minutes
   (K = 101, d = 3: 43 s before this limit). */
#define RK_CUDA_UNROLL_MAX 64

/* the skeleton's answer to the emitter (rk_cg.unroll): every loop of the
   reduction snippets gets "#pragma unroll" when it has at most
   RK_CUDA_UNROLL_MAX trips (or a bound that is not a literal), so that
   small register arrays are indexed by constants only, and "#pragma
   unroll 1" when larger (else NVVM unrolls ~100 trips by itself); the
   loops over a formula node's components, up to cuda_unroll trips (256 by
   default, the widest node kept in registers): rolled, a 128-wide point
   of the outer variable goes to local memory, and kNN and the Gaussian
   sum at D = 128, N = 1e5 took 1.08 s / 0.97 s on an H200 against
   0.149 s / 0.133 s unrolled (bench/ab-wide.R, results identical);
   nothing when the formula is too wide to live in registers */
static const char *cuda_unroll(const rk_cg *g, long trips, int formula) {
  const cuda_skel *s = g->skel;
  if (!s->unroll)
    return NULL;
  long max = formula ? s->unroll_max : RK_CUDA_UNROLL_MAX;
  return trips <= max ? "#pragma unroll" : "#pragma unroll 1";
}

/* the printf pattern (%s: component) naming the components of node n */
static void node_pat(rk_cg *g, const rk_node *n, char *out, size_t size) {
  rk_buf t, *saved = g->b;
  rk_buf_init(&t);
  g->b = &t;
  rk_cg_ref(g, n, "%s");
  g->b = saved;
  snprintf(out, size, "%s", t.s ? t.s : "0");
  rk_buf_free(&t);
}

/* rk_main, step 1: the signature, the shared tile, the rows of the thread */
static void main_header(rk_cg *g, const rk_formula *f, int rb) {
  rk_buf *b = g->b;
  rk_buf_puts(b, "extern \"C\" __global__ void __launch_bounds__(RK_TPB)\n"
                 "rk_main(long long sk_ni, long long sk_nj, long long "
                 "sk_jbase, long long sk_jchunk,\n"
                 "        double *__restrict__ sk_out, long long sk_ldo,\n"
                 "        double *__restrict__ sk_st, long long sk_ldst, "
                 "long long sk_stpart, int sk_mode");
  for (int v = 0; v < f->nvars; v++)
    rk_buf_printf(
        b, ",\n        const T *__restrict__ sk_v%d, long long sk_ld%d", v, v);
  rk_buf_puts(b, ") {\n");
  rk_buf_puts(b, "  __shared__ __align__(16) T sk_sh[RK_TJ * RK_PAD];\n"
                 "  const long long sk_row = (long long)blockIdx.x * (RK_TPB "
                 "* RK_RB) + threadIdx.x;\n"
                 "  const long long sk_js = (long long)blockIdx.y * "
                 "sk_jchunk;\n"
                 "  const long long sk_je = sk_nj - sk_js < sk_jchunk ? sk_nj "
                 ": sk_js + sk_jchunk;\n"
                 "  sk_st += (long long)blockIdx.y * sk_stpart;\n");
  for (int r = 0; r < rb; r++)
    rk_buf_printf(b, "  const long long sk_row%d = sk_row + %d * RK_TPB;\n", r,
                  r);
}

/* step 2: parameters and outer variables copied to registers */
static void main_registers(rk_cg *g, const rk_formula *f, const char *used,
                           int rb) {
  cuda_skel *s = g->skel;
  rk_buf *b = g->b;
  for (int v = 0; v < f->nvars && s->pregs; v++) {
    if (!used[v] || f->vars[v].cat != RK_CAT_P)
      continue;
    rk_buf_printf(b, "  T sk_p%d[%d];\n", v, f->vars[v].dim);
    rk_buf_printf(b,
                  "#pragma unroll\n  for (int sk_k = 0; sk_k < %d; sk_k++) "
                  "sk_p%d[sk_k] = sk_v%d[sk_k];\n",
                  f->vars[v].dim, v, v);
  }
  for (int v = 0; v < f->nvars && s->regs; v++) {
    if (!used[v] || f->vars[v].cat != s->outer_cat)
      continue;
    for (int r = 0; r < rb; r++) {
      rk_buf_printf(b, "  T sk_x%d_%d[%d];\n", v, r, f->vars[v].dim);
      rk_buf_printf(b,
                    "#pragma unroll\n  for (int sk_k = 0; sk_k < %d; "
                    "sk_k++) sk_x%d_%d[sk_k] = sk_row%d < sk_ni ? "
                    "sk_v%d[sk_k * sk_ld%d + sk_row%d] : (T)0;\n",
                    f->vars[v].dim, v, r, r, v, v, r);
    }
  }
}

/* step 3: each row's state, loaded (mode bit 0) or initialised */
static void main_states_in(rk_cg *g, const rk_formula *f, int rb) {
  char acc[32], pat[256];
  g->indent = 1;
  for (int r = 0; r < rb; r++) {
    snprintf(acc, sizeof acc, "sk_a%d", r);
    snprintf(pat, sizeof pat, "sk_st[(long long)(%%s) * sk_ldst + sk_row%d]",
             r);
    rk_cg_red_decl(g, f, acc);
    rk_cg_line(g, "if ((sk_mode & 1) && sk_row%d < sk_ni) {", r);
    g->indent++;
    rk_cg_red_load(g, f, acc, pat);
    g->indent--;
    rk_cg_line(g, "} else {");
    g->indent++;
    rk_cg_red_init(g, f, acc);
    g->indent--;
    rk_cg_line(g, "}");
  }
}

/* step 4: the tile loop opens; the inner variables of the tile go to
   shared memory */
static void main_tile_load(rk_cg *g, const rk_formula *f, const char *used) {
  cuda_skel *s = g->skel;
  rk_buf *b = g->b;
  rk_buf_puts(b, "  for (long long sk_jt = sk_js; sk_jt < sk_je; sk_jt += "
                 "RK_TJ) {\n    __syncthreads();\n"
                 "    for (int sk_t = threadIdx.x; sk_t < RK_TJ; sk_t += "
                 "RK_TPB) {\n"
                 "      const long long sk_j = sk_jt + sk_t;\n"
                 "      if (sk_j < sk_je) {\n");
  for (int v = 0; v < f->nvars && !s->ginner; v++) {
    if (!used[v] || f->vars[v].cat == s->outer_cat ||
        f->vars[v].cat == RK_CAT_P)
      continue;
    rk_buf_printf(b,
                  "        for (int sk_k = 0; sk_k < %d; sk_k++) "
                  "sk_sh[sk_t * RK_PAD + %d + sk_k] = sk_v%d[sk_k * sk_ld%d "
                  "+ sk_j];\n",
                  f->vars[v].dim, s->off[v], v, v);
  }
  rk_buf_puts(b, "      }\n    }\n    __syncthreads();\n"
                 "    const int sk_n = sk_je - sk_jt < RK_TJ ? (int)(sk_je - "
                 "sk_jt) : RK_TJ;\n");
}

/* step 5: the loop over the tile's points: the formula and the fold, for
   each row of the thread; closes the tile loop */
static int main_points(rk_cg *g, const rk_formula *f, const rk_cuda_geom *gm,
                       rk_error *e) {
  cuda_skel *s = g->skel;
  char acc[32], fpat[512], wpat[512];
  int rc = RK_OK;
  if (gm->uj > 1)
    rk_buf_printf(g->b, "#pragma unroll %d\n", gm->uj);
  rk_buf_puts(g->b, "    for (int sk_jj = 0; sk_jj < sk_n; sk_jj++) {\n");
  g->indent = 3;
  const rk_node *roots[2] = {f->f, f->w};
  for (int r = 0; r < gm->rb && rc == RK_OK; r++) {
    s->row = r;
    snprintf(acc, sizeof acc, "sk_a%d", r);
    rk_cg_line(g, "{ /* row %d */", r);
    g->indent++;
    rc = rk_cg_emit_map(g, f->ctx, roots, f->w ? 2 : 1, e);
    node_pat(g, f->f, fpat, sizeof fpat);
    if (f->w)
      node_pat(g, f->w, wpat, sizeof wpat);
    rk_cg_red_update(g, f, acc, fpat, f->w ? wpat : NULL,
                     "(sk_jbase + sk_jt + sk_jj)");
    g->indent--;
    rk_cg_line(g, "}");
  }
  rk_buf_puts(g->b, "    }\n");
  /* block_sum: the tile's float sums into the double accumulators */
  g->indent = 2;
  for (int r = 0; r < gm->rb; r++) {
    snprintf(acc, sizeof acc, "sk_a%d", r);
    rk_cg_red_flush(g, f, acc);
  }
  rk_buf_puts(g->b, "  }\n");
  return rc;
}

/* step 6: each row's state stored (mode bit 1) or its result written */
static void main_states_out(rk_cg *g, const rk_formula *f, int rb) {
  char acc[32], pat[256];
  g->indent = 1;
  for (int r = 0; r < rb; r++) {
    snprintf(acc, sizeof acc, "sk_a%d", r);
    rk_cg_line(g, "if (sk_row%d < sk_ni) {", r);
    g->indent++;
    rk_cg_line(g, "if (sk_mode & 2) {");
    g->indent++;
    snprintf(pat, sizeof pat, "sk_st[(long long)(%%s) * sk_ldst + sk_row%d]",
             r);
    rk_cg_red_store(g, f, acc, pat);
    g->indent--;
    rk_cg_line(g, "} else {");
    g->indent++;
    snprintf(pat, sizeof pat, "sk_out[(long long)(%%s) * sk_ldo + sk_row%d]",
             r);
    rk_cg_red_final(g, f, acc, pat);
    g->indent--;
    rk_cg_line(g, "}");
    g->indent--;
    rk_cg_line(g, "}");
  }
  rk_buf_puts(g->b, "}\n\n");
}

static int emit_main(rk_cg *g, const rk_formula *f, const rk_cuda_geom *gm,
                     const char *used, rk_error *e) {
  main_header(g, f, gm->rb);
  main_registers(g, f, used, gm->rb);
  main_states_in(g, f, gm->rb);
  main_tile_load(g, f, used);
  int rc = main_points(g, f, gm, e);
  main_states_out(g, f, gm->rb);
  return rc;
}

/* rk_merge: the nparts states of a row, in point order, merged; mode bit 1
   stores the merged state into part 0, else the result is written */
static void emit_merge(rk_cg *g, const rk_formula *f) {
  rk_buf *b = g->b;
  const char *pa = "sk_st[(long long)(%s) * sk_ldst + sk_row]";
  const char *pb = "sk_q[(long long)(%s) * sk_ldst + sk_row]";
  rk_buf_puts(b, "extern \"C\" __global__ void __launch_bounds__(RK_TPB)\n"
                 "rk_merge(long long sk_ni, int sk_nparts, double "
                 "*__restrict__ sk_st,\n"
                 "         long long sk_ldst, long long sk_stpart, double "
                 "*__restrict__ sk_out, long long sk_ldo, int sk_mode) {\n"
                 "  const long long sk_row = (long long)blockIdx.x * RK_TPB + "
                 "threadIdx.x;\n"
                 "  if (sk_row >= sk_ni) return;\n");
  g->indent = 1;
  rk_cg_red_decl(g, f, "sk_a");
  rk_cg_red_decl(g, f, "sk_b");
  rk_cg_red_load(g, f, "sk_a", pa);
  rk_cg_line(g, "for (int sk_p = 1; sk_p < sk_nparts; sk_p++) {");
  g->indent++;
  rk_cg_line(g, "const double *sk_q = sk_st + sk_p * sk_stpart;");
  rk_cg_red_load(g, f, "sk_b", pb);
  rk_cg_red_merge(g, f, "sk_a", "sk_b");
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "if (sk_mode & 2) {");
  g->indent++;
  rk_cg_red_store(g, f, "sk_a", pa);
  g->indent--;
  rk_cg_line(g, "} else {");
  g->indent++;
  rk_cg_red_final(g, f, "sk_a", "sk_out[(long long)(%s) * sk_ldo + sk_row]");
  g->indent--;
  rk_cg_line(g, "}");
  rk_buf_puts(b, "}\n");
}

int rk_cg_cuda_source(const rk_formula *f, const rk_cg_config *cfg,
                      const char *key, rk_buf *out, rk_error *e) {
  rk_cuda_geom gm;
  char used[MAXPOS];
  int precision = cfg->precision;
  size_t start = out->len;
  int rc = rk_cg_check_cost(f, e);
  if (rc != RK_OK)
    return rc;
  rc = rk_cg_cuda_geom(f, cfg, &gm, e);
  if (rc != RK_OK)
    return rc;
  int maxdim = used_vars(f, used, e);
  if (maxdim < 0)
    return RK_ENOMEM;
  cuda_skel s;
  memset(&s, 0, sizeof s);
  s.f = f;
  s.outer_cat = f->axis == 1 ? RK_CAT_I : RK_CAT_J;
  s.unroll = maxdim <= 256;
  s.unroll_max = cfg->cuda_unroll;
  s.ginner = gm.ginner;
  int outer = 0, off = 0, params = 0;
  for (int v = 0; v < f->nvars; v++) {
    if (!used[v])
      continue;
    if (f->vars[v].cat == RK_CAT_P)
      params += f->vars[v].dim;
    else if (f->vars[v].cat == s.outer_cat)
      outer += f->vars[v].dim;
    else if (f->vars[v].cat != RK_CAT_P) {
      s.off[v] = off;
      off += f->vars[v].dim;
    }
  }
  s.regs = s.unroll && outer * gm.rb <= 192;
  /* Parameters are read from (cached, uniform) memory at every point: on
     an H200 the Gaussian float32 sum at 1e6 took 0.496 s against 0.518 s
     with the parameters copied into registers first (bench/gpu.R with
     tools/device-tune.sh).  Developer knob: RKEOPS_CUDA_PREGS=1 holds them
     in registers. */
  s.pregs = cfg->cuda_pregs && s.unroll && params <= 32;
  rk_cg g;
  memset(&g, 0, sizeof g);
  g.b = out;
  g.var_ref = var_ref;
  g.skel = &s;
  g.unroll = cuda_unroll;
  g.precision = precision;
  /* the branch-free LogSumExp fold (one exp per point): on an H200 the
     LogSumExp float32 at 1e6 takes 0.676 s against 0.814 s with the rare
     rescaling branch (bench/gpu.R).  Developer knob: RKEOPS_CUDA_LSE=0
     gives the branch back. */
  g.lse_select = cfg->cuda_lse != 0;
  /* block_sum (float32 Sum): a float sum per tile of RK_TJ points, added
     into a double accumulator once per tile (one double add per tile and
     row; see rk_cg_red_flush) */
  g.tile_sums = cfg->cuda_tsum == 1 ? 1 : 2;
  /* developer knob: RKEOPS_CUDA_EXP2=0 (__expf), 1 (exp2 with ftz),
     2 (and Exp(a * x) folded, see cg.h) */
  int expmode = precision != 32 ? 0 : cfg->cuda_exp2;
  g.exp2_fold = expmode == 2;
  g.inv_cat = s.outer_cat;
  g.rcp_divide = 1;
  rk_buf_puts(out, "/* rkeops CUDA kernel, generated: do not edit.\n * key: ");
  for (const char *p = key ? key : ""; *p; p++) /* no comment end in key */
    rk_buf_putc(out, (p[0] == '*' && p[1] == '/') ? '+' : *p);
  rk_buf_puts(out, "\n */\n");
  rk_buf_puts(out, precision == 64 ? prelude64 : prelude32);
  if (precision == 32)
    rk_buf_puts(out, expmode ? exp32_ftz : exp32_old);
  rk_buf_puts(out, prelude);
  /* rk_rsqrt, rk_round, ...: the scalar definitions (scalar-defs.h) */
  rk_buf_puts(out, "#define RK_S(f) RK_F(f)\n#define RK_SDQ RK_D\n");
  rk_buf_puts(out, rk_cg_scalar_src);
  rk_buf_puts(out, rk_cg_scalar_alias);
  rk_buf_printf(out,
                "#define RK_TPB %d\n#define RK_RB %d\n#define RK_TJ %d\n"
                "#define RK_PAD %d\n\n",
                gm.tpb, gm.rb, gm.tj, gm.pad);
  /* each entry point under its own guard: be-cuda-nvrtc.c compiles the
     source twice at once, -DRK_NO_MERGE (rk_main) and -DRK_NO_MAIN
     (rk_merge), in two threads */
  rk_buf_puts(out, "#ifndef RK_NO_MAIN\n");
  rc = emit_main(&g, f, &gm, used, e);
  rk_buf_puts(out, "#endif /* RK_NO_MAIN */\n\n#ifndef RK_NO_MERGE\n");
  /* the merge kernel folds states of doubles: a double accumulator */
  g.tile_sums = 1;
  if (rc == RK_OK)
    emit_merge(&g, f);
  rk_buf_puts(out, "#endif /* RK_NO_MERGE */\n");
  if (rc == RK_OK && out->oom)
    rc = rk_err(e, RK_ENOMEM, -1, "code generation: out of memory");
  if (rc == RK_OK)
    rc = rk_cg_check_bytes(out, start, "CUDA", e);
  return rc;
}
