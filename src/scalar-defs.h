/*
 * scalar-defs.h -- THE scalar definitions of the elementwise functions
 * that are not a plain libm call.  One C body each, on a scalar type T:
 *
 *   X(name, (parameters), { body })
 *
 * defines `T rk_<name>_s(parameters)`.  The same text is
 *   - compiled into the engine for constant folding (ir-simplify.c, with
 *     T = double, RK_S(f) = f), and
 *   - written, stringised, into the preludes of the generated CPU and CUDA
 *     kernels (rk_cg_scalar_src, cg-expr.c), where RK_S(f) is the libm
 *     function of the kernel's precision (f or f##f) and RK_SDQ the
 *     function qualifiers (static inline / __device__ ...).
 * So constant folding, the CPU and the CUDA kernels cannot disagree.  The
 * CUDA prelude wraps every one as rk_<name> (rk_v is T there); the CPU
 * prelude maps the ones without a vector form lane by lane (Round, Powf)
 * and keeps branch-free vector forms of the others (selects on GCC
 * vectors), which test-scalar-defs.R checks against these bodies (through
 * constant folding) on special values.
 *
 * Semantics (KeOps conventions, cg-expr.c): rsqrt(0) = 0; powi by
 * repeated squaring (n < 0: 1 / x^-n; x^0 = 1); powf = exp(y log x);
 * sign(NaN) = 0, step(NaN) = 1; round(x, d) rounds half away from zero to
 * d decimals, 10^|d| by repeated multiplication (exact up to 10^22 in
 * float64), dividing by it for d < 0; xlogx(0) = 0; sinxdivx(0) = 1;
 * clamp(x, a, b) = x < a ? a : (x > b ? b : x); ifelse(c, a, b) =
 * c >= 0 ? a : b; mod(x, m, o) = x - m floor((x - o) / m).
 */
#ifndef RK_SCALAR_DEFS_H
#define RK_SCALAR_DEFS_H

#define RK_SCALAR_DEFS(X)                                                      \
  X(rsqrt, (T x), { return x == 0 ? (T)0 : (T)1 / RK_S(sqrt)(x); })            \
  X(inv, (T x), { return (T)1 / x; })                                          \
  X(powi, (T x, int n), {                                                      \
    unsigned m = n < 0 ? 0u - (unsigned)n : (unsigned)n;                       \
    T r = 1;                                                                   \
    T b = x;                                                                   \
    while (m) {                                                                \
      if (m & 1u)                                                              \
        r *= b;                                                                \
      m >>= 1;                                                                 \
      if (m)                                                                   \
        b *= b;                                                                \
    }                                                                          \
    return n < 0 ? (T)1 / r : r;                                               \
  })                                                                           \
  X(powf, (T x, T y), { return RK_S(exp)(y * RK_S(log)(x)); })                 \
  X(sign, (T x), { return x > 0 ? (T)1 : (x < 0 ? (T)-1 : (T)0); })            \
  X(step, (T x), { return x < 0 ? (T)0 : (T)1; })                              \
  X(relu, (T x), { return x < 0 ? (T)0 : x; })                                 \
  X(round, (T x, int d), {                                                     \
    if (d == 0)                                                                \
      return RK_S(round)(x);                                                   \
    T p = 1;                                                                   \
    for (int q = d < 0 ? -d : d; q > 0; q--)                                   \
      p *= (T)10;                                                              \
    return d > 0 ? RK_S(round)(x * p) / p : RK_S(round)(x / p) * p;            \
  })                                                                           \
  X(xlogx, (T x), { return x == 0 ? (T)0 : x * RK_S(log)(x); })                \
  X(sinxdivx, (T x), { return x == 0 ? (T)1 : RK_S(sin)(x) / x; })             \
  X(clamp, (T x, T a, T b), { return x < a ? a : (x > b ? b : x); })           \
  X(ifelse, (T c, T a, T b), { return c >= 0 ? a : b; })                       \
  X(mod, (T x, T m, T o), { return x - m * RK_S(floor)((x - o) / m); })

#endif /* RK_SCALAR_DEFS_H */
