/*
 * ctests.c -- the table of C unit tests (ctests.h).  Each test checks one
 * property of a core module that the R-level tests can only see from far
 * away: hash-consing identity (ir.c), the arena (rk.c), the cache trailer
 * (be-cache.c), the canonical text as parser input (ir-format.c), the
 * reduction units' gradient plans (red-*.c, formula-grad.c).  A test
 * returns 1, or 0 with the first failed check in its message.
 */
#define _GNU_SOURCE /* mkdtemp */
#include "ctests.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "be.h"
#include "ir.h"
#include "red-unit.h"

typedef struct ct {
  char *msg;
  size_t n;
  const char *tmpdir;
} ct;

static int ct_fail(ct *t, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int ct_fail(ct *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->msg, t->n, fmt, ap);
  va_end(ap);
  return 0;
}

/* check a condition; on failure, return 0 with the condition's text */
#define CT_CHECK(t, cond)                                                      \
  do {                                                                         \
    if (!(cond))                                                               \
      return ct_fail((t), "line %d: %s", __LINE__, #cond);                     \
  } while (0)

/* ---- hash-consing (ir.c) --------------------------------------------------
 */

static const rk_node *gauss(rk_ctx *c, const rk_node *x, const rk_node *y,
                            rk_error *e) {
  return rk_op1(c, RK_OP_EXP,
                rk_op1(c, RK_OP_MINUS, rk_op2(c, RK_OP_SQDIST, x, y, e), e), e);
}

static int ct_hashcons(ct *t) {
  rk_error e;
  rk_err_clear(&e);
  rk_ctx *c = rk_ctx_new();
  CT_CHECK(t, c != NULL);
  const rk_node *x = rk_var(c, 0, 3, RK_CAT_I, &e);
  const rk_node *y = rk_var(c, 1, 3, RK_CAT_J, &e);
  const rk_node *x2 = rk_var(c, 0, 3, RK_CAT_I, &e);
  int ok = x != NULL && y != NULL && x == x2;
  const rk_node *a = ok ? gauss(c, x, y, &e) : NULL;
  int before = rk_ctx_nnodes(c);
  const rk_node *b = a ? gauss(c, x, y, &e) : NULL;
  int after = rk_ctx_nnodes(c);
  const rk_node *d = b ? gauss(c, y, x, &e) : NULL;
  /* -0.0 and 0.0 are different constants; NaN is equal to itself */
  const rk_node *pz = rk_cst(c, 0.0), *nz = rk_cst(c, -0.0);
  const rk_node *n1 = rk_cst(c, NAN), *n2 = rk_cst(c, NAN);
  /* integer parameters are part of the identity */
  const rk_node *e1 = rk_op1i(c, RK_OP_ELEM, x, 1, 0, &e);
  const rk_node *e1b = rk_op1i(c, RK_OP_ELEM, x, 1, 0, &e);
  const rk_node *e2 = rk_op1i(c, RK_OP_ELEM, x, 2, 0, &e);
  /* past the first table growth (256 buckets): 2000 distinct nodes, each
     found again after the table grew */
  const rk_node *chain[2000];
  const rk_node *s = x;
  for (int k = 0; k < 2000 && s; k++)
    chain[k] = s = rk_op2(c, RK_OP_ADD, s, x, &e);
  int same = s != NULL;
  s = x;
  for (int k = 0; k < 2000 && same; k++) {
    s = rk_op2(c, RK_OP_ADD, s, x, &e);
    same = s == chain[k];
  }
  rk_ctx_free(c);
  CT_CHECK(t, ok);
  CT_CHECK(t, a != NULL && a == b);
  CT_CHECK(t, before == after);
  CT_CHECK(t, d != NULL && d != a);
  CT_CHECK(t, pz != nz);
  CT_CHECK(t, n1 == n2);
  CT_CHECK(t, e1 != NULL && e1 == e1b && e2 != NULL && e1 != e2);
  CT_CHECK(t, same);
  return 1;
}

/* ---- the arena (rk.c)
 * -------------------------------------------------------- */

static int ct_arena(ct *t) {
  rk_arena *a = rk_arena_new();
  CT_CHECK(t, a != NULL);
  const size_t al = _Alignof(max_align_t); /* what malloc guarantees */
  int aligned = 1, zeroed = 1, distinct = 1;
  unsigned char *prev = NULL;
  size_t total = 0;
  /* many small blocks of odd sizes: more than several chunks' worth */
  for (int k = 0; k < 20000; k++) {
    size_t n = 1 + (size_t)(k * 7 % 61);
    unsigned char *p = rk_arena_alloc(a, n);
    if (p == NULL) {
      rk_arena_free(a);
      return ct_fail(t, "allocation %d of %zu bytes failed", k, n);
    }
    aligned &= ((uintptr_t)p % al) == 0;
    for (size_t i = 0; i < n; i++)
      zeroed &= p[i] == 0;
    distinct &= p != prev;
    memset(p, 0xab, n); /* a write past a block would show as non-zero */
    prev = p;
    total += n;
  }
  /* a block larger than a chunk, then small blocks again */
  unsigned char *big = rk_arena_alloc(a, 1 << 20);
  int bigok = big != NULL && ((uintptr_t)big % al) == 0;
  for (size_t i = 0; bigok && i < (1 << 20); i += 4099)
    bigok = big[i] == 0;
  if (big)
    memset(big, 0xcd, 1 << 20);
  unsigned char *after = rk_arena_alloc(a, 24);
  int afterok = after != NULL && ((uintptr_t)after % al) == 0;
  for (int i = 0; afterok && i < 24; i++)
    afterok = after[i] == 0;
  char *s = rk_arena_strdup(a, "rkeops arena");
  int strok = s != NULL && strcmp(s, "rkeops arena") == 0;
  void *huge = rk_arena_alloc(a, (size_t)-1 - 8); /* refused, not wrapped */
  void *none = rk_arena_alloc(NULL, 8);
  rk_arena_free(a);
  CT_CHECK(t, aligned);
  CT_CHECK(t, zeroed);
  CT_CHECK(t, distinct && total > 3 * 65536);
  CT_CHECK(t, bigok);
  CT_CHECK(t, afterok);
  CT_CHECK(t, strok);
  CT_CHECK(t, huge == NULL);
  CT_CHECK(t, none == NULL);
  return 1;
}

/* ---- the cache trailer (be-cache.c)
 * -------------------------------------------- */

static int write_file(const char *path, const char *s, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return 0;
  int ok = fwrite(s, 1, n, f) == n;
  return fclose(f) == 0 && ok && chmod(path, 0600) == 0;
}

/* flip one byte at offset off (from the end when off < 0) */
static int flip_byte(const char *path, long off) {
  FILE *f = fopen(path, "r+b");
  if (f == NULL)
    return 0;
  int ok = fseek(f, off, off < 0 ? SEEK_END : SEEK_SET) == 0;
  int ch = ok ? fgetc(f) : EOF;
  ok = ch != EOF && fseek(f, -1, SEEK_CUR) == 0 &&
       fputc((unsigned char)ch ^ 0x20, f) != EOF;
  return fclose(f) == 0 && ok;
}

static int ct_cache_trailer_run(ct *t, const char *dir, const char *path) {
  static const char content[] = "int rk_kernel(void) { return 42; }\n";
  const char *key = "cpu|64|Sum_Reduction(Var(0,3,0),1)|test";
  rk_error e;
  rk_err_clear(&e);
  CT_CHECK(t, write_file(path, content, sizeof content - 1));
  CT_CHECK(t, rk_cache_verify(path, key) == 0); /* not sealed yet */
  CT_CHECK(t, rk_cache_seal(path, key, &e) == RK_OK);
  CT_CHECK(t, rk_cache_verify(path, key) == 1);
  CT_CHECK(t, rk_cache_verify(path, "cpu|64|another key") == 0);
  /* the content is intact in front of the trailer */
  FILE *f = fopen(path, "rb");
  char head[sizeof content] = {0};
  int headok = f && fread(head, 1, sizeof content - 1, f) == sizeof content - 1;
  if (f)
    fclose(f);
  CT_CHECK(t, headok && memcmp(head, content, sizeof content - 1) == 0);
  /* one flipped bit in the content, in the key, in the checksum */
  CT_CHECK(t, flip_byte(path, 3) && rk_cache_verify(path, key) == 0);
  CT_CHECK(t, flip_byte(path, 3) && rk_cache_verify(path, key) == 1);
  CT_CHECK(t, flip_byte(path, (long)sizeof content + 4) &&
                  rk_cache_verify(path, key) == 0);
  CT_CHECK(t, flip_byte(path, (long)sizeof content + 4) &&
                  rk_cache_verify(path, key) == 1);
  CT_CHECK(t, flip_byte(path, -1) && rk_cache_verify(path, key) == 0);
  CT_CHECK(t, flip_byte(path, -1) && rk_cache_verify(path, key) == 1);
  /* writable by others: never loaded */
  CT_CHECK(t, chmod(path, 0666) == 0 && rk_cache_verify(path, key) == 0);
  CT_CHECK(t, chmod(path, 0600) == 0 && rk_cache_verify(path, key) == 1);
  /* truncated by one byte */
  struct stat st;
  CT_CHECK(t, stat(path, &st) == 0 && truncate(path, st.st_size - 1) == 0);
  CT_CHECK(t, rk_cache_verify(path, key) == 0);
  /* a missing file */
  CT_CHECK(t, unlink(path) == 0 && rk_cache_verify(path, key) == 0);
  (void)dir;
  return 1;
}

static int ct_cache_trailer(ct *t) {
  char dir[4096], path[4200];
  snprintf(dir, sizeof dir, "%s/rk-ctest-XXXXXX",
           t->tmpdir && t->tmpdir[0] ? t->tmpdir : "/tmp");
  if (mkdtemp(dir) == NULL) /* mode 0700 */
    return ct_fail(t, "cannot create a directory under %s", t->tmpdir);
  snprintf(path, sizeof path, "%s/kernel.c", dir);
  int ok = ct_cache_trailer_run(t, dir, path);
  unlink(path);
  rmdir(dir);
  return ok;
}

/* ---- canonical text is parser input (ir-format.c, parse.c)
 * ---------------------- */

static int ct_canonical_roundtrip(ct *t) {
  static const char *const formulas[] = {
      "Sum_Reduction(Exp(-SqDist(x, y) * Cst(0.5)) * b, 1)",
      "ArgKMin_Reduction(WeightedSqDist(s, x, y), 3, 0)",
      "SumSoftMaxWeight_Reduction(-(x|y) + Elem(x, 2), b, 1)",
      "Max_ArgMax_Reduction(Concat(Extract(x, 1, 2), Round(Elem(y, 0), 2)), 1)",
      "Sum_Reduction(Grad(Exp(-SqNorm2(x - y)), x, Elem(b, 0)), 1)",
  };
  static const char *const args[] = {"x=Vi(3)", "y=Vj(3)", "b=Vj(2)",
                                     "s=Pm(1)"};
  for (size_t k = 0; k < sizeof formulas / sizeof formulas[0]; k++) {
    rk_formula *f = NULL, *g = NULL;
    rk_error e;
    if (rk_formula_parse(formulas[k], args, 4, RK_SCHEME_AUTO, &f, &e) != RK_OK)
      return ct_fail(t, "%s: %s", formulas[k], e.msg);
    const char *c1 = rk_formula_canonical(f);
    int code = rk_formula_parse(c1, args, 4, RK_SCHEME_AUTO, &g, &e);
    int same = code == RK_OK && strcmp(c1, rk_formula_canonical(g)) == 0 &&
               strcmp(f->key, g->key) == 0;
    if (!same)
      ct_fail(t, "%s: the canonical text %s %s", formulas[k], c1,
              code == RK_OK ? "reparses to different text" : e.msg);
    rk_formula_free(f);
    rk_formula_free(g);
    if (!same)
      return 0;
  }
  return 1;
}

/* ---- UTF-8 cuts (rk.c)
 * ------------------------------------------------------------ */

/* s[0..n) is well-formed UTF-8 (no sequence cut short) */
static int utf8_whole(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80    ? 1
                 : c >= 0xF0 ? 4
                 : c >= 0xE0 ? 3
                 : c >= 0xC0 ? 2
                             : 0;
    if (len == 0 || i + len > n)
      return 0;
    for (size_t k = 1; k < len; k++)
      if (((unsigned char)s[i + k] & 0xC0) != 0x80)
        return 0;
    i += len;
  }
  return 1;
}

