/*
 * be.h -- backends.  A backend is one row of the table rk_backends: a
 * struct of functions (rk_backend_i) implemented in one file (be-cpu.c:
 * generated C compiled by the system compiler and dlopen'ed; be-cuda.c:
 * NVRTC + driver API, both dlopen'ed at run time).  Above the table:
 * the one get-a-kernel flow and the kernel key (be-kernel.c), the kernel
 * cache (be-cache.c), the run orchestration (run.c) and the prepared
 * operator (rk_operator, be-op.c).  A backend never calls another backend or
 * the kernel flow: the flow calls the backend.
 */
#ifndef RK_BE_H
#define RK_BE_H

#include "cg.h"
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
typedef struct rk_data {
  int n;              /* positions                                      */
  const void **vars;  /* by position (NULL: unused)                     */
  int64_t *ld, *npts; /* leading dimension, number of points            */
  void **owned;       /* converted copies to free, by position          */
  void *dev;          /* the backend's resident copy (bind), or NULL    */
} rk_data;

/* convert / point at the inputs (prec 32 or 64), converting with up to
   nthreads threads; rk_data_free releases */
int rk_data_prepare(const rk_formula *f, const rk_input *in, int prec,
                    int64_t ni, int64_t nj, int nthreads, rk_data *d,
                    rk_error *e);
/* the bytes rk_data_prepare_in converts the inputs into (0: every input is
   used in place) */
size_t rk_data_bytes(const rk_formula *f, const rk_input *in, int prec,
                     int64_t ni, int64_t nj);
/* rk_data_prepare converting into buf (rk_data_bytes bytes, the caller's:
   rk_data_free does not free it) */
int rk_data_prepare_in(const rk_formula *f, const rk_input *in, int prec,
                       int64_t ni, int64_t nj, int nthreads, void *buf,
                       rk_data *d, rk_error *e);
/* replace the data of position v by x (same shape as before), copied
   into memory owned by d */
int rk_data_replace(const rk_formula *f, int v, const rk_input *x, int prec,
                    rk_data *d, rk_error *e);
void rk_data_free(rk_data *d);

/* ---- partial states ------------------------------------------------------
 * The state of one output row is S = rk_cg_red_state_size(f) doubles, in
 * the layout of cg-reduce.c (values, then indices or compensations, then
 * the running max and the softmax normaliser).  A block of n rows is
 * column-major: slot s of row r at st[s * ldst + r].  States are the same
 * on every backend, so states of different backends merge.
 */

/* what a run computes: output rows [r0, r1) over the reduction points
   [j0, j1) (global indices).  mode bit 0: start from the states st (row
   r0 + i at st[s * ldst + i]), else from the empty state; mode bit 1: end
   by storing the states there, else write the results, row r0 + i at
   out[c * ldo + i] (doubles, indices 1-based). */
typedef struct rk_span {
  int64_t r0, r1;
  int64_t j0, j1;
  double *out;
  int64_t ldo;
  double *st;
  int64_t ldst;
  int mode;
  int nthreads; /* CPU threads for this run (o->nthreads resolved) */
} rk_span;

/* merge states of nparts parts of n rows (part p at st + p * stpart, in
   increasing point order): the results to out[c * ldo + r], or with mode
   bit 1 the merged states into part 0 */
typedef struct rk_merge_args {
  int64_t n;
  int nparts;
  double *st;
  int64_t ldst, stpart;
  double *out;
  int64_t ldo;
  int mode;
} rk_merge_args;

/* ---- kernels, images, targets ---------------------------------------------
 */
struct rk_backend_i;

typedef struct rk_kernel {
  char *key; /* memory key (full key + device)    */
  const struct rk_backend_i *be;
  void *handle;   /* dlopen handle, or CUmodule         */
  void *fn;       /* entry point                        */
  void *aux;      /* backend data (more entry points)   */
  int state_size; /* doubles per row of a state         */
  int granule;    /* reduction points per tile: splits
                     of j at multiples keep the kernel's
                     own partial sums (1: any split)  */
  double work;    /* pairs run through a quick kernel
                     (run.c's tiers)                   */
} rk_kernel;

