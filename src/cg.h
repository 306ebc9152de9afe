/*
 * cg.h -- code generation.  One formula emitter (cg-expr.c) and one set of
 * reduction snippets (cg-reduce.c) shared by the CPU skeleton (cg-cpu.c)
 * and the CUDA skeleton (cg-cuda.c); the skeletons differ only in their
 * loops and in how they reach variables.
 *
 * Conventions of the emitted code (every prelude defines them):
 *   T            the scalar type: double or float
 *   rk_v         the type of one component of a value: on the CPU a GCC
 *                vector of RK_LANES consecutive reduction indices, on CUDA T
 *   RK_SPLAT(c)  a constant c as an rk_v
 *   rk_exp(x) ... every function named in ops.def's CEXPR column, taking
 *                and returning rk_v (rk_round and rk_powi take an int too)
 * The value of node n is the array "rk_v n<id>[dim]", declared where it is
 * computed.  Variables are never copied: their components are reached
 * through the skeleton's var_ref callback.  A formula string is never
 * pasted into generated code: only IR nodes emit code.
 */
#ifndef RK_CG_H
#define RK_CG_H

#include "ir.h"

typedef struct rk_cg {
  rk_buf *b;
  /* append the expression (of type rk_v) of component k of variable node
     v (op RK_OP_VAR); k is C text: a literal ("2") or a loop variable. */
  void (*var_ref)(struct rk_cg *g, const rk_node *v, const char *k);
  void *skel;    /* the skeleton's private data */
  int indent;    /* current indentation, in levels */
  int precision; /* 32 or 64 */
  /* LogSumExp-family folds: 0 = a rare rescaling branch then a scaled add
     (two exps on a new maximum), 1 = branch-free, one exp per point and
     selects (see lse_fold in cg-reduce.c) */
  int lse_select;
  /* Exp(Mult(a, b)) with a invariant over the reduction (a constant, a
     parameter, a variable of category inv_cat, or minus one of them) is
     emitted as RK_EXP2S((a * RK_LOG2E) * b): the scaling of exp(x) into
     exp2 folds into the invariant factor (the float32 CUDA skeleton) */
  int exp2_fold;
  int inv_cat;
  /* Divide(a, b) with b invariant over the reduction (constants,
     parameters, variables of category inv_cat and arithmetic of those)
     emitted as a * (1 / b), so that the division leaves the loop over the
     points (the CUDA skeleton; the CPU plan hoists its own reciprocals) */
  int rcp_divide;
  /* block_sum of a float32 Sum: the points go into a float sum of the
     tile (acc_t), added into the double accumulator by rk_cg_red_flush
     (CUDA); 0: straight into the double accumulator (the CPU); 2: the
     accumulator is a float pair, the tile sums added by a two-sum */
  int tile_sums;
  /* how the skeleton wants a loop of the emitted code unrolled: the text
     of the line to put before it (e.g. "#pragma unroll"), or NULL; trips
     is the literal trip count, or -1 when the bound is not a literal.
     NULL callback: no annotation (the CPU skeleton). */
  const char *(*unroll)(const struct rk_cg *g, long trips, int formula);
} rk_cg;

/* the skeleton's annotation for a loop of `trips` iterations, if any:
   call just before emitting the "for" line */
void rk_cg_loop(rk_cg *g, long trips);
/* the same for a loop over the components of a formula node (the skeleton
   may unroll these further than the loops of a reduction's state) */
void rk_cg_loop_dim(rk_cg *g, long trips);

/* indentation-aware line output: rk_cg_line(g, "x = %d;", 3) */
void rk_cg_line(rk_cg *g, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* append the expression of component k of node n: a variable goes through
   var_ref, a constant is RK_SPLAT(value), Zero is RK_SPLAT(0), anything
   else "n<id>[k]" (or "n<id>[0]" when n->dim == 1: broadcasting). */
void rk_cg_ref(rk_cg *g, const rk_node *n, const char *k);

/* emit, in topological order, the code computing every non-leaf node that
   the roots depend on (each once); afterwards rk_cg_ref(g, root, k) names
   the root's components.  Returns RK_OK or an error. */
int rk_cg_emit_map(rk_cg *g, rk_ctx *c, const rk_node *const *roots, int nroots,
                   rk_error *e);

/* the emitter of every op, indexed by enum rk_op (NULL: never emitted),
   built from ops.def's EMITFN column (cg-expr.c) */
typedef void (*rk_emit_fn)(rk_cg *g, const rk_node *n);
extern const rk_emit_fn rk_cg_emitters[];
/* 1 for a leaf (Var, IntCst, Cst, Zero: ops.def rows emitted by
   rk_emit_leaf, referenced in place by rk_cg_ref) */
int rk_cg_is_leaf(const rk_node *n);

/* the emitters, declared from ops.def's EMITFN column (repeated identical
   declarations are valid C); rk_emit_none: the ops expanded before code
   generation (Grad & co), refused by rk_cg_emit_map */
typedef void rk_emit_rule(rk_cg *g, const rk_node *n);
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls)       \
  rk_emit_rule emitfn;
