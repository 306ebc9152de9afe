/*
 * rk.c -- small helpers shared by every module: errors, growable string
 * buffers, hashing, the per-compile arena, processor count, monotonic clock.
 */
#define _GNU_SOURCE
#include "rk.h"

#include <sched.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------ */

void rk_vformat(char *buf, size_t size, const char *fmt, va_list ap) {
  if (buf == NULL || size == 0)
    return;
  int n = vsnprintf(buf, size, fmt, ap);
  if (n < 0)
    buf[0] = '\0';
  else if ((size_t)n >= size)
    rk_utf8_trim_end(buf); /* cut on a character boundary */
}

int rk_verr(rk_error *e, int code, int pos, const char *fmt, va_list ap) {
  if (e == NULL)
    return code;
  e->code = code;
  e->pos = pos;
  rk_vformat(e->msg, sizeof e->msg, fmt, ap);
  return code;
}

int rk_err(rk_error *e, int code, int pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rk_verr(e, code, pos, fmt, ap);
  va_end(ap);
  return code;
}

void rk_err_clear(rk_error *e) {
  if (e == NULL)
    return;
  e->code = RK_OK;
  e->pos = -1;
  e->arg = -1;
  e->msg[0] = '\0';
  e->log[0] = '\0';
  e->path[0] = '\0';
}

/* ---- UTF-8 ----------------------------------------------------------------
 */

static int rk_utf8_cont(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

int rk_utf8_prefix(const char *s, int max) {
  if (s == NULL || max <= 0)
    return 0;
  int n = 0;
  while (n < max && s[n] != '\0')
    n++;
  if (s[n] == '\0')
    return n; /* the whole string */
  /* s[n] is the first byte left out: back up to the start of its
     character when it continues one */
  while (n > 0 && rk_utf8_cont((unsigned char)s[n]))
    n--;
  return n;
}

size_t rk_utf8_trim_end(char *s) {
  size_t len = strlen(s), k = len, ncont = 0;
  while (k > 0 && ncont < 4 && rk_utf8_cont((unsigned char)s[k - 1])) {
    k--;
    ncont++;
  }
  if (k == 0)
    return len; /* only continuation bytes: not ours to judge */
  unsigned char lead = (unsigned char)s[k - 1];
  size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  if (want > 1 && ncont + 1 < want) { /* the sequence was cut */
    s[k - 1] = '\0';
    return k - 1;
  }
  return len;
}

const char *rk_code_name(int code) {
  /* by enum rk_code: each name at its own code, and one per code */
  static const char *const names[] = {[RK_OK] = "RK_OK",
                                      [RK_EPARSE] = "RK_EPARSE",
                                      [RK_EDIM] = "RK_EDIM",
                                      [RK_EINPUT] = "RK_EINPUT",
                                      [RK_EVAR] = "RK_EVAR",
                                      [RK_EOP] = "RK_EOP",
                                      [RK_EVALUE] = "RK_EVALUE",
                                      [RK_ECOMPILE] = "RK_ECOMPILE",
                                      [RK_ECUDA] = "RK_ECUDA",
                                      [RK_ECACHE] = "RK_ECACHE",
                                      [RK_ENOMEM] = "RK_ENOMEM",
                                      [RK_EINTERRUPT] = "RK_EINTERRUPT",
                                      [RK_EUNSUPPORTED] = "RK_EUNSUPPORTED",
                                      [RK_EINTERNAL] = "RK_EINTERNAL"};
  _Static_assert(sizeof names / sizeof names[0] == RK_EINTERNAL + 1,
                 "rk_code_name needs one name per enum rk_code");
  if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
    return "RK_EUNKNOWN";
  return names[code];
}

/* ---- growable string buffer -------------------------------------------- */

void rk_buf_init(rk_buf *b) {
  b->s = NULL;
  b->len = 0;
  b->cap = 0;
  b->oom = 0;
}

void rk_buf_free(rk_buf *b) {
  free(b->s);
  rk_buf_init(b);
}

/* make room for n more bytes plus the NUL; 0 on failure */
static int rk_buf_reserve(rk_buf *b, size_t n) {
  if (b->oom)
    return 0;
  if (b->len + n + 1 <= b->cap)
    return 1;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + n + 1) {
    if (cap > ((size_t)-1) / 2) {
      b->oom = 1;
      return 0;
    }
    cap *= 2;
  }
  char *s = realloc(b->s, cap);
  if (s == NULL) {
    b->oom = 1;
    return 0;
  }
  b->s = s;
  b->cap = cap;
  return 1;
}

