/*
 * be-cache.c -- the kernel cache: loaded kernels in memory for the
 * session, compiled files on disk across sessions.
 *
 * Disk file layout: <content><trailer>, the trailer being
 *   "RKEOPSC1" | full key (klen bytes) | klen | content length | checksum
 * (three little-endian uint64 at the very end; the checksum covers every
 * byte before it).  ELF loaders ignore bytes after the sections, so a
 * sealed shared object stays loadable.  A file is trusted only when it is
 * a regular file (not a link) owned by the user, not writable by group or
 * others, in a directory with the same properties, with a valid trailer
 * naming the expected key.
 */
#define _GNU_SOURCE
#include "be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RK_MAGIC     "RKEOPSC1"
#define RK_MAGIC_LEN 8
#define RK_TAIL_LEN  24 /* klen, content length, checksum */
#define RK_MAX_FILE  ((size_t)1 << 30)

static int64_t n_compiles, n_disk_loads;

int64_t rk_stat_compiles(void) {
  return n_compiles;
}
int64_t rk_stat_disk_loads(void) {
  return n_disk_loads;
}
void rk_cache_count_compile(void) {
  n_compiles++;
}
void rk_cache_count_disk_load(void) {
  n_disk_loads++;
}

/* ---- memory: chained hash table, key -> kernel ------------------------ */

typedef struct rk_entry {
  struct rk_entry *next;
  uint64_t hash;
  rk_kernel *k;
} rk_entry;

static rk_entry **tab;
static size_t tab_size, tab_count;

rk_kernel *rk_memcache_find(const char *key) {
  if (tab == NULL || key == NULL)
    return NULL;
  uint64_t h = rk_hash_str(key);
  for (rk_entry *p = tab[h & (tab_size - 1)]; p; p = p->next)
    if (p->hash == h && strcmp(p->k->key, key) == 0)
      return p->k;
  return NULL;
}

static int memcache_grow(void) {
  size_t n = tab_size ? tab_size * 2 : 64;
  rk_entry **t = calloc(n, sizeof *t);
  if (t == NULL)
    return 0;
  for (size_t i = 0; i < tab_size; i++) {
    rk_entry *p = tab[i];
    while (p) {
      rk_entry *q = p->next;
      p->next = t[p->hash & (n - 1)];
      t[p->hash & (n - 1)] = p;
      p = q;
    }
  }
  free(tab);
  tab = t;
  tab_size = n;
  return 1;
}

void rk_kernel_free(rk_kernel *k) {
  if (k == NULL)
    return;
  if (k->be && k->be->unload)
    k->be->unload(k);
  free(k->key);
  free(k);
}

int rk_memcache_add(rk_kernel *k, rk_error *e) {
  if (rk_memcache_find(k->key)) { /* already there: keep the old one */
    rk_kernel_free(k);
    return RK_OK;
  }
  rk_entry *p = malloc(sizeof *p);
  if (p == NULL || ((tab_count + 1) * 2 > tab_size && !memcache_grow())) {
    free(p);
    rk_kernel_free(k);
    return rk_err(e, RK_ENOMEM, -1, "out of memory in the kernel cache");
  }
  p->hash = rk_hash_str(k->key);
  p->k = k;
  p->next = tab[p->hash & (tab_size - 1)];
  tab[p->hash & (tab_size - 1)] = p;
  tab_count++;
  return RK_OK;
}

void rk_cache_clear_memory(void) {
  for (size_t i = 0; i < tab_size; i++) {
    rk_entry *p = tab[i];
    while (p) {
      rk_entry *q = p->next;
      rk_kernel_free(p->k);
      free(p);
      p = q;
    }
  }
  free(tab);
  tab = NULL;
  tab_size = tab_count = 0;
  /* what the backends hold too (device pools): clean_rkeops() frees all */
  for (int b = 0; b < rk_backend_count(); b++) {
    const rk_backend_i *be = rk_backend_get(b);
    if (be && be->release)
      be->release();
  }
}

/* ---- directories ------------------------------------------------------- */

