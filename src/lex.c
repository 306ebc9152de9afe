/*
 * lex.c -- the tokenizer of formulas and argument declarations, and the
 * caret display of errors.
 */
#include "parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- error display ---------------------------------------------------------
 */

#define RK_SHOW_MAX  72 /* longer sources are shown as a window */
#define RK_SHOW_HALF 34

static int rk_is_cont(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

void rk_err_show(rk_error *e, const char *src, int pos) {
  if (e == NULL || src == NULL)
    return;
  if (strlen(e->msg) > sizeof e->msg - 256) { /* room for the display */
    e->msg[sizeof e->msg - 256] = '\0';
    rk_utf8_trim_end(e->msg);
  }
  int len = (int)strlen(src);
  if (pos < 0)
    pos = 0;
  if (pos > len)
    pos = len;
  e->pos = pos;
  int start = 0, end = len;
  if (len > RK_SHOW_MAX) {
    start = pos - RK_SHOW_HALF;
    if (start < 0)
      start = 0;
    end = start + 2 * RK_SHOW_HALF;
    if (end > len) {
      end = len;
      start = end - 2 * RK_SHOW_HALF;
    }
    while (start > 0 && start < len && rk_is_cont((unsigned char)src[start]))
      start--;
    while (end < len && rk_is_cont((unsigned char)src[end]))
      end++;
  }
  rk_buf b;
  rk_buf_init(&b);
  rk_buf_puts(&b, "\n  ");
  int col = 0;
  if (start > 0) {
    rk_buf_puts(&b, "...");
    col = 3;
  }
  int caret = -1;
  for (int i = start; i < end; i++) {
    unsigned char c = (unsigned char)src[i];
    if (i == pos)
      caret = col;
    if (rk_is_cont(c))
      continue; /* one '?' per multi-byte character */
    rk_buf_putc(&b, c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : (char)c);
    col++;
  }
  if (caret < 0)
    caret = col;
  if (end < len)
    rk_buf_puts(&b, "...");
  rk_buf_puts(&b, "\n  ");
  for (int i = 0; i < caret; i++)
    rk_buf_putc(&b, ' ');
  rk_buf_putc(&b, '^');
  if (b.s != NULL) {
    size_t have = strlen(e->msg);
    if (have + b.len < sizeof e->msg)
      memcpy(e->msg + have, b.s, b.len + 1);
  }
  rk_buf_free(&b);
}

int rk_verr_at(rk_error *e, int code, const char *src, int pos, const char *fmt,
               va_list ap) {
  if (e == NULL)
    return code;
  rk_verr(e, code, pos, fmt, ap);
  rk_err_show(e, src, pos);
  return code;
}

int rk_err_at(rk_error *e, int code, const char *src, int pos, const char *fmt,
              ...) {
  va_list ap;
  va_start(ap, fmt);
  rk_verr_at(e, code, src, pos, fmt, ap);
  va_end(ap);
  return code;
}

/* ---- tokens
 * ------------------------------------------------------------------- */

static int rk_is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int rk_is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* a number: digits [. digits] [e [+-] digits], or . digits ... */
static int rk_lex_number(const char *s, int p, rk_token *t, rk_error *e,
                         const char *src) {
  int q = p, isint = 1;
  while (rk_is_digit(s[q]))
    q++;
  if (s[q] == '.') {
    isint = 0;
    q++;
    while (rk_is_digit(s[q]))
      q++;
  }
  if ((s[q] == 'e' || s[q] == 'E') &&
      (rk_is_digit(s[q + 1]) ||
       ((s[q + 1] == '+' || s[q + 1] == '-') && rk_is_digit(s[q + 2])))) {
    isint = 0;
    q += 2;
    while (rk_is_digit(s[q]))
      q++;
  }
  if (rk_is_alpha(s[q]))
    return rk_err_at(e, RK_EPARSE, src, q, "unexpected '%c' in a number", s[q]);
  char tmp[64];
  int n = q - p;
  if (n >= (int)sizeof tmp)
    return rk_err_at(e, RK_EPARSE, src, p, "number too long");
  memcpy(tmp, s + p, (size_t)n);
  tmp[n] = '\0';
  t->val = strtod(tmp, NULL);
  if (!isfinite(t->val))
    return rk_err_at(e, RK_EPARSE, src, p, "number %s is out of range", tmp);
  t->isint = isint;
  t->len = n;
  return RK_OK;
}

int rk_lex(const char *src, rk_token **toks, int *ntoks, rk_error *e) {
  int cap = 64, n = 0, p = 0;
  rk_token *t = malloc((size_t)cap * sizeof *t);
  *toks = NULL;
  *ntoks = 0;
  if (t == NULL)
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  for (;;) {
    if (n == cap) {
      cap *= 2;
      rk_token *t2 = realloc(t, (size_t)cap * sizeof *t);
      if (t2 == NULL) {
        free(t);
        return rk_err(e, RK_ENOMEM, -1, "out of memory");
      }
      t = t2;
    }
    while (src[p] == ' ' || src[p] == '\t' || src[p] == '\n' || src[p] == '\r')
      p++;
    rk_token *k = &t[n];
    memset(k, 0, sizeof *k);
    k->pos = p;
    char c = src[p];
    if (c == '\0') {
      k->kind = RK_TK_EOF;
      n++;
      break;
    }
    if (rk_is_alpha(c)) {
      int q = p;
      while (rk_is_alpha(src[q]) || rk_is_digit(src[q]))
        q++;
      k->kind = RK_TK_IDENT;
      k->len = q - p;
    } else if (rk_is_digit(c) || (c == '.' && rk_is_digit(src[p + 1]))) {
      k->kind = RK_TK_NUM;
      if (rk_lex_number(src, p, k, e, src) != RK_OK) {
        free(t);
        return e ? e->code : RK_EPARSE;
      }
    } else if (strchr("()+-*/|,=", c)) {
      k->kind = RK_TK_PUNCT;
      k->ch = c;
      k->len = 1;
    } else {
      unsigned char u = (unsigned char)c;
      if (u >= 0x80)
        rk_err_at(e, RK_EPARSE, src, p,
                  "unexpected non-ASCII character (byte 0x%02x)", u);
      else if (u < 0x20 || u == 0x7f)
        rk_err_at(e, RK_EPARSE, src, p,
                  "unexpected control character (byte 0x%02x)", u);
      else
        rk_err_at(e, RK_EPARSE, src, p, "unexpected character '%c'", c);
      free(t);
      return RK_EPARSE;
    }
    p += k->len;
    n++;
  }
  *toks = t;
  *ntoks = n;
  return RK_OK;
}
