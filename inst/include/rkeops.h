/*
 * rkeops.h -- the public C API of the rkeops engine.
 *
 * No R types appear here: other packages (and the package's own .Call
 * glue) reach the engine through these functions only.  From another R
 * package, obtain each entry point with R_GetCCallable("rkeops", "<name>")
 * (see rkeops_api.h for ready-made wrappers) or link against the package.
 *
 * Life cycle:
 *   rk_formula *f;  rk_error e;
 *   if (rk_formula_parse("Sum_Reduction(Exp(-SqDist(x,y))*b, 1)",
 *                        args, 3, RK_SCHEME_AUTO, &f, &e) != RK_OK) ... e.msg
 *   rk_options o;  rk_options_default(&o);
 *   rk_input in[3] = ...;  double *out = malloc(rk_formula_outrows(f, in) * ...);
 *   rk_formula_run(f, &o, in, out, &e);
 *   rk_formula_free(f);
 *
 * Every function returns RK_OK (0) or an error code, and then fills the
 * rk_error it was given; nothing allocated by the engine outlives a failed
 * call.  The engine never calls exit(), abort() or R.
 */
#ifndef RKEOPS_H
#define RKEOPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RK_API_VERSION 1

/* ---- errors -------------------------------------------------------- */

enum rk_code {
  RK_OK = 0,
  RK_EPARSE,       /* malformed formula or argument declaration          */
  RK_EDIM,         /* dimensions do not agree                            */
  RK_EINPUT,       /* wrong inputs at run time (count, shape, type)      */
  RK_EVAR,         /* unknown or inconsistent variable                   */
  RK_EOP,          /* unknown operation or reduction                     */
  RK_EVALUE,       /* bad value: K larger than N, negative dimension ... */
  RK_ECOMPILE,     /* the C compiler or NVRTC failed                     */
  RK_ECUDA,        /* a CUDA driver call failed                          */
  RK_ECACHE,       /* the kernel cache could not be used                 */
  RK_ENOMEM,       /* out of (host or device) memory                     */
  RK_EINTERRUPT,   /* the caller's interrupt callback asked to stop      */
  RK_EUNSUPPORTED, /* valid but not supported (e.g. no GPU)              */
  RK_EINTERNAL     /* a bug: please report                               */
};

typedef struct rk_error {
  int code;        /* enum rk_code                                      */
  int pos;         /* byte offset in the formula (or -1)                */
  int arg;         /* 0-based index of the culprit argument (or -1)     */
  char msg[4096];  /* human-readable message, no trailing newline       */
  char log[8192];  /* compiler log for RK_ECOMPILE (may be empty)       */
  char path[1024]; /* generated source's location for RK_ECOMPILE       */
} rk_error;

/* name of an error code, e.g. "RK_EPARSE" */
const char *rk_code_name(int code);

/* ---- formulas ------------------------------------------------------ */

/* variable categories, as in KeOps' Var(pos, dim, cat) */
enum rk_cat { RK_CAT_I = 0, RK_CAT_J = 1, RK_CAT_P = 2 };

enum rk_scheme {
  RK_SCHEME_AUTO = 0,
  RK_SCHEME_DIRECT,
  RK_SCHEME_BLOCK,
  RK_SCHEME_KAHAN
};

typedef struct rk_formula rk_formula;

/* Parse, check and simplify a reduction formula.  args[0..nargs-1] are
   declarations "x=Vi(3)", "x=Vi(0,3)", "y=Vj(3)", "s=Pm(1)",
   "x=Var(0,3,0)"; declarations without an explicit position take their
   index in args as position. */
int rk_formula_parse(const char *formula, const char *const *args, int nargs,
                     int sum_scheme, rk_formula **out, rk_error *err);
void rk_formula_free(rk_formula *f);

/* number of inputs expected by rk_formula_run (= max position + 1) */
int rk_formula_nvars(const rk_formula *f);
/* declared name (or "" when the variable was only used as Var(...)),
   dimension and category of the input at position pos */