static int ct_utf8_cut(ct *t) {
  /* a, e-acute (2 bytes), euro sign (3), G clef (4), b */
  static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e"
                          "b";
  static const int bound[] = {0, 1, 3, 6, 10, 11}; /* character boundaries */
  int len = (int)strlen(s);
  for (int max = 0; max <= len + 2; max++) {
    int n = rk_utf8_prefix(s, max), want = 0;
    for (size_t k = 0; k < sizeof bound / sizeof bound[0]; k++)
      if (bound[k] <= max)
        want = bound[k];
    if (n != want)
      return ct_fail(t, "rk_utf8_prefix(s, %d) = %d, not %d", max, n, want);
    char buf[16];
    memcpy(buf, s, (size_t)(max < len ? max : len));
    buf[max < len ? max : len] = '\0';
    size_t m = rk_utf8_trim_end(buf);
    if ((int)m != want || !utf8_whole(buf, m))
      return ct_fail(t, "rk_utf8_trim_end of %d bytes gave %zu, not %d",
                     max < len ? max : len, m, want);
  }
  /* rk_err filling its buffer with 2-byte characters after one byte */
  rk_error e;
  rk_err_clear(&e);
  char big[5000];
  big[0] = 'x';
  for (int i = 1; i + 1 < (int)sizeof big; i += 2) {
    big[i] = (char)0xc3;
    big[i + 1] = (char)0xa9;
  }
  big[sizeof big - 1] = '\0';
  rk_err(&e, RK_EPARSE, -1, "%s", big);
  CT_CHECK(t, utf8_whole(e.msg, strlen(e.msg)));
  CT_CHECK(t, strlen(e.msg) >= sizeof e.msg - 2);
  return 1;
}