#include "ops.def"
#undef X

/* the scalar definitions of scalar-defs.h as C text (cg-expr.c): the
   functions rk_<name>_s, for a prelude that defines T, RK_S(f) (the libm
   function f of precision T) and RK_SDQ (the qualifiers of a function);
   rk_cg_scalar_alias: "#define rk_<name> rk_<name>_s" for each (CUDA,
   where rk_v is T) */
extern const char rk_cg_scalar_src[];
extern const char rk_cg_scalar_alias[];

/* ---- reduction snippets (cg-reduce.c), on scalars of type T ----
 * The state of one output row is a set of local C variables whose names
 * start with the prefix `acc`.  Patterns are printf formats with one %s
 * that receives a component-index expression, e.g. "fb[(%s)*TJ + jj]".
 */
/* number of doubles needed to store one row's state (rk_cg_red_store) */
int rk_cg_red_state_size(const rk_formula *f);
void rk_cg_red_decl(rk_cg *g, const rk_formula *f, const char *acc);
void rk_cg_red_init(rk_cg *g, const rk_formula *f, const char *acc);
/* fold one reduction point: fpat / wpat give the components of f / w
   (wpat NULL when there is no weight), jexpr its 0-based index */
void rk_cg_red_update(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *fpat, const char *wpat, const char *jexpr);
/* the end of a tile of points (block_sum, g->tile_sums): the tile's
   partial sums into the accumulator; nothing for other schemes */
void rk_cg_red_flush(rk_cg *g, const rk_formula *f, const char *acc);
/* fold state acc2 (points with larger indices) into acc */
void rk_cg_red_merge(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *acc2);
/* state <-> doubles at pattern pat (%s: slot index) */
void rk_cg_red_store(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *pat);
void rk_cg_red_load(rk_cg *g, const rk_formula *f, const char *acc,
                    const char *pat);
/* write output component c (0..outdim-1) to outpat (%s: c); indices are
   written 1-based */
void rk_cg_red_final(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *outpat);

/* ---- the configuration of code generation ----
 * Generated code is a pure function of (formula, configuration): the
 * generators read nothing else (no environment).  The configuration is
 * filled once at the border (rk_cg_config_env, run.c) and the kernel key
 * serialises every field that applies to the backend (rk_cg_config_key),
 * so a new field is in the key by construction.
 * X(field, default, environment variable, backends (1 CPU, 2 CUDA))
 * Developer knobs (tools/DEVNOTES.md):
 *   cpu_lse       RKEOPS_CPU_LSE=1: the CPU uses the branch-free LogSumExp
 *                 fold of the CUDA kernels (the tests use it)
 *   cpu_unroll    RKEOPS_CPU_UNROLL=n (0..64): the CPU map folds a result
 *                 of up to n components with one statement per component,
 *                 larger ones with a loop (the source stays linear in the
 *                 size of the formula, not in its dimensions)
 *   cuda_tpb/rb   RKEOPS_CUDA_GEOM="tpb,rb"; 0: chosen per formula
 *   cuda_unrollj  RKEOPS_CUDA_UNROLLJ=n (1..16); 0: chosen per formula
 *   cuda_pregs    RKEOPS_CUDA_PREGS=1: parameters copied to registers
 *   cuda_lse      RKEOPS_CUDA_LSE=0: the LogSumExp fold with its branch
 *   cuda_exp2     RKEOPS_CUDA_EXP2=0|1|2: float32 exp as __expf, as
 *                 ex2.approx.ftz, or that plus the Exp(a * x) fold
 *   cuda_unroll   RKEOPS_CUDA_UNROLL=n (16..1024): loops over the
 *                 components of a formula node of up to n trips unrolled
 *                 (default 256, the widest node held in registers)
 *   cuda_tsum     RKEOPS_CUDA_TSUM=1|2: block_sum of a float32 Sum adds the
 *                 float tile sums into a double accumulator (1) or into a
 *                 float pair by a two-sum (2, the default: on an H100 the
 *                 Gaussian sum at 1e6 takes 0.398 s against 0.422 s with
 *                 1, direct_sum 0.352 s, timed interleaved too; the same
 *                 errors)
 */