void rk_buf_puts(rk_buf *b, const char *s) {
  size_t n = strlen(s);
  if (!rk_buf_reserve(b, n))
    return;
  memcpy(b->s + b->len, s, n + 1);
  b->len += n;
}

void rk_buf_putc(rk_buf *b, char c) {
  if (!rk_buf_reserve(b, 1))
    return;
  b->s[b->len++] = c;
  b->s[b->len] = '\0';
}

void rk_buf_vprintf(rk_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0 || !rk_buf_reserve(b, (size_t)n))
    return;
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void rk_buf_printf(rk_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rk_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

char *rk_buf_take(rk_buf *b) {
  char *s = b->s;
  if (s == NULL && !b->oom) {
    s = malloc(1);
    if (s)
      s[0] = '\0';
  }
  if (b->oom) {
    free(s);
    s = NULL;
  }
  rk_buf_init(b);
  return s;
}

/* ---- hashing: FNV-1a, 64 bits, with a final avalanche ------------------ */

#define RK_FNV_OFFSET 0xcbf29ce484222325ULL
#define RK_FNV_PRIME  0x100000001b3ULL

static uint64_t rk_hash_mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

uint64_t rk_hash_bytes(const void *p, size_t n, uint64_t seed) {
  const unsigned char *s = p;
  uint64_t h = RK_FNV_OFFSET ^ rk_hash_mix(seed);
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= RK_FNV_PRIME;
  }
  return rk_hash_mix(h ^ n);
}

uint64_t rk_hash_str(const char *s) {
  return rk_hash_bytes(s, strlen(s), 0);
}

void rk_hash_hex(const char *s, char out[33]) {
  size_t n = strlen(s);
  uint64_t h1 = rk_hash_bytes(s, n, 0x6b656f7073ULL);   /* "keops" */
  uint64_t h2 = rk_hash_bytes(s, n, 0x726b656f7073ULL); /* "rkeops" */
  snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1,
           (unsigned long long)h2);
}

/* ---- arena: a list of chunks, bump allocation, everything zeroed ------- */

#define RK_ARENA_CHUNK 65536

typedef struct rk_chunk {
  struct rk_chunk *prev;
  size_t used, cap;
  max_align_t data[]; /* aligned storage */
} rk_chunk;

struct rk_arena {
  rk_chunk *head;
};

rk_arena *rk_arena_new(void) {
  return calloc(1, sizeof(rk_arena));
}

void rk_arena_free(rk_arena *a) {
  if (a == NULL)
    return;
  rk_chunk *c = a->head;
  while (c) {
    rk_chunk *p = c->prev;
    free(c);
    c = p;
  }
  free(a);
}

void *rk_arena_alloc(rk_arena *a, size_t n) {
  const size_t al = sizeof(max_align_t);
  if (a == NULL)
    return NULL;
  if (n == 0)
    n = 1;
  if (n > ((size_t)-1) - 2 * al - sizeof(rk_chunk))
    return NULL;
  n = (n + al - 1) / al * al;
  rk_chunk *c = a->head;
  if (c == NULL || c->cap - c->used < n) {
    size_t cap = n > RK_ARENA_CHUNK ? n : RK_ARENA_CHUNK;
    c = calloc(1, sizeof(rk_chunk) + cap);
    if (c == NULL)
      return NULL;
    c->cap = cap;
    if (a->head && cap > RK_ARENA_CHUNK) {
      /* a big block: keep using the current chunk for small ones */
      c->prev = a->head->prev;
      a->head->prev = c;
      c->used = n;
      return (char *)c->data;
    }
    c->prev = a->head;
    a->head = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

size_t rk_arena_used(const rk_arena *a) {
  size_t n = 0;
  for (const rk_chunk *c = a ? a->head : NULL; c; c = c->prev)
    n += c->used;
  return n;
}

char *rk_arena_strdup(rk_arena *a, const char *s) {
  size_t n = strlen(s);
  char *p = rk_arena_alloc(a, n + 1);
  if (p)
    memcpy(p, s, n + 1);
  return p;
}

/* ---- clock ----------------------------------------------------------------
 */

double rk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- processors ---------------------------------------------------------- */

int rk_ncpu(void) {
#ifdef CPU_COUNT
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n >= 1)
      return n;
  }
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n >= 1 ? (int)n : 1;
}

void rk_say(const rk_options *o, const char *fmt, ...) {
  if (!o || !o->verbose || !o->message)
    return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  if (vsnprintf(msg, sizeof msg, fmt, ap) >= (int)sizeof msg)
    rk_utf8_trim_end(msg);
  va_end(ap);
  o->message(o->message_data, msg);
}
