/*
 * init.c -- registration of the .Call entry points (exact arity, no
 * dynamic symbol lookup) and of the public C API (rkeops.h) for other
 * packages through R_RegisterCCallable.  With ffi.c, the only files of the
 * package that include R headers.
 */
#include <R.h>
#include <R_ext/Rdynload.h>
#include <Rinternals.h>

#include "../inst/include/rkeops.h"

/* defined in ffi.c */
SEXP ffi_parse(SEXP formula, SEXP args, SEXP sum_scheme);
SEXP ffi_run(SEXP ptr, SEXP inputs, SEXP options, SEXP inner_dim_is_row);
SEXP ffi_prepare(SEXP ptr, SEXP options);
SEXP ffi_source(SEXP ptr, SEXP options);
SEXP ffi_nvrtc_check(SEXP ptr, SEXP precision, SEXP major, SEXP minor);
SEXP ffi_nvrtc_image(SEXP ptr, SEXP precision, SEXP major, SEXP minor);
SEXP ffi_cache_clear_memory(void);
SEXP ffi_stats(void);
SEXP ffi_config(void);
SEXP ffi_formula_info(SEXP ptr);
SEXP ffi_ptr_is_null(SEXP ptr);
SEXP ffi_grad_plan(SEXP, SEXP, SEXP);
/* defined in ffi-solve.c (solve(), kernel_logdet()) */
SEXP ffi_solve(SEXP mv, SEXP col, SEXP diag, SEXP b, SEXP x0, SEXP ctl,
               SEXP options);
SEXP ffi_logdet(SEXP mv, SEXP col, SEXP diag, SEXP w, SEXP ctl, SEXP options);
SEXP ffi_solve_cb(SEXP fun, SEXP diag, SEXP b, SEXP x0, SEXP ctl,
                  SEXP options);
/* defined in ffi-internal.c (the package's own tests) */
SEXP ffi_engine_tables(void);
SEXP ffi_red_dim(SEXP, SEXP, SEXP, SEXP);
SEXP ffi_op_dim(SEXP name, SEXP dims, SEXP ip);
SEXP ffi_ctest(SEXP name, SEXP tmpdir);
SEXP ffi_pivchol_dense(SEXP A, SEXP rank, SEXP alpha, SEXP theta);
/* defined in ffi-cuda.c (owned by the CUDA backend) */
SEXP ffi_cuda_meminfo(SEXP device);
void rk_ffi_init(DllInfo *dll);
/* defined in ffi-backend.c (internal: the backend layer, rk_operator) */
SEXP ffi_op_prepare(SEXP ptr, SEXP inputs, SEXP options);
SEXP ffi_op_run(SEXP op, SEXP rows, SEXP js, SEXP replace, SEXP x, SEXP states,
                SEXP want_states);
SEXP ffi_op_merge(SEXP op, SEXP states, SEXP finalize);
SEXP ffi_op_info(SEXP op);
SEXP ffi_be_arena(SEXP ptr, SEXP options, SEXP n);
SEXP ffi_be_host(SEXP value);
SEXP ffi_be_key(SEXP ptr, SEXP options);
SEXP ffi_nvrtc_compile_text(SEXP src, SEXP major, SEXP minor);
/* defined in ffi-threads.c / threads.c (threads) */
SEXP ffi_threads_info(SEXP ncore);
void rk_threads_init(void);

/* through void (*)(void), the generic function pointer type, so that
   -Wcast-function-type stays quiet */
#define RK_FN(f) ((DL_FUNC)(void (*)(void))(f))

