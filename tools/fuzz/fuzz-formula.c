/*
 * fuzz-formula.c -- libFuzzer target for the engine's parser, checks,
 * simplifier, differentiation and code generators, through the public C
 * API (inst/include/rkeops.h) only.  Kernels are never compiled or run.
 *
 * Input: bytes split at '\n'.  The first line is the formula, each further
 * line one argument declaration ("x=Vi(3)", ...).  The first byte of the
 * input, when it is one of '0'..'3' followed by '|', picks the summation
 * scheme (so the corpus can exercise them) and is then skipped.
 *
 * For every formula that parses: the accessors are called, the canonical
 * text and both parts are parsed again (they are documented as valid
 * parser input, so a failure there is reported as a crash), and the CPU
 * and CUDA sources are generated in float64 and float32.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rkeops.h"

#define MAX_ARGS 64

/* RK_FUZZ_STRICT=1: also require the canonical text to be a fixed point */
static int strict = -1;
/* RK_FUZZ_MAX_DIM (default 1000000, the parser's own bound): declarations
   with a number above it are skipped, and formulas whose variables'
   dimensions add up to more are parsed but not differentiated nor
   generated.  Code generation is linear in the formula's size and bounded
   (RK_CG_MAX_NODES / VALUES / BYTES, cg.h) and differentiation by
   RK_AD_MAX_NODES, so large dimensions are fuzzed too; a smaller value
   only narrows the search. */
static long max_dim = -1;

/* 1 when a declaration line holds a number larger than max_dim */
static int big_number(const char *s) {
  while (*s) {
    if (*s >= '0' && *s <= '9') {
      long v = 0;
      while (*s >= '0' && *s <= '9') {
        if (v <= max_dim) v = v * 10 + (*s - '0');
        s++;
      }
      if (v > max_dim) return 1;
    } else {
      s++;
    }
  }
  return 0;
}

static void check_error(const rk_error *e, int rc) {
  /* an error must carry a name and a NUL-terminated message */
  if (rc == RK_OK) return;
  if (rk_code_name(rc) == NULL) abort();
  if (memchr(e->msg, 0, sizeof e->msg) == NULL) abort();
  if (e->msg[0] == 0) {
    fprintf(stderr, "empty error message for code %d\n", rc);
    abort();
  }
}

static void gen_sources(rk_formula *f) {
  static const int backends[2] = {RK_BACKEND_CPU, RK_BACKEND_GPU};
  static const int precs[2] = {64, 32};
  for (int b = 0; b < 2; b++)
    for (int p = 0; p < 2; p++) {
      rk_options o;
      rk_options_default(&o);
      o.backend = backends[b];
      o.precision = precs[p];
      o.cache_dir = NULL;
      rk_error e;
      char small[64];
      int64_t n = rk_formula_source(f, &o, small, sizeof small, &e);
      if (n < 0) {
        check_error(&e, e.code ? e.code : RK_EINTERNAL);
        continue;
      }
      if (strlen(small) >= sizeof small) abort();
      if (n < 1 << 20) {
        char *buf = malloc((size_t)n + 1);
        if (!buf) continue;
        int64_t m = rk_formula_source(f, &o, buf, (size_t)n + 1, &e);
        if (m != n || strlen(buf) != (size_t)n) {
          fprintf(stderr, "source length %lld then %lld (strlen %zu)\n",
                  (long long)n, (long long)m, strlen(buf));
          abort();
        }
        free(buf);
      }
    }
}

/* reparse text (canonical form or a part) with declarations of every
   variable of the original formula (so unused positions leave no gap) */