const char *rk_formula_var_name(const rk_formula *f, int pos);
int rk_formula_var_dim(const rk_formula *f, int pos);
int rk_formula_var_cat(const rk_formula *f, int pos);
/* 1: reduce over j (one output row per i); 0: reduce over i */
int rk_formula_axis(const rk_formula *f);
/* number of output columns */
int rk_formula_outdim(const rk_formula *f);
/* 1 when the output holds (1-based) indices only, 2 when its second half
   holds indices (Min_ArgMin, KMin_ArgKMin), 0 otherwise */
int rk_formula_outkind(const rk_formula *f);
/* canonical text of the simplified formula, e.g.
   "Sum_Reduction(Exp(Minus(SqDist(Var(0,3,0),Var(1,3,1)))),1)" */
const char *rk_formula_canonical(const rk_formula *f);
/* number of distinct IR nodes of the simplified formula */
int rk_formula_nodes(const rk_formula *f);

/* ---- formula parts (formula-grad.c; used to compose gradients) ------ */

/* canonical text of the reduced formula (which = 0) or of the weight
   (which = 1; NULL when the reduction has none), valid parser input with
   explicit Var(pos,dim,cat) leaves; owned by f (freed with it); NULL when
   out of memory */
const char *rk_formula_part(const rk_formula *f, int which);
/* name of the reduction without "_Reduction", e.g. "Sum", "LogSumExp" */
const char *rk_formula_reduction(const rk_formula *f);
/* K of KMin, ArgKMin, KMin_ArgKMin; 0 for the other reductions */
int rk_formula_K(const rk_formula *f);
/* The gradient of the reduction f with respect to its variable at 0-based
   position pos, applied to a gradient input eta (one row per output index;
   a parameter when eta_param, for a full sum whose output is one row):
   the Sum reduction `formula`, over index `axis`, of Grad(body, x, eta),
   where body is the reduction unit's plan (red-unit.h).  eta is the
   variable Var(eta_pos, eta_dim, eta_cat), eta_pos = the number of f's
   variables; the forward outputs the body uses follow it, Var(fwd_pos[k],
   fwd_dim[k], fwd_cat[k]), each the result of fwd_formula[k] on f's
   inputs (NULL: of f itself).  full: the variable is a parameter (the
   gradient's rows are then summed).  Strings are malloc'ed; free with
   rk_grad_plan_free.  RK_OK, or RK_EOP (no gradient: Min, Max, KMin, Arg
   reductions), RK_EVAR (no such position), RK_ENOMEM, with e set. */
typedef struct rk_grad_plan {
  char *formula;
  int axis, full;
  int eta_pos, eta_dim, eta_cat;
  int nfwd;
  char *fwd_formula[2];
  const char *fwd_name[2]; /* base of the input's name: "rkeops_lse" */
  int fwd_pos[2], fwd_dim[2], fwd_cat[2];
} rk_grad_plan;
int rk_formula_grad_plan(const rk_formula *f, int pos, int eta_param,
                         rk_grad_plan *p, rk_error *e);
void rk_grad_plan_free(rk_grad_plan *p);
/* ---- end of formula parts -------------------------------------------- */

/* ---- running ------------------------------------------------------- */

enum rk_backend { RK_BACKEND_CPU = 0, RK_BACKEND_GPU = 1 };
enum rk_layout { RK_LAYOUT_COL = 0, RK_LAYOUT_ROW = 1 };