static const R_CallMethodDef call_methods[] = {
    {"ffi_parse", RK_FN(&ffi_parse), 3},
    {"ffi_run", RK_FN(&ffi_run), 4},
    {"ffi_prepare", RK_FN(&ffi_prepare), 2},
    {"ffi_source", RK_FN(&ffi_source), 2},
    {"ffi_nvrtc_check", RK_FN(&ffi_nvrtc_check), 4},
    {"ffi_nvrtc_image", RK_FN(&ffi_nvrtc_image), 4},
    {"ffi_cache_clear_memory", RK_FN(&ffi_cache_clear_memory), 0},
    {"ffi_stats", RK_FN(&ffi_stats), 0},
    {"ffi_config", RK_FN(&ffi_config), 0},
    {"ffi_formula_info", RK_FN(&ffi_formula_info), 1},
    {"ffi_ptr_is_null", RK_FN(&ffi_ptr_is_null), 1},
    {"ffi_grad_plan", RK_FN(&ffi_grad_plan), 3},
    {"ffi_cuda_meminfo", RK_FN(&ffi_cuda_meminfo), 1},
    {"ffi_op_prepare", RK_FN(&ffi_op_prepare), 3},
    {"ffi_op_run", RK_FN(&ffi_op_run), 7},
    {"ffi_op_merge", RK_FN(&ffi_op_merge), 3},
    {"ffi_op_info", RK_FN(&ffi_op_info), 1},
    {"ffi_be_arena", RK_FN(&ffi_be_arena), 3},
    {"ffi_be_host", RK_FN(&ffi_be_host), 1},
    {"ffi_be_key", RK_FN(&ffi_be_key), 2},
    {"ffi_nvrtc_compile_text", RK_FN(&ffi_nvrtc_compile_text), 3},
    {"ffi_solve", RK_FN(&ffi_solve), 7},
    {"ffi_solve_cb", RK_FN(&ffi_solve_cb), 6},
    {"ffi_logdet", RK_FN(&ffi_logdet), 6},
    {"ffi_threads_info", RK_FN(&ffi_threads_info), 1},
    {"ffi_engine_tables", RK_FN(&ffi_engine_tables), 0},
    {"ffi_red_dim", RK_FN(&ffi_red_dim), 4},
    {"ffi_op_dim", RK_FN(&ffi_op_dim), 3},
    {"ffi_ctest", RK_FN(&ffi_ctest), 2},
    {"ffi_pivchol_dense", RK_FN(&ffi_pivchol_dense), 4},
    {NULL, NULL, 0}};

#define RK_CCALLABLE(name) R_RegisterCCallable("rkeops", #name, RK_FN(&name))

static void register_c_api(void) {
  RK_CCALLABLE(rk_code_name);
  RK_CCALLABLE(rk_formula_parse);
  RK_CCALLABLE(rk_formula_free);
  RK_CCALLABLE(rk_formula_nvars);
  RK_CCALLABLE(rk_formula_var_name);
  RK_CCALLABLE(rk_formula_var_dim);
  RK_CCALLABLE(rk_formula_var_cat);
  RK_CCALLABLE(rk_formula_axis);
  RK_CCALLABLE(rk_formula_outdim);
  RK_CCALLABLE(rk_formula_outkind);
  RK_CCALLABLE(rk_formula_canonical);
  RK_CCALLABLE(rk_formula_nodes);
  RK_CCALLABLE(rk_formula_part);
  RK_CCALLABLE(rk_formula_reduction);
  RK_CCALLABLE(rk_formula_K);
  RK_CCALLABLE(rk_options_default);
  RK_CCALLABLE(rk_formula_outrows);
  RK_CCALLABLE(rk_formula_run);
  RK_CCALLABLE(rk_formula_prepare);
  RK_CCALLABLE(rk_formula_source);
  RK_CCALLABLE(rk_formula_nvrtc_check);
  RK_CCALLABLE(rk_cache_clear_memory);
  RK_CCALLABLE(rk_stat_compiles);
  RK_CCALLABLE(rk_stat_disk_loads);
  RK_CCALLABLE(rk_config_describe);
  RK_CCALLABLE(rk_config_openmp);
  RK_CCALLABLE(rk_gpu_count);
}

void R_init_rkeops(DllInfo *dll) {
  R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
  R_useDynamicSymbols(dll, FALSE);
  R_forceSymbols(dll, TRUE);
  register_c_api();
  rk_ffi_init(dll);
  rk_threads_init(); /* the fork handler, once */
}