static void reparse(const char *const *decls, int ndecls, const char *text,
                    const char *what, int scheme, int need_ok) {
  if (!text) return;
  rk_formula *g = NULL;
  rk_error e;
  int rc = rk_formula_parse(text, decls, ndecls, scheme, &g, &e);
  if (rc != RK_OK) {
    check_error(&e, rc);
    if (need_ok && rc != RK_ENOMEM && rc != RK_EVALUE) {
      fprintf(stderr, "%s does not parse again: %s\n  %s\n", what, text,
              e.msg);
      abort();
    }
    return;
  }
  if (strict && strcmp(what, "canonical") == 0) {
    /* the canonical text is a fixed point */
    const char *c2 = rk_formula_canonical(g);
    if (c2 && strcmp(c2, text) != 0) {
      fprintf(stderr, "canonical text not stable:\n  %s\n  %s\n", text, c2);
      abort();
    }
  }
  rk_formula_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (strict < 0) {
    const char *s = getenv("RK_FUZZ_STRICT");
    strict = s && s[0] == '1';
  }
  if (max_dim < 0) {
    const char *s = getenv("RK_FUZZ_MAX_DIM");
    max_dim = s ? atol(s) : 1000000;
    if (max_dim <= 0) max_dim = 1000000;
  }
  if (size > 4096) return 0;  /* long inputs only slow the search down */
  int scheme = RK_SCHEME_AUTO;
  if (size >= 2 && data[0] >= '0' && data[0] <= '3' && data[1] == '|') {
    scheme = data[0] - '0';
    data += 2;
    size -= 2;
  }
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;

  const char *args[MAX_ARGS];
  int nargs = 0;
  char *formula = text;
  char *nl = strchr(text, '\n');
  if (nl) {
    *nl = 0;
    char *p = nl + 1;
    while (nargs < MAX_ARGS) {
      args[nargs++] = p;
      char *q = strchr(p, '\n');
      if (!q) break;
      *q = 0;
      p = q + 1;
    }
  }

  for (int i = 0; i < nargs; i++)
    if (big_number(args[i])) {
      free(text);
      return 0;
    }

  rk_formula *f = NULL;
  rk_error e;
  memset(&e, 0x5a, sizeof e);  /* make sure the engine fills it */
  int rc = rk_formula_parse(formula, nargs ? args : NULL, nargs, scheme, &f,
                            &e);
  if (rc != RK_OK) {
    check_error(&e, rc);
    if (f != NULL) {
      fprintf(stderr, "failed parse returned a formula\n");
      abort();
    }
    free(text);
    return 0;
  }
  if (f == NULL) abort();

  int nv = rk_formula_nvars(f);
  for (int i = 0; i < nv; i++) {
    const char *nm = rk_formula_var_name(f, i);
    if (nm) (void)strlen(nm);
    (void)rk_formula_var_dim(f, i);
    (void)rk_formula_var_cat(f, i);
  }
  (void)rk_formula_axis(f);
  (void)rk_formula_outdim(f);
  (void)rk_formula_outkind(f);
  (void)rk_formula_nodes(f);
  (void)rk_formula_K(f);
  const char *red = rk_formula_reduction(f);
  if (red) (void)strlen(red);

  /* declarations "vP=Var(P,D,C)" of every position, and of one more (eta) */
  char declbuf[MAX_ARGS + 1][64];
  const char *decls[MAX_ARGS + 1];
  int ndecls = 0;
  for (int i = 0; i < nv && i < MAX_ARGS; i++) {
    snprintf(declbuf[i], sizeof declbuf[i], "v%d=Var(%d,%d,%d)", i, i,
             rk_formula_var_dim(f, i), rk_formula_var_cat(f, i));
    decls[ndecls++] = declbuf[i];
  }
  const char *canon = rk_formula_canonical(f);
  reparse(decls, ndecls, canon, "canonical", scheme, 1);
  for (int w = 0; w < 2; w++) {
    /* a part is an expression: wrap it into a reduction to parse it */
    const char *part = rk_formula_part(f, w);
    if (!part) continue;
    size_t len = strlen(part) + 32;
    char *wrapped = malloc(len);
    if (!wrapped) continue;
    snprintf(wrapped, len, "Sum_Reduction(%s,%d)", part, rk_formula_axis(f));
    reparse(decls, ndecls, wrapped, w ? "part 1" : "part 0", scheme, 0);
    free(wrapped);
  }

  long dims = rk_formula_outdim(f);
  for (int i = 0; i < nv; i++) dims += rk_formula_var_dim(f, i);
  if (dims > max_dim) {
    rk_formula_free(f);
    free(text);
    return 0;
  }

  gen_sources(f);

  /* differentiate: the gradient of the reduced formula with respect to
     each variable, composed as keops_grad() does it (a Sum of Grad with a
     new gradient input eta of the output's dimension) */
  const char *part0 = rk_formula_part(f, 0);
  if (part0 && red && strcmp(red, "Sum") == 0 && rk_formula_part(f, 1) == NULL &&
      nv < MAX_ARGS) {
    int axis = rk_formula_axis(f);
    for (int p = 0; p < nv && p < 4; p++) {
      int d = rk_formula_var_dim(f, p);
      if (d <= 0) continue;
      size_t len = strlen(part0) + 128;
      char *g = malloc(len);
      if (!g) break;
      snprintf(g, len, "Sum_Reduction(Grad(%s,Var(%d,%d,%d),Var(%d,%d,%d)),%d)",
               part0, p, d, rk_formula_var_cat(f, p), nv, rk_formula_outdim(f),
               axis ? 0 : 1, axis);
      rk_formula *gf = NULL;
      rk_error ge;
      int nd = ndecls;
      char etadecl[64];
      snprintf(etadecl, sizeof etadecl, "eta=Var(%d,%d,%d)", nv,
               rk_formula_outdim(f), axis ? 0 : 1);
      if (nd <= MAX_ARGS) decls[nd++] = etadecl;
      int grc = rk_formula_parse(g, decls, nd, scheme, &gf, &ge);
      if (getenv("RK_FUZZ_DEBUG"))
        fprintf(stderr, "grad %s: %s %s\n", g, rk_code_name(grc),
                grc == RK_OK ? "" : ge.msg);
      if (grc == RK_OK) {
        gen_sources(gf);
        rk_formula_free(gf);
      } else {
        check_error(&ge, grc);
      }
      free(g);
    }
  }

  /* outrows with made-up inputs: shapes are checked, no data is read */
  if (nv > 0 && nv <= MAX_ARGS) {
    rk_input in[MAX_ARGS];
    static const double dummy[1] = {0};
    for (int i = 0; i < nv; i++) {
      int d = rk_formula_var_dim(f, i);
      in[i].data = dummy;
      in[i].nrow = rk_formula_var_cat(f, i) == RK_CAT_P ? 1 : 3;
      in[i].ncol = d > 0 ? d : 1;
      in[i].layout = RK_LAYOUT_COL;
    }
    rk_error e2;
    int64_t rows = rk_formula_outrows(f, in, nv, &e2);
    if (rows < 0) check_error(&e2, e2.code ? e2.code : RK_EINTERNAL);
  }

  rk_formula_free(f);
  free(text);
  return 0;
}