typedef struct rk_options {
  int backend;        /* enum rk_backend                                  */
  int device;         /* CUDA device number (0-based)                     */
  int precision;      /* 32 or 64                                         */
  int nthreads;       /* CPU threads; <= 0: all                           */
  int verbose;        /* 0 or 1                                           */
  const char *cache_dir; /* directory of the disk cache (NULL: no disk)   */
  /* called on the calling thread between blocks; non-zero: stop with
     RK_EINTERRUPT.  May be NULL. */
  int (*interrupted)(void *data);
  void *interrupt_data;
  /* verbose messages go here (NULL: stderr) */
  void (*message)(void *data, const char *msg);
  void *message_data;
  /* several parts (run.c, rk_parts): ndevices > 1 splits the output rows
     over devices[0 .. ndevices - 1] (the same device may be listed twice;
     on the CPU backend the numbers are ignored and each entry is one
     partition of the rows).  0 or 1: one part on `device`. */
  int ndevices;
  const int *devices;
  /* the lane (stream) of `device` this call runs on, and how many lanes of
     it run at once (they share its free memory).  0 and 0 unless set by
     rk_parts for a device listed several times: its k-th listing runs on
     lane k, a stream of its own, beside the others. */
  int lane;
  int nlanes;
  /* 1: a quickly compiled kernel will do (a small call, for which the
     kernel's speed does not matter: the GPU backend compiles it with
     NVRTC's -Ofast-compile=mid, in half the time, and caches it apart);
     0 (default): a fully optimised one.  Set by run.c (rk_formula_run's
     tiers), ignored by the CPU backend. */
  int quick;
} rk_options;

void rk_options_default(rk_options *o);

/* one input: a block of doubles.  For an i- or j-variable of dimension d
   with n points: layout COL means an n x d column-major matrix (one row per
   point, R's default), ROW a d x n column-major matrix (one column per
   point).  For a parameter: d doubles, n = 1. */
typedef struct rk_input {
  const double *data;
  int64_t nrow;   /* rows of the matrix as stored                         */
  int64_t ncol;   /* columns of the matrix as stored                      */
  int layout;     /* enum rk_layout                                       */
} rk_input;

/* number of output rows for these inputs (M when axis = 1, N when axis =
   0), or -1 with err set when the inputs are inconsistent */
int64_t rk_formula_outrows(const rk_formula *f, const rk_input *in, int nin,
                           rk_error *err);

/* Compute the reduction.  out: outrows x outdim doubles, column-major.
   Arg-type results are 1-based indices stored as doubles. */
int rk_formula_run(rk_formula *f, const rk_options *o, const rk_input *in,
                   int nin, double *out, rk_error *err);

/* Make sure the kernel for these options is compiled (memory or disk cache,
   else compile); *compiled is set to 1 when a compiler ran. */
int rk_formula_prepare(rk_formula *f, const rk_options *o, int *compiled,
                       rk_error *err);

/* Write the generated source (CPU C or CUDA) for these options into buf
   (NUL-terminated, truncated to size).  Returns the full length needed, or
   -1 with err set. */
int64_t rk_formula_source(rk_formula *f, const rk_options *o, char *buf,
                          size_t size, rk_error *err);

/* Compile the CUDA source of f with NVRTC for compute capability
   (major, minor) without any GPU (used by the test suite). */
int rk_formula_nvrtc_check(rk_formula *f, int precision, int major, int minor,
                           rk_error *err);
/* The same compile, returning the kernel image in *img (malloc'ed; a pair
   of modules, rk_main's and rk_merge's: the test suite reads it). */
int rk_formula_nvrtc_image(rk_formula *f, int precision, int major, int minor,
                           void **img, size_t *n, rk_error *err);

/* ---- engine state ---------------------------------------------------- */

/* drop the in-memory kernel cache (loaded kernels are unloaded) */
void rk_cache_clear_memory(void);
/* number of kernels compiled by this process so far (a counter for tests) */
int64_t rk_stat_compiles(void);
/* number of kernels loaded from the disk cache by this process so far */
int64_t rk_stat_disk_loads(void);

/* text description of the run-time configuration: compiler, flags, OpenMP,
   CUDA driver and NVRTC versions, GPUs.  Returns the length needed. */
size_t rk_config_describe(char *buf, size_t size);
/* OpenMP available in generated kernels (1) or not (0) */
int rk_config_openmp(void);
/* number of usable GPUs (0 when none); why (when 0) goes to buf */
int rk_gpu_count(char *why, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* RKEOPS_H */