#define RK_CG_CONFIG_FIELDS(X)                                                 \
  X(precision, 64, NULL, 3)                                                    \
  X(cpu_lse, 0, "RKEOPS_CPU_LSE", 1)                                           \
  X(cpu_unroll, 16, "RKEOPS_CPU_UNROLL", 1)                                    \
  X(cuda_tpb, 0, "RKEOPS_CUDA_GEOM", 2)                                        \
  X(cuda_rb, 0, "RKEOPS_CUDA_GEOM", 2)                                         \
  X(cuda_unrollj, 0, "RKEOPS_CUDA_UNROLLJ", 2)                                 \
  X(cuda_pregs, 0, "RKEOPS_CUDA_PREGS", 2)                                     \
  X(cuda_lse, 1, "RKEOPS_CUDA_LSE", 2)                                         \
  X(cuda_exp2, 2, "RKEOPS_CUDA_EXP2", 2)                                       \
  X(cuda_unroll, 256, "RKEOPS_CUDA_UNROLL", 2)                                 \
  X(cuda_tsum, 2, "RKEOPS_CUDA_TSUM", 2)

typedef struct rk_cg_config {
#define RK_CG_X(name, def, env, be) int name;
  RK_CG_CONFIG_FIELDS(RK_CG_X)
#undef RK_CG_X
} rk_cg_config;

/* every field at its default, precision set */
void rk_cg_config_default(rk_cg_config *c, int precision);
/* append "name=value " for every field that applies to backend mask be
   (1 CPU, 2 CUDA) */
void rk_cg_config_key(const rk_cg_config *c, int be, rk_buf *b);

/* ---- skeletons ---- */
/* complete C translation unit of the CPU kernel (see be.h for its ABI,
   of version RK_CPU_ABI) */
#define RK_CPU_ABI 2
int rk_cg_cpu_source(const rk_formula *f, const rk_cg_config *c,
                     const char *key, rk_buf *out, rk_error *e);
/* complete CUDA translation unit (its kernels' ABI: top of cg-cuda.c) */
int rk_cg_cuda_source(const rk_formula *f, const rk_cg_config *c,
                      const char *key, rk_buf *out, rk_error *e);
/* launch geometry of that CUDA kernel (compile-time constants of the
   source, recomputed identically by the launcher when it loads the
   kernel, be-cuda.c): tpb threads per block, rb output rows per thread
   (register blocking), tj reduction points per shared-memory tile, state
   doubles per row, uj the unrolling of the loop over a tile's points
   (1: none).  Allocates nothing that outlives the call. */
typedef struct rk_cuda_geom {
  int tpb, rb, tj, pad, state, uj;
  int ginner; /* 1: inner variables too wide for a shared tile, read from
                 global memory (L1/L2-cached) at each point */
} rk_cuda_geom;
int rk_cg_cuda_geom(const rk_formula *f, const rk_cg_config *c,
                    rk_cuda_geom *gm, rk_error *e);

/* nodes reachable from roots, children first, each once, in malloc'ed
   memory (*out, freed by the caller): scratch of code generation, which
   must not grow the formula's arena (a long-lived formula is generated
   for many times) */
int rk_cg_topo(const rk_ctx *c, const rk_node *const *roots, int nroots,
               const rk_node ***out);

/* ---- what a formula may cost ----
 * The generators refuse, with RK_EUNSUPPORTED and a message naming the
 * limit, a formula that would take minutes to compile or overflow a
 * thread's stack, rather than running the compiler on it:
 *   RK_CG_MAX_NODES   operations of the formula (its reduced expression
 *                     and weight, each node once)
 *   RK_CG_MAX_VALUES  components computed per point: the sum of the
 *                     dimensions of those operations (each is an array of
 *                     that many values on the stack; the CPU map keeps
 *                     RK_RB rows of RK_LANES points: 64 bytes a value)
 *   RK_CG_MAX_BYTES   bytes of generated source (the CPU: about 1.5 MB for
 *                     a sum of 1000 Gaussian terms, 11 s of gcc -O3; 4.5 MB
 *                     took 60 s)
 * The generated source is linear in the number of nodes (loops over
 * components), so the dimensions alone never reach RK_CG_MAX_BYTES. */
#define RK_CG_MAX_NODES  100000
#define RK_CG_MAX_VALUES 65536
#define RK_CG_MAX_BYTES  (2 * 1024 * 1024)
/* nodes and values of f against the first two limits */
int rk_cg_check_cost(const rk_formula *f, rk_error *e);
/* the source of `what` ("CPU", "CUDA"), generated into out from byte
   `start` on, against RK_CG_MAX_BYTES */
int rk_cg_check_bytes(const rk_buf *out, size_t start, const char *what,
                      rk_error *e);

#endif /* RK_CG_H */