/* ---- gradient plans (red-unit.h, formula-grad.c)
 * ------------------------------------------------------- */

/* a unit has a gradient plan exactly for the DIFF reductions of red.def;
   each plan is valid parser input once its new inputs are declared, names
   the forward reductions, and leaves the planned formula's context alone */
static int ct_grad_plans(ct *t) {
  for (int r = 0; r < RK_RED__COUNT; r++) {
    const rk_red_unit *u = rk_red_unit_of(r);
    CT_CHECK(t, u != NULL);
    if ((rk_reds[r].diff != 0) != (u->grad != NULL))
      return ct_fail(t, "%s: DIFF is %d but its unit %s a gradient plan",
                     rk_reds[r].name, rk_reds[r].diff,
                     u->grad ? "has" : "has no");
  }
  static const struct {
    const char *formula;
    int nfwd;
    const char *fwd0; /* NULL: the reduction itself */
  } cases[] = {
      {"Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)", 0, NULL},
      {"LogSumExp_Reduction(-SqDist(x, y) * s, 0)", 1, NULL},
      {"LogSumExpWeight_Reduction(-SqDist(x, y), b, 1)", 1, NULL},
      {"SumSoftMaxWeight_Reduction(-SqDist(x, y), b, 1)", 2,
       "LogSumExp_Reduction(Minus(SqDist(Var(0,3,0),Var(1,3,1))),1)"},
  };
  static const char *const args[] = {"x=Vi(3)", "y=Vj(3)", "b=Vj(2)", "s=Pm(1)",
                                     "unused=Vi(4)"};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    rk_formula *f = NULL;
    rk_error e;
    if (rk_formula_parse(cases[k].formula, args, 5, RK_SCHEME_AUTO, &f, &e) !=
        RK_OK)
      return ct_fail(t, "%s: %s", cases[k].formula, e.msg);
    int n0 = rk_ctx_nnodes(f->ctx), ok = 1;
    for (int pos = 0; pos < 5 && ok; pos++) {
      rk_grad_plan p;
      if (rk_formula_grad_plan(f, pos, 0, &p, &e) != RK_OK) {
        ok = ct_fail(t, "%s, var %d: %s", cases[k].formula, pos, e.msg);
        break;
      }
      /* the gradient formula parses with eta and the forward outputs */
      char d[3][64];
      const char *all[8];
      int na = 0;
      for (int i = 0; i < 5; i++)
        all[na++] = args[i];
      snprintf(d[0], sizeof d[0], "eta=%s(%d,%d)", rk_cat_names[p.eta_cat],
               p.eta_pos, p.eta_dim);
      all[na++] = d[0];
      for (int i = 0; i < p.nfwd; i++) {
        snprintf(d[1 + i], sizeof d[1], "fwd%d=%s(%d,%d)", i,
                 rk_cat_names[p.fwd_cat[i]], p.fwd_pos[i], p.fwd_dim[i]);
        all[na++] = d[1 + i];
      }
      rk_formula *g = NULL;
      if (rk_formula_parse(p.formula, all, na, RK_SCHEME_AUTO, &g, &e) != RK_OK)
        ok = ct_fail(t, "%s, var %d: the plan %s does not parse: %s",
                     cases[k].formula, pos, p.formula, e.msg);
      else if (g->red != RK_RED_SUM || g->outdim != f->vars[pos].dim ||
               p.eta_pos != 5 || p.eta_dim != f->outdim ||
               p.nfwd != cases[k].nfwd ||
               (p.nfwd > 0 &&
                (cases[k].fwd0 == NULL) != (p.fwd_formula[0] == NULL)) ||
               (cases[k].fwd0 != NULL &&
                strcmp(cases[k].fwd0, p.fwd_formula[0]) != 0) ||
               (p.nfwd == 2 && p.fwd_formula[1] != NULL))
        ok = ct_fail(t, "%s, var %d: unexpected plan %s (%d forward)",
                     cases[k].formula, pos, p.formula, p.nfwd);
      /* the output index: the variable's own, the output's for a parameter */
      else if (p.axis != (f->vars[pos].cat == RK_CAT_P   ? f->axis
                          : f->vars[pos].cat == RK_CAT_I ? 1
                                                         : 0))
        ok = ct_fail(t, "%s, var %d: gradient over axis %d", cases[k].formula,
                     pos, p.axis);
      rk_formula_free(g);
      rk_grad_plan_free(&p);
    }
    if (ok && rk_ctx_nnodes(f->ctx) != n0)
      ok =
          ct_fail(t, "%s: planning grew the formula's context (%d -> %d nodes)",
                  cases[k].formula, n0, rk_ctx_nnodes(f->ctx));
    rk_formula_free(f);
    if (!ok)
      return 0;
  }
  /* no plan for a reduction that selects points */
  rk_formula *f = NULL;
  rk_error e;
  rk_grad_plan p;
  CT_CHECK(t, rk_formula_parse("ArgKMin_Reduction(SqDist(x, y), 3, 1)", args, 5,
                               RK_SCHEME_AUTO, &f, &e) == RK_OK);
  int code = rk_formula_grad_plan(f, 0, 0, &p, &e);
  rk_formula_free(f);
  CT_CHECK(t, code == RK_EOP && p.formula == NULL);
  return 1;
}