/* a compiled kernel: a file (a shared object: the flow seals, loads and
   installs it) or bytes (a CUDA image: the flow loads and stores them) */
enum { RK_IMAGE_FILE = 0, RK_IMAGE_BLOB = 1 };
typedef struct rk_image {
  char *path; /* RK_IMAGE_FILE: malloc'ed path                        */
  void *data; /* RK_IMAGE_BLOB: malloc'ed bytes                       */
  size_t size;
} rk_image;

/* what besides (formula, configuration) an image depends on */
typedef struct rk_target {
  rk_buf text; /* e.g. "cc gcc -O3 ...; host x86 ..." or "nvrtc12.4/sm_90" */
  const char *ext; /* cache file extension: "so", "cubin", "ptx"        */
  int per_device;  /* 1: a loaded kernel belongs to o->device           */
} rk_target;

/* ---- the backend interface
 * --------------------------------------------------- */
typedef struct rk_backend_i {
  const char *name; /* "cpu", "cuda": in the kernel key and messages     */
  int id;           /* enum rk_backend                                   */
  int abi;          /* version of the generated kernels' ABI (in the key) */
  int cfg_mask;     /* the rk_cg_config fields that apply (1 CPU, 2 CUDA) */
  int image_kind;   /* RK_IMAGE_FILE or RK_IMAGE_BLOB                    */
  /* > 0 when usable; 0 with the reason in why */
  int (*available)(char *why, size_t size);
  /* lines of the configuration report; returns the length needed */
  size_t (*describe)(char *buf, size_t size);
  /* fill t (text, ext, per_device) for these options */
  int (*target)(const rk_options *o, rk_target *t, rk_error *e);
  /* source(formula, configuration) -> text; key is embedded */
  int (*source)(const rk_formula *f, const rk_cg_config *c, const char *key,
                rk_buf *out, rk_error *e);
  /* compile(text) -> image; dir: a private directory to work in (the
     cache directory or a temporary one) */
  int (*compile)(const rk_options *o, const rk_target *t, const char *src,
                 const char *dir, rk_image *img, rk_error *e);
  /* load an image as the kernel for key (embedded key checked when the
     image carries one): fills k->handle, fn, aux, state_size */
  int (*load)(const rk_options *o, const rk_formula *f, const rk_cg_config *c,
              const rk_image *img, const char *key, rk_kernel *k, rk_error *e);
  /* compute s (rows, reduction range, states in/out) on data d */
  int (*run)(rk_kernel *k, const rk_formula *f, const rk_options *o,
             const rk_data *d, const rk_span *s, rk_error *e);
  /* merge partial states (host memory) */
  int (*merge)(rk_kernel *k, const rk_merge_args *m, rk_error *e);
  /* release what k holds (not k->key nor k itself) */
  void (*unload)(rk_kernel *k);
  /* give back what the backend holds across calls (device pools) */
  void (*release)(void);
  /* optional (NULL: the data stay on the host): keep a copy of d where
     the kernels run (d->dev), refresh position v, drop it */
  int (*bind)(rk_kernel *k, const rk_formula *f, const rk_options *o,
              rk_data *d, rk_error *e);
  int (*rebind)(const rk_formula *f, const rk_options *o, rk_data *d, int v,
                rk_error *e);
  void (*unbind)(rk_data *d);
  /* optional (NULL: no-op): page-lock host memory that runs copy to or
     from (the solver's iterates and kernel columns), best effort: 0 when
     locked; unpin only what pin locked */
  int (*pin)(const rk_options *o, void *p, size_t bytes);
  void (*unpin)(void *p);
  /* optional (NULL: none): a host buffer of at least `bytes` from which
     copies to the device run at full speed (CUDA: page-locked), kept by
     the backend (grow-only, given back by release); valid until the next
     staging call; NULL when it cannot be had (the caller uses its own
     memory).  run.c converts a call's inputs into it. */
  void *(*staging)(const rk_options *o, size_t bytes);
} rk_backend_i;

