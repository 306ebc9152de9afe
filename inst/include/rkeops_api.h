/*
 * rkeops_api.h -- call the rkeops engine from another R package.
 *
 * In the other package: add `LinkingTo: rkeops` and `Imports: rkeops`
 * (so that rkeops is loaded first) to DESCRIPTION, then
 *
 *   #include <rkeops_api.h>
 *   rk_formula *f; rk_error e;
 *   if (rkeops_formula_parse("Sum_Reduction(x*y, 1)", args, 2,
 *                            RK_SCHEME_AUTO, &f, &e) != RK_OK) ...
 *
 * Each wrapper rkeops_<name> calls the function rk_<name> of rkeops.h,
 * found once with R_GetCCallable("rkeops", "rk_<name>").  The semantics
 * are those documented in rkeops.h; the engine never calls R, so errors
 * come back as codes in the rk_error.
 */
#ifndef RKEOPS_API_H
#define RKEOPS_API_H

#include <R_ext/Rdynload.h>

#include "rkeops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RKEOPS_API_FN(type, name, params)                                   \
  static type (*fn) params = NULL;                                          \
  if (fn == NULL)                                                           \
    fn = (type(*) params)(void (*)(void))R_GetCCallable("rkeops", #name);

static inline const char *rkeops_code_name(int code) {
  RKEOPS_API_FN(const char *, rk_code_name, (int));
  return fn(code);
}

static inline int rkeops_formula_parse(const char *formula,
                                       const char *const *args, int nargs,
                                       int sum_scheme, rk_formula **out,
                                       rk_error *err) {
  RKEOPS_API_FN(int, rk_formula_parse,
                (const char *, const char *const *, int, int, rk_formula **,
                 rk_error *));
  return fn(formula, args, nargs, sum_scheme, out, err);
}

static inline void rkeops_formula_free(rk_formula *f) {
  RKEOPS_API_FN(void, rk_formula_free, (rk_formula *));
  fn(f);
}

static inline int rkeops_formula_nvars(const rk_formula *f) {
  RKEOPS_API_FN(int, rk_formula_nvars, (const rk_formula *));
  return fn(f);
}

static inline const char *rkeops_formula_var_name(const rk_formula *f,
                                                  int pos) {
  RKEOPS_API_FN(const char *, rk_formula_var_name, (const rk_formula *, int));
  return fn(f, pos);
}

static inline int rkeops_formula_var_dim(const rk_formula *f, int pos) {
  RKEOPS_API_FN(int, rk_formula_var_dim, (const rk_formula *, int));
  return fn(f, pos);
}

static inline int rkeops_formula_var_cat(const rk_formula *f, int pos) {
  RKEOPS_API_FN(int, rk_formula_var_cat, (const rk_formula *, int));
  return fn(f, pos);
}

static inline int rkeops_formula_axis(const rk_formula *f) {
  RKEOPS_API_FN(int, rk_formula_axis, (const rk_formula *));
  return fn(f);
}

static inline int rkeops_formula_outdim(const rk_formula *f) {
  RKEOPS_API_FN(int, rk_formula_outdim, (const rk_formula *));
  return fn(f);
}

static inline int rkeops_formula_outkind(const rk_formula *f) {
  RKEOPS_API_FN(int, rk_formula_outkind, (const rk_formula *));
  return fn(f);
}

static inline const char *rkeops_formula_canonical(const rk_formula *f) {
  RKEOPS_API_FN(const char *, rk_formula_canonical, (const rk_formula *));
  return fn(f);
}

static inline int rkeops_formula_nodes(const rk_formula *f) {
  RKEOPS_API_FN(int, rk_formula_nodes, (const rk_formula *));
  return fn(f);
}

static inline const char *rkeops_formula_part(const rk_formula *f,
                                              int which) {
  RKEOPS_API_FN(const char *, rk_formula_part, (const rk_formula *, int));
  return fn(f, which);
}

static inline const char *rkeops_formula_reduction(const rk_formula *f) {
  RKEOPS_API_FN(const char *, rk_formula_reduction, (const rk_formula *));
  return fn(f);
}

static inline int rkeops_formula_K(const rk_formula *f) {
  RKEOPS_API_FN(int, rk_formula_K, (const rk_formula *));
  return fn(f);
}

static inline void rkeops_options_default(rk_options *o) {
  RKEOPS_API_FN(void, rk_options_default, (rk_options *));
  fn(o);
}

static inline int64_t rkeops_formula_outrows(const rk_formula *f,
                                             const rk_input *in, int nin,
                                             rk_error *err) {
  RKEOPS_API_FN(int64_t, rk_formula_outrows,
                (const rk_formula *, const rk_input *, int, rk_error *));
  return fn(f, in, nin, err);
}

static inline int rkeops_formula_run(rk_formula *f, const rk_options *o,
                                     const rk_input *in, int nin, double *out,
                                     rk_error *err) {
  RKEOPS_API_FN(int, rk_formula_run,
                (rk_formula *, const rk_options *, const rk_input *, int,
                 double *, rk_error *));
  return fn(f, o, in, nin, out, err);
}

static inline int rkeops_formula_prepare(rk_formula *f, const rk_options *o,
                                         int *compiled, rk_error *err) {
  RKEOPS_API_FN(int, rk_formula_prepare,
                (rk_formula *, const rk_options *, int *, rk_error *));
  return fn(f, o, compiled, err);
}

static inline int64_t rkeops_formula_source(rk_formula *f,
                                            const rk_options *o, char *buf,
                                            size_t size, rk_error *err) {
  RKEOPS_API_FN(int64_t, rk_formula_source,
                (rk_formula *, const rk_options *, char *, size_t,
                 rk_error *));
  return fn(f, o, buf, size, err);
}

static inline int rkeops_formula_nvrtc_check(rk_formula *f, int precision,
                                             int major, int minor,
                                             rk_error *err) {
  RKEOPS_API_FN(int, rk_formula_nvrtc_check,
                (rk_formula *, int, int, int, rk_error *));
  return fn(f, precision, major, minor, err);
}

static inline void rkeops_cache_clear_memory(void) {
  RKEOPS_API_FN(void, rk_cache_clear_memory, (void));
  fn();
}

static inline int64_t rkeops_stat_compiles(void) {
  RKEOPS_API_FN(int64_t, rk_stat_compiles, (void));
  return fn();
}

static inline int64_t rkeops_stat_disk_loads(void) {
  RKEOPS_API_FN(int64_t, rk_stat_disk_loads, (void));
  return fn();
}

static inline size_t rkeops_config_describe(char *buf, size_t size) {
  RKEOPS_API_FN(size_t, rk_config_describe, (char *, size_t));
  return fn(buf, size);
}

static inline int rkeops_config_openmp(void) {
  RKEOPS_API_FN(int, rk_config_openmp, (void));
  return fn();
}

static inline int rkeops_gpu_count(char *why, size_t size) {
  RKEOPS_API_FN(int, rk_gpu_count, (char *, size_t));
  return fn(why, size);
}

#undef RKEOPS_API_FN

#ifdef __cplusplus
}
#endif
#endif /* RKEOPS_API_H */