/* ---- the table
 * ------------------------------------------------------------------- */

static const struct {
  const char *name;
  int (*fn)(ct *t);
} rk_ctests[] = {
    {"hashcons_identity", ct_hashcons},
    {"arena_alloc_align_grow", ct_arena},
    {"cache_trailer_seal_verify_tamper", ct_cache_trailer},
    {"canonical_text_roundtrip", ct_canonical_roundtrip},
    {"utf8_cut_on_character_boundary", ct_utf8_cut},
    {"reduction_unit_gradient_plans", ct_grad_plans},
};

int rk_ctest_count(void) {
  return (int)(sizeof rk_ctests / sizeof rk_ctests[0]);
}

const char *rk_ctest_name(int i) {
  return i >= 0 && i < rk_ctest_count() ? rk_ctests[i].name : NULL;
}

int rk_ctest_run(const char *name, const char *tmpdir, char *msg, size_t n) {
  ct t = {msg, n, tmpdir};
  if (n > 0)
    msg[0] = '\0';
  for (int i = 0; i < rk_ctest_count(); i++)
    if (strcmp(rk_ctests[i].name, name) == 0) {
      int ok = rk_ctests[i].fn(&t);
      if (ok && n > 0)
        snprintf(msg, n, "ok");
      return ok;
    }
  if (n > 0)
    snprintf(msg, n, "no C test called '%s'", name);
  return -1;
}