/* private: owned by us, not writable by group or others */
static int private_mode(const struct stat *st) {
  return st->st_uid == geteuid() && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

int rk_cache_mkdir(const char *dir, rk_error *e) {
  if (dir == NULL || dir[0] == '\0')
    return rk_err(e, RK_ECACHE, -1, "empty kernel cache directory name");
  char *p = strdup(dir);
  if (p == NULL)
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  /* mkdir -p: create each missing component with mode 0700 */
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
      int err = errno;
      *s = c;
      rk_err(e, RK_ECACHE, -1,
             "cannot create the kernel cache directory %s: %s", p,
             strerror(err));
      free(p);
      return RK_ECACHE;
    }
    *s = c;
    if (c == '\0')
      break;
  }
  struct stat st;
  int rc = RK_OK;
  if (stat(p, &st) != 0)
    rc =
        rk_err(e, RK_ECACHE, -1, "cannot use the kernel cache directory %s: %s",
               p, strerror(errno));
  else if (!S_ISDIR(st.st_mode))
    rc = rk_err(e, RK_ECACHE, -1,
                "the kernel cache directory %s is not a directory", p);
  else if (st.st_uid != geteuid())
    rc = rk_err(e, RK_ECACHE, -1,
                "the kernel cache directory %s belongs to another user "
                "(uid %ld): choose another cache_dir",
                p, (long)st.st_uid);
  else if (!private_mode(&st))
    rc = rk_err(e, RK_ECACHE, -1,
                "the kernel cache directory %s is writable by others (mode "
                "%03o): run chmod 700 on it or choose another cache_dir",
                p, (unsigned)(st.st_mode & 0777));
  free(p);
  return rc;
}

void rk_cache_path(const char *dir, const char *key, const char *ext,
                   rk_buf *out) {
  char h[33];
  rk_hash_hex(key, h);
  rk_buf_printf(out, "%s/%s.%s", dir, h, ext);
}

void rk_cache_tmppath(const char *dir, const char *ext, rk_buf *out) {
  static unsigned counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                  (uint64_t)(uintptr_t)&ts;
  unsigned char rnd[8] = {0};
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, rnd, sizeof rnd) < 0)
      memset(rnd, 0, sizeof rnd);
    close(fd);
  }
  uint64_t r = rk_hash_bytes(rnd, sizeof rnd, seed);
  rk_buf_printf(out, "%s/tmp-%ld-%u-%016llx.%s", dir, (long)getpid(), ++counter,
                (unsigned long long)r, ext);
}

/* ---- files: read, verify, seal ------------------------------------------ */

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* read a whole file (not following links) into a malloc'ed buffer; with
   check, only a private regular file.  NULL on failure. */
static unsigned char *read_file(const char *path, size_t *size, int check) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  unsigned char *buf = NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (check && !private_mode(&st)) || (size_t)st.st_size > RK_MAX_FILE)
    goto done;
  size_t n = (size_t)st.st_size, got = 0;
  buf = malloc(n + 1);
  if (buf == NULL)
    goto done;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  if (got != n) {
    free(buf);
    buf = NULL;
  }
  *size = n;
done:
  close(fd);
  return buf;
}

/* content length when buf[0..n) is a well-formed sealed file for key,
   else (size_t)-1 */
static size_t check_trailer(const unsigned char *buf, size_t n,
                            const char *key) {
  size_t klen = strlen(key);
  if (n < RK_MAGIC_LEN + RK_TAIL_LEN + klen)
    return (size_t)-1;
  const unsigned char *t = buf + n - RK_TAIL_LEN;
  uint64_t fk = get64(t), fc = get64(t + 8), sum = get64(t + 16);
  if (fk != klen || fc != n - RK_TAIL_LEN - klen - RK_MAGIC_LEN)
    return (size_t)-1;
  size_t c = (size_t)fc;
  if (memcmp(buf + c, RK_MAGIC, RK_MAGIC_LEN) != 0 ||
      memcmp(buf + c + RK_MAGIC_LEN, key, klen) != 0)
    return (size_t)-1;
  if (rk_hash_bytes(buf, n - 8, 0) != sum)
    return (size_t)-1;
  return c;
}

static int dir_private(const char *path) {
  char *d = strdup(path);
  if (d == NULL)
    return 0;
  char *slash = strrchr(d, '/');
  struct stat st;
  int ok;
  if (slash == NULL)
    ok = stat(".", &st) == 0;
  else {
    if (slash == d)
      slash[1] = '\0';
    else
      *slash = '\0';
    ok = stat(d, &st) == 0;
  }
  free(d);
  return ok && S_ISDIR(st.st_mode) && private_mode(&st);
}

