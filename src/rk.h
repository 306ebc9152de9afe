/*
 * rk.h -- internal helpers shared by every module of the C core.
 * No R headers here or in any file but ffi-*.c and init.c.
 */
#ifndef RK_H
#define RK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "../inst/include/rkeops.h"

#define RK_VERSION_STRING "0.1.0" /* keep in sync with DESCRIPTION */

/* ---- errors: fill an rk_error and return its code --------------------
 * One formatter (rk_vformat: printf into a bounded buffer, cut on a
 * character boundary) behind every message: rk_err / rk_verr here, and
 * rk_err_at (lex.c) for an error at a position of the formula, which adds
 * the source and the caret (drawn in one place, rk_err_show).  Module
 * wrappers only add a prefix or a field (the argument number). */
#include <stdarg.h>
void rk_vformat(char *buf, size_t size, const char *fmt, va_list ap);
int rk_verr(rk_error *e, int code, int pos, const char *fmt, va_list ap);
int rk_err(rk_error *e, int code, int pos, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void rk_err_clear(rk_error *e);

/* ---- UTF-8: cutting text without splitting a character ------------------
 * Messages quote user text (declarations, names) and are bounded by fixed
 * buffers; a cut must fall on a character boundary, or R receives an
 * invalid string. */
/* the largest n <= max (and <= strlen(s)) such that s[0..n) ends on a
   character boundary: printf("%.*s", rk_utf8_prefix(s, 200), s) */
int rk_utf8_prefix(const char *s, int max);
/* drop a truncated multi-byte sequence at the end of s (after a
   vsnprintf that filled its buffer); returns the new length */
size_t rk_utf8_trim_end(char *s);

/* ---- growable string buffer ------------------------------------------ */
typedef struct rk_buf {
  char *s;    /* always NUL-terminated once anything was appended */
  size_t len; /* bytes used, without the NUL                       */
  size_t cap;
  int oom; /* set when an allocation failed; later appends no-ops */
} rk_buf;

void rk_buf_init(rk_buf *b);
void rk_buf_free(rk_buf *b);
void rk_buf_puts(rk_buf *b, const char *s);
void rk_buf_putc(rk_buf *b, char c);
void rk_buf_printf(rk_buf *b, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void rk_buf_vprintf(rk_buf *b, const char *fmt, va_list ap);
/* take ownership of the string (caller frees); buffer is reset */
char *rk_buf_take(rk_buf *b);

/* ---- hashing ----------------------------------------------------------- */
uint64_t rk_hash_bytes(const void *p, size_t n, uint64_t seed);
uint64_t rk_hash_str(const char *s);
/* 32 hex characters (two independent 64-bit hashes) + NUL into out[33] */
void rk_hash_hex(const char *s, char out[33]);

/* ---- arena: one per compile, freed at once ----------------------------- */
typedef struct rk_arena rk_arena;
rk_arena *rk_arena_new(void);
void rk_arena_free(rk_arena *a);
void *rk_arena_alloc(rk_arena *a, size_t n); /* zeroed; NULL when OOM */
char *rk_arena_strdup(rk_arena *a, const char *s);
/* bytes handed out so far (tests: scratch must not grow a formula's arena) */
size_t rk_arena_used(const rk_arena *a);

/* ---- verbose messages ------------------------------------------------- */
/* when o->verbose, format a message and hand it to o->message; the engine
   never writes to stdout/stderr itself (no callback: the message is dropped) */
void rk_say(const rk_options *o, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- misc -------------------------------------------------------------- */
/* number of processors available to this process */
int rk_ncpu(void);
/* seconds on a monotonic clock (differences only) */
double rk_now(void);

#endif /* RK_H */
