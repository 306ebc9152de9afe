/*
 * be.h -- backends: the kernel cache, the CPU backend (generated C compiled
 * by the system compiler, dlopen'ed) and the CUDA backend (NVRTC + driver
 * API, both dlopen'ed at run time), and the run orchestration (run.c).
 */
#ifndef RK_BE_H
#define RK_BE_H

#include "ir.h"

/* ---- data handed to a kernel ------------------------------------------
 * Every variable is passed structure-of-arrays: component k of point p of
 * the variable at position v is vars[v][k * ld[v] + p] (T = float or
 * double as compiled); a parameter's component k is vars[v][k].  run.c
 * converts R's column-major doubles (layout COL, precision 64) without a
 * copy, and transposes / converts to float otherwise.
 * "Outer" variables are those indexed by the output index (cat I when
 * axis = 1, cat J when axis = 0), "inner" ones by the reduction index.
 */

/* ---- CPU kernels ----------------------------------------------------------
 * A generated CPU kernel exports:
 *   const char rk_kernel_key[];   the full cache key (checked after dlopen)
 *   int rk_kernel_abi(void);      returns RK_CPU_ABI
 *   int rk_kernel_run(int64_t r0, int64_t r1, int64_t nout, int64_t nred,
 *                     const void *const *vars, const int64_t *ld,
 *                     double *out, int nthreads);
 * rk_kernel_run computes output rows r0 <= r < r1 (of nout), reducing over
 * nred points, with nthreads OpenMP threads, writing out[c * nout + r]
 * (double, column-major, indices 1-based).  Returns 0, or -1 when a
 * per-thread buffer could not be allocated.
 */
#define RK_CPU_ABI 1
typedef int (*rk_cpu_entry)(int64_t r0, int64_t r1, int64_t nout,
                            int64_t nred, const void *const *vars,
                            const int64_t *ld, double *out, int nthreads);

/* compiler configuration recorded by configure (rk-config.h) */
const char *rk_cpu_compiler(void);      /* e.g. "gcc"                    */
const char *rk_cpu_cflags(void);        /* R's CFLAGS + ours             */
const char *rk_cpu_openmp_flags(void);  /* "" when OpenMP is unavailable */

/* full cache key of a formula for a backend: canonical formula, scheme,
   precision, backend, compiler and flags (or NVRTC version and compute
   capability), package version.  Written into buf. */
void rk_kernel_key(const rk_formula *f, int backend, int precision,
                   const char *target, rk_buf *buf);

/* get the CPU kernel: memory cache, then disk cache, else generate +
   compile + store.  *compiled = 1 when the compiler ran. */
int rk_cpu_get(const rk_formula *f, const rk_options *o, rk_cpu_entry *fn,
               int *compiled, rk_error *e);

/* ---- the kernel cache (be-cache.c) ----------------------------------------
 * Memory: a table from full key to a loaded kernel, for the session.
 * Disk: <cache_dir>/<32-hex hash of full key>.<ext>.  Each file carries a
 * trailer (magic, full key, length, checksum of the preceding bytes), so a
 * truncated, corrupted or foreign file is detected and rebuilt; files are
 * written to a temporary name and renamed (atomic); the directory is
 * created 0700 and a file not owned by the user, or writable by others, is
 * never loaded.
 */
typedef struct rk_kernel {
  char *key;      /* full key                                   */
  int backend;
  void *handle;   /* dlopen handle, or CUmodule                  */
  void *fn;       /* entry point: rk_cpu_entry, or CUfunction    */
  void *aux;      /* backend data (CUDA: more functions)         */
} rk_kernel;

rk_kernel *rk_memcache_find(const char *key);
/* takes ownership of k (must be malloc'ed, key strdup'ed) */
int rk_memcache_add(rk_kernel *k, rk_error *e);
int rk_cache_mkdir(const char *dir, rk_error *e);
/* path of the cache file for key: "<dir>/<hash>.<ext>" */
void rk_cache_path(const char *dir, const char *key, const char *ext,
                   rk_buf *out);
/* 1 when path exists, belongs to the user, is not group/world writable,
   and its trailer matches key and content; 0 otherwise */
int rk_cache_verify(const char *path, const char *key);
/* append the trailer for key to the file at tmp_path */
int rk_cache_seal(const char *tmp_path, const char *key, rk_error *e);
/* rename tmp_path to final_path (atomic on one file system) */
int rk_cache_install(const char *tmp_path, const char *final_path,
                     rk_error *e);
/* a unique temporary path in dir with this extension */
void rk_cache_tmppath(const char *dir, const char *ext, rk_buf *out);
/* blobs (CUDA images): read verified content without the trailer */
int rk_cache_read_blob(const char *path, const char *key, void **data,
                       size_t *size);
int rk_cache_write_blob(const char *dir, const char *key, const char *ext,
                        const void *data, size_t size, rk_error *e);
/* counters behind rk_stat_compiles() / rk_stat_disk_loads(): every backend
   calls them when its compiler ran / when it loaded a kernel from disk */
void rk_cache_count_compile(void);
void rk_cache_count_disk_load(void);

/* ---- CUDA (be-cuda-*.c) ---------------------------------------------------
 * Both libraries are dlopen'ed at first use; no CUDA header is needed to
 * build the package.  The CUDA helper documents the generated kernel's ABI
 * in cg-cuda.c.
 */
int rk_cuda_available(char *why, size_t size); /* number of usable GPUs */
int rk_cuda_run(rk_formula *f, const rk_options *o, int64_t nout,
                int64_t nred, const void *const *vars, const int64_t *ld,
                const int64_t *npts, double *out, rk_error *e);
int rk_nvrtc_compile(const char *src, const char *name, int major,
                     int minor, void **image, size_t *size, int *is_cubin,
                     rk_error *e);
size_t rk_cuda_describe(char *buf, size_t size);
/* release what a GPU kernel of the memory cache holds (k->handle, k->aux);
   called by rk_cache_clear_memory, which then frees k->key and k itself.
   Implemented in be-cuda-*.c. */
void rk_cuda_unload(rk_kernel *k);
/* free / total memory of CUDA device `device` in bytes; 0, or -1 when no
   GPU is usable (ffi-cuda.c, bench/gpu.R) */
int rk_cuda_meminfo(int device, double *free_bytes, double *total_bytes);
/* give back the device-memory pools (grow-only, reused across calls) */
void rk_cuda_release_pools(void);

#endif /* RK_BE_H */