/* the table: one row per backend, indexed by enum rk_backend */
extern const rk_backend_i rk_backend_cpu;   /* be-cpu.c  */
extern const rk_backend_i rk_backend_cuda;  /* be-cuda.c */
const rk_backend_i *rk_backend_get(int id); /* NULL when unknown */
int rk_backend_count(void);

/* ---- the kernel flow (be-kernel.c)
 * -------------------------------------------- key -> memory cache -> generate
 * -> hash of the source -> disk cache -> compile -> install -> memory cache,
 * for every backend.  The key: package version, backend and ABI, scheme,
 * configuration (every field that applies), target, canonical formula, the
 * declared variables (dimension and category of each, used or not): one
 * printable line.
 */
void rk_kernel_key(const rk_backend_i *be, const rk_formula *f,
                   const rk_cg_config *c, const char *target, rk_buf *buf);
/* the kernel of f for be: *compiled = 1 when a compiler ran */
int rk_kernel_get(const rk_backend_i *be, const rk_formula *f,
                  const rk_options *o, const rk_cg_config *c, rk_kernel **out,
                  int *compiled, rk_error *e);
/* the kernel of f for be when it is at hand, without compiling: in the
   memory cache (disk = 0), or there or in the disk cache (disk = 1);
   RK_OK with *out NULL when it is not */
int rk_kernel_find(const rk_backend_i *be, const rk_formula *f,
                   const rk_options *o, const rk_cg_config *c, int disk,
                   rk_kernel **out, rk_error *e);
/* check the inputs against the formula (run.c): *ni / *nj points */
int rk_inputs_check(const rk_formula *f, const rk_input *in, int nin,
                    int64_t *ni, int64_t *nj, rk_error *e);
/* the backend of the options, or the CPU when that one is not usable */
const rk_backend_i *rk_backend_pick(const rk_options *o);
/* the message of a cache directory refused since the last call (once per
   directory), into buf: 1, else 0 (the glue warns with it) */
int rk_cache_notice(char *buf, size_t size);
/* the thread count of a CPU run: rk_threads_get (threads.c) */
int rk_nthreads(const rk_options *o);
/* the configuration of code generation for these options: the
   developer knobs read from the environment (run.c, the border) */
void rk_cg_config_env(rk_cg_config *c, int precision);

/* host CPU identity for the CPU target (vendor, family / model, feature
   bits), cached; rk_host_cpu_override (tests) replaces it (NULL: real) */
const char *rk_host_cpu(void);
void rk_host_cpu_override(const char *s);

/* ---- CPU kernels (generated by cg-cpu.c) ----------------------------------
 * A generated CPU kernel exports:
 *   const char rk_kernel_key[];   the full cache key (checked after dlopen)
 *   int rk_kernel_abi(void);      returns RK_CPU_ABI
 *   int rk_kernel_state_size(void);
 *   int rk_kernel_tile(void);     reduction points per tile (granule)
 *   int rk_kernel_run(int64_t r0, int64_t r1, int64_t j0, int64_t j1,
 *                     const void *const *vars, const int64_t *ld,
 *                     double *out, int64_t ldo, double *st,
 *                     int64_t ldst, int mode, int nthreads);
 *     rows r0 <= r < r1 over points j0 <= j < j1, as rk_span (out and st
 *     indexed from row r0); returns 0, or -1 when a per-thread buffer
 *     could not be allocated
 *   int rk_kernel_merge(int64_t n, int nparts, double *st, int64_t ldst,
 *                       int64_t stpart, double *out, int64_t ldo,
 *                       int mode);   as rk_merge_args
 */
