/*
 * threads.h -- how many threads a CPU reduction uses, and the pool that
 * runs them (threads.c); the compiler child (be-cpu-cc.c); work that the
 * caller may abandon on an interrupt (NVRTC).
 *
 * The CPU kernels are run by a pool of our own (POSIX threads waiting on a
 * condition variable: nothing spins), not by OpenMP's: GNU libgomp is
 * initialised by libR at R's start, so its spin policy (OMP_WAIT_POLICY,
 * GOMP_SPINCOUNT) cannot be changed from a package, and its pool hangs a
 * forked child.  Every block of rows is one call of the kernel entry with
 * nthreads = 1 (a one-thread OpenMP region creates no thread).
 */
#ifndef RK_THREADS_H
#define RK_THREADS_H

#include "ir.h"

#include <pthread.h>
#include <stddef.h>

/* Starts fn(arg) on a new thread of at least `stack` bytes of stack (0:
   the system's default), detached when `detached`, with every signal
   blocked in it (signals are R's main thread's business: a SIGINT must
   never land on one of our threads).  0 when started, else an errno
   value (*t is then untouched).  Every thread of the package starts here. */
int rk_thread_start(pthread_t *t, size_t stack, int detached,
                    void *(*fn)(void *), void *arg);

/* once, at package load: the fork handler (a forked child runs
   single-threaded; the parent's pool does not exist there) */
void rk_threads_init(void);

/* cores this process may run on (CPU affinity, else online processors) */
int rk_threads_avail(void);

/* 1 in a process forked after rk_threads_init (mclapply & co) */
int rk_threads_forked(void);

/* The thread count of a call, before the size of the problem is known:
   requested > 0 (rkeops_use_cpu(ncore)), else OMP_NUM_THREADS (its first
   number), else every available core; then at most the available cores,
   OMP_THREAD_LIMIT, 2 under _R_CHECK_LIMIT_CORES_, and 1 in a forked
   child.  *why (may be NULL) gets a static text naming the limit that
   applied ("requested", "OMP_NUM_THREADS", "cores", ...). */
int rk_threads_get(int requested, const char **why);

/* Cost of one (i, j) pair of a formula in rough work units (about one
   vector operation on one component; transcendental functions count
   more), and an upper bound of the stack one kernel call needs. */
void rk_formula_cost(const rk_formula *f, double *pair_cost,
                     size_t *stack_bytes);

/* the thread count for a problem of `work` units: at most nthreads, and
   one thread per RK_WORK_PER_THREAD units (small problems: one thread) */
#define RK_WORK_PER_THREAD 1e7
int rk_threads_for_work(int nthreads, double work);

/* ---- chunks -------------------------------------------------------------
 * A reduction runs in chunks of rows; the interrupt callback is polled
 * between chunks.  The first chunk is sized by estimated work (pairs x
 * cost per pair), the next ones by the measured speed of the last one:
 * about RK_CHUNK_SECONDS each, never more than RK_CHUNK_MAX_SECONDS, and at
 * least RK_CHUNK_ROWS_PER_THREAD rows per thread when that is not slower
 * (a block of few rows copies each tile of the reduction variables for
 * few rows).  Blocks given to the pool: about 4 per thread and chunk. */
#define RK_CHUNK_FIRST_WORK      1e8 /* per thread: 0.01 to 0.2 s */
#define RK_CHUNK_SECONDS         0.25
#define RK_CHUNK_MAX_SECONDS     1.0
#define RK_CHUNK_ROWS_PER_THREAD 1024
/* the largest stack one kernel call may need (rk_formula_cost) */
#define RK_STACK_MAX ((size_t)1 << 30)
/* RK_ENOMEM when the formula would need more than RK_STACK_MAX */
int rk_cpu_stack_check(const rk_formula *f, rk_error *e);
typedef struct rk_chunker {
  int nthreads;     /* threads of this run (rk_threads_for_work) */
  double pair_cost; /* work units per (i, j) pair */
  int64_t nred;
  int64_t rows; /* size of the next chunk */
} rk_chunker;
void rk_chunk_start(rk_chunker *c, int nthreads, int64_t nout, int64_t nred,
                    double pair_cost);
int64_t rk_chunk_rows(rk_chunker *c, int64_t left); /* 1 <= rows <= left */
int64_t rk_chunk_grain(const rk_chunker *c, int64_t rows);
void rk_chunk_done(rk_chunker *c, int64_t rows, double seconds);

/* ---- the pool ----------------------------------------------------------
 * rk_par_rows calls fn(ctx, a, b) on blocks [a, b) of [r0, r1) of `grain`
 * rows each (the last one shorter), with at most nthreads threads: the
 * calling thread and nthreads - 1 pool threads.  Every taking part thread
 * runs one block first (so that a run of nb >= nthreads blocks uses
 * exactly nthreads threads), then takes blocks as they come.  The pool
 * threads have at least `stack` bytes of stack; when stack is larger than
 * RK_CALLER_STACK, the calling thread only waits.  fn returning non-zero
 * stops the run: rk_par_rows returns the first such value, else 0, or -2
 * when no thread with that stack could be had.  One run at a time holds
 * the pool; a concurrent call (from another thread, through the C API)
 * runs alone on its calling thread. */
typedef int (*rk_par_fn)(void *ctx, int64_t a, int64_t b);
#define RK_CALLER_STACK ((size_t)1 << 20)
int rk_par_rows(int nthreads, int64_t r0, int64_t r1, int64_t grain,
                size_t stack, rk_par_fn fn, void *ctx);

/* threads that ran at least one block in the last rk_par_rows call of
   this process (what the tests observe), and pool threads alive now */
int rk_threads_last_used(void);
int rk_threads_pool_size(void);

/* ---- interrupts outside a reduction ------------------------------------
 * The options of the call in progress (set by run.c around a call), so
 * that code without an rk_options at hand (NVRTC) can poll the caller's
 * interrupt callback. */
void rk_call_begin(const rk_options *o);
void rk_call_end(void);
/* 1 when the caller asked to stop (never when no callback is set) */
int rk_call_interrupted(void);

/* Run fn(ctx) in a new thread while polling the interrupt callback every
   20 ms.  Returns 0 when fn finished (its result in *result); 1 when the
   caller interrupted: the thread is abandoned and calls done(ctx) when fn
   returns (done owns ctx then); -1 when no thread could be started (fn
   ran in the calling thread). */
int rk_run_abandonable(int (*fn)(void *ctx), void (*done)(void *ctx), void *ctx,
                       int *result);

/* ---- the compiler child (be-cpu-cc.c) ----------------------------------
 * Runs `sh -c cmd` in its own process group (a Ctrl-C at the terminal
 * reaches R, not the compiler), stdin from /dev/null, stdout and stderr to
 * logpath, polling o's interrupt callback every 20 ms.  Returns RK_OK
 * (exit status 0), RK_EINTERRUPT (the compiler was killed, its process
 * group too), or RK_ECOMPILE with e->msg saying how it ended (exit
 * status, signal, could not start). */
int rk_cc_run(const char *cmd, const char *logpath, const rk_options *o,
              rk_error *e);

#endif /* RK_THREADS_H */