int rk_cache_verify(const char *path, const char *key) {
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || !private_mode(&st) ||
      !dir_private(path))
    return 0;
  size_t n;
  unsigned char *buf = read_file(path, &n, 1);
  if (buf == NULL)
    return 0;
  int ok = check_trailer(buf, n, key) != (size_t)-1;
  free(buf);
  return ok;
}

static int write_all(int fd, const void *p, size_t n) {
  const unsigned char *s = p;
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return 0;
    s += w;
    n -= (size_t)w;
  }
  return 1;
}

int rk_cache_seal(const char *tmp_path, const char *key, rk_error *e) {
  size_t n, klen = strlen(key);
  unsigned char *buf = read_file(tmp_path, &n, 0);
  if (buf == NULL)
    return rk_err(e, RK_ECACHE, -1, "cannot read %s to seal it", tmp_path);
  /* checksum of content + magic + key + klen + length, streamed through
     one buffer holding everything */
  size_t tot = n + RK_MAGIC_LEN + klen + 16;
  unsigned char *all = realloc(buf, tot + 8);
  if (all == NULL) {
    free(buf);
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  }
  memcpy(all + n, RK_MAGIC, RK_MAGIC_LEN);
  memcpy(all + n + RK_MAGIC_LEN, key, klen);
  put64(all + n + RK_MAGIC_LEN + klen, klen);
  put64(all + n + RK_MAGIC_LEN + klen + 8, n);
  put64(all + tot, rk_hash_bytes(all, tot, 0));
  int fd = open(tmp_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
  int ok = fd >= 0 && write_all(fd, all + n, tot + 8 - n) &&
           fchmod(fd, 0600) == 0 && fsync(fd) == 0;
  int err = errno;
  if (fd >= 0 && close(fd) != 0)
    ok = 0;
  free(all);
  if (!ok)
    return rk_err(e, RK_ECACHE, -1, "cannot seal the cache file %s: %s",
                  tmp_path, strerror(err));
  return RK_OK;
}

int rk_cache_install(const char *tmp_path, const char *final_path,
                     rk_error *e) {
  if (rename(tmp_path, final_path) != 0) {
    int err = errno;
    unlink(tmp_path);
    return rk_err(e, RK_ECACHE, -1, "cannot move %s to %s: %s", tmp_path,
                  final_path, strerror(err));
  }
  return RK_OK;
}

/* ---- blobs -------------------------------------------------------------- */

int rk_cache_read_blob(const char *path, const char *key, void **data,
                       size_t *size) {
  *data = NULL;
  *size = 0;
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || !dir_private(path))
    return 0;
  size_t n;
  unsigned char *buf = read_file(path, &n, 1);
  if (buf == NULL)
    return 0;
  size_t c = check_trailer(buf, n, key);
  if (c == (size_t)-1) {
    free(buf);
    return 0;
  }
  *data = buf; /* the trailer stays allocated behind the content */
  *size = c;
  return 1;
}

int rk_cache_write_blob(const char *dir, const char *key, const char *ext,
                        const void *data, size_t size, rk_error *e) {
  int rc = rk_cache_mkdir(dir, e);
  if (rc != RK_OK)
    return rc;
  rk_buf tmp, fin;
  rk_buf_init(&tmp);
  rk_buf_init(&fin);
  rk_cache_tmppath(dir, ext, &tmp);
  rk_cache_path(dir, key, ext, &fin);
  if (tmp.oom || fin.oom) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  int fd =
      open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    rc = rk_err(e, RK_ECACHE, -1, "cannot create %s: %s", tmp.s,
                strerror(errno));
    goto done;
  }
  int ok = write_all(fd, data, size);
  if (close(fd) != 0 || !ok) {
    unlink(tmp.s);
    rc = rk_err(e, RK_ECACHE, -1, "cannot write %s", tmp.s);
    goto done;
  }
  rc = rk_cache_seal(tmp.s, key, e);
  if (rc == RK_OK)
    rc = rk_cache_install(tmp.s, fin.s, e);
  else
    unlink(tmp.s);
done:
  rk_buf_free(&tmp);
  rk_buf_free(&fin);
  return rc;
}