typedef int (*rk_cpu_entry)(int64_t r0, int64_t r1, int64_t j0, int64_t j1,
                            const void *const *vars, const int64_t *ld,
                            double *out, int64_t ldo, double *st, int64_t ldst,
                            int mode, int nthreads);
typedef int (*rk_cpu_merge)(int64_t n, int nparts, double *st, int64_t ldst,
                            int64_t stpart, double *out, int64_t ldo, int mode);

/* compiler configuration recorded by configure (rk-config.h) */
const char *rk_cpu_compiler(void);     /* e.g. "gcc"                    */
const char *rk_cpu_cflags(void);       /* R's CFLAGS + ours             */
const char *rk_cpu_openmp_flags(void); /* "" when OpenMP is unavailable */

/* ---- the kernel cache (be-cache.c) ----------------------------------------
 * Memory: a table from memory key to a loaded kernel, for the session.
 * Disk: <cache_dir>/<32-hex hash of full key>.<ext>.  Each file carries a
 * trailer (magic, full key, length, checksum of the preceding bytes), so a
 * truncated, corrupted or foreign file is detected and rebuilt; files are
 * written to a temporary name and renamed (atomic); the directory is
 * created 0700 and a file not owned by the user, or writable by others, is
 * never loaded.
 */
rk_kernel *rk_memcache_find(const char *key);
/* takes ownership of k (must be malloc'ed, key strdup'ed) */
int rk_memcache_add(rk_kernel *k, rk_error *e);
/* unload and free a kernel that is not in the memory cache */
void rk_kernel_free(rk_kernel *k);
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
int rk_cache_install(const char *tmp_path, const char *final_path, rk_error *e);
/* a unique temporary path in dir with this extension */
void rk_cache_tmppath(const char *dir, const char *ext, rk_buf *out);
/* blobs (CUDA images): read verified content without the trailer */
int rk_cache_read_blob(const char *path, const char *key, void **data,
                       size_t *size);
int rk_cache_write_blob(const char *dir, const char *key, const char *ext,
                        const void *data, size_t size, rk_error *e);
/* counters behind rk_stat_compiles() / rk_stat_disk_loads() (the flow
   calls them when a compiler ran / when it loaded a kernel from disk) */
void rk_cache_count_compile(void);
void rk_cache_count_disk_load(void);

/* ---- CUDA (be-cuda-*.c) ---------------------------------------------------
 * Both libraries are dlopen'ed at first use; no CUDA header is needed to
 * build the package.  The generated kernels' ABI: top of cg-cuda.c.
 */
int rk_nvrtc_compile(const char *src, const char *name, int major, int minor,
                     void **image, size_t *size, int *is_cubin, rk_error *e);
/* a generated kernel's source (cg-cuda.c): rk_main and rk_merge compiled
   as two programs in parallel; the image is their pair */
int rk_nvrtc_compile_kernel(const char *src, const char *name, int major,
                            int minor, int quick, void **image, size_t *size,
                            int *is_cubin, rk_error *e);
/* the two images of a pair: 1, 0 when img is a single image, -1 when it is
   a damaged pair */
int rk_cuda_pair_split(const void *img, size_t n, const void **a, size_t *na,
                       const void **b, size_t *nb);
/* the architecture number for compute capability major.minor given the
   newest NVRTC knows (maxa, <= 0: unknown); *cubin cleared when PTX must
   be used; -1 for a capability out of range */
int rk_nvrtc_pick_arch(int major, int minor, int maxa, int *cubin);
/* "NVRTC could not compile the CUDA kernel for <arch>: <why>" */
void rk_nvrtc_fail_message(char *buf, size_t size, const char *archopt,
                           const char *why);
/* free / total memory of CUDA device `device` in bytes, the bytes this
   process holds through cuMemAlloc (all devices), and the number of calls
   run pipelined so far, and the reduction parts of the last call's plan;
   0, or -1 when no GPU is usable (ffi-cuda.c, bench/gpu.R,
   test-reduce-cuda.R) */
