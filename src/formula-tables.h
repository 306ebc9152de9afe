/*
 * formula-tables.h -- the engine's op and reduction tables as plain rows,
 * for the R side (src/ffi-internal.c): the tests' coverage guards read the
 * names from the engine itself, so they run wherever the package does.
 * No other header needed: safe to include beside the R headers.
 */
#ifndef RK_FORMULA_TABLES_H
#define RK_FORMULA_TABLES_H

/* op flags */
enum {
  RK_OPF_LEAF = 1,        /* no formula argument (Var, IntCst, Cst, Zero)  */
  RK_OPF_ELEMENTWISE = 2, /* a CEXPR: one component from one component     */
  RK_OPF_EXPANDED = 4,    /* Grad & co: expanded before code generation    */
  RK_OPF_DERIVATIVE = 8,  /* has a reverse-mode rule (ad-rules.c)          */
  RK_OPF_ZERO_DERIV = 16, /* its rule is rk_vjp_zero (piecewise constant)  */
  RK_OPF_KEEPZ = 32,      /* f(Zero) is Zero (RK_OPC_KEEPZ, or KEEPZ_POS
                             for a positive parameter)                     */
  RK_OPF_LINEAR = 64      /* linear in its arguments (RK_OPC_LINEAR)       */
};

int rk_table_nops(void);
/* row i (0 <= i < rk_table_nops()); 0 when i is out of range */
int rk_table_op(int i, const char **name, int *nargs, int *nip, int *flags);

int rk_table_nreds(void);
/* reduction row i: number of formula arguments (2 with a weight), 1 when
   an integer K follows, output kind (0 values, 1 indices, 2 both), 1 when
   it has a gradient */
int rk_table_red(int i, const char **name, int *nf, int *hask, int *outkind,
                 int *diff);

/* the dimension of op `name` applied to arguments of dimensions dims[0..n)
   with integer parameters ip[0..nip), by the engine's own rule (its DIMFN
   row of ops.def, through rk_build); -1 when the rule refuses them, with
   the engine's message in msg and *dim_error = 1 when the rule refused
   an argument's dimension, 2 when it refused an integer parameter (0:
   unknown op, wrong arity, out of memory) */
int rk_table_op_dim(const char *name, int n, const int *dims, int nip,
                    const int *ip, int *dim_error, char *msg, int msize);

/* the output dimension of reduction `name` (without _Reduction) on a
   formula of dimension d, a weight of dimension e and K (rk_red_outdim); -1
   when refused, with the engine's message in msg and *dim_error = 1 for
   the formula's dimension, 2 for K or the output's size (0: unknown) */
int rk_table_red_dim(const char *name, long long d, long long e, long long K,
                     int *dim_error, char *msg, int msize);

#endif /* RK_FORMULA_TABLES_H */