int rk_cuda_meminfo(int device, double *free_bytes, double *total_bytes,
                    double *held, double *pipelined, double *parts);

/* ---- several parts (run.c) -----------------------------------------------
 * o->ndevices > 1: the output rows are cut in consecutive blocks, one per
 * listed device, in proportion to each device's measured speed; each
 * block is one run of the backend over the whole reduction range.
 * rk_parts_run computes span s with kernel ks[p] on data ds[p] for part p
 * (CUDA: a host thread per part, a device listed again on a lane of its
 * own; CPU: one after the other); an error names the part and device. */
rk_options rk_parts_options(const rk_options *o, int p);
/* lanes (streams) per device: the k-th listing of a device in
   rk_options.devices runs on lane k (k < RK_MAX_LANES) */
#define RK_MAX_LANES 8

void rk_parts_split(int be, const int *devices, int ndev, int64_t n,
                    int64_t *cut);
int rk_parts_threaded(const rk_backend_i *be, const int *devices, int ndev);
void rk_parts_note(int be, int dev, double work, double seconds);
int rk_parts_run(const rk_backend_i *be, rk_kernel **ks, const rk_formula *f,
                 const rk_options *o, const rk_data *const *ds,
                 const rk_span *s, rk_error *e);

/* ---- the prepared operator (be-op.c) -------------------------------------
 * For callers that run one formula many times on the same data (solve(),
 * a split of the reduction over workers): the kernel is got once, the
 * inputs converted once (and, on a backend with bind, kept in device
 * memory); each run computes rows [r0, r1) over [j0, j1) with one input
 * replaced by new values (or none), into results or states.
 *   rk_operator *op = rk_op_prepare(f, &o, in, nin, &e);
 *   rk_op_call c = {.r0 = 0, .r1 = rk_op_nout(op), .j0 = 0,
 *                   .j1 = rk_op_nred(op), .replace = 3, .x = &b, .out = r};
 *   rk_op_run(op, &c, &e);  ...  rk_op_free(op);
 * The formula and the options (with their strings) must outlive op.
 */
typedef struct rk_operator rk_operator;
typedef struct rk_op_call {
  int64_t r0, r1;      /* output rows                                     */
  int64_t j0, j1;      /* reduction points                                */
  int replace;         /* position whose data x replaces, or -1           */
  const rk_input *x;   /* same shape as the prepared input                */
  double *out;         /* results, (r1 - r0) x outdim column-major        */
  double *st;          /* states, (r1 - r0) x S column-major, or NULL     */
  int mode;            /* as rk_span: bit 0 states in, bit 1 states out   */
  const rk_options *o; /* callbacks (interrupts, messages) or NULL        */
} rk_op_call;
rk_operator *rk_op_prepare(rk_formula *f, const rk_options *o,
                           const rk_input *in, int nin, rk_error *e);
int rk_op_run(rk_operator *op, const rk_op_call *c, rk_error *e);
/* merge the states of nparts parts (in point order), see rk_merge_args */
int rk_op_merge(rk_operator *op, const rk_merge_args *m, rk_error *e);
int64_t rk_op_nout(const rk_operator *op);
int64_t rk_op_nred(const rk_operator *op);
int rk_op_state_size(const rk_operator *op);
/* reduction points per tile of the kernel: splitting j at multiples of it
   keeps the kernel's own grouping of partial sums */
int rk_op_granule(const rk_operator *op);
void rk_op_free(rk_operator *op);
/* page-lock p (bytes) for the copies of op's runs (rk_backend_i.pin):
   1 when locked (then rk_op_unpin it before freeing it), 0 when not */
int rk_op_pin(rk_operator *op, void *p, size_t bytes);
void rk_op_unpin(rk_operator *op, void *p);

#endif /* RK_BE_H */
