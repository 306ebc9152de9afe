/*
 * threads.c -- the thread count of a CPU reduction (one getter), the cost
 * model that sizes work, the pool that runs the kernels, the fork handler,
 * and work the caller may abandon on an interrupt.  See threads.h.
 *
 * The pool: nworkers threads created on demand (never more than a call
 * asked for), each waiting on a condition variable between runs; a run
 * bumps a generation counter and broadcasts.  Nothing spins, so an idle
 * pool costs nothing and a loaded machine is not made slower by threads
 * busy-waiting for work (what GNU OpenMP's default policy does for up to
 * 300000 pause instructions after each parallel region).  The pool threads
 * block every signal, so that SIGINT & co reach R's thread.
 */
#define _GNU_SOURCE
#include "threads.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- fork ------------------------------------------------------------- */

static int forked; /* set in a child by the atfork handler */
static int initialised;

static void pool_forget(void); /* below */

static void on_fork_child(void) {
  forked = 1;
  pool_forget();
}

void rk_threads_init(void) {
  if (initialised)
    return;
  initialised = 1;
  /* the handler stays registered for the life of the process: keep this
     library mapped even if R unloads the package, so that a later fork
     never calls into unmapped code */
#if defined(RTLD_NODELETE) && defined(RTLD_NOLOAD)
  Dl_info info;
  void *self = (void *)(uintptr_t)&rk_threads_init;
  if (dladdr(self, &info) && info.dli_fname)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
#endif
  pthread_atfork(NULL, NULL, on_fork_child);
}

int rk_threads_forked(void) {
  return forked;
}

/* ---- the getter -----------------------------------------------------------
 */

int rk_threads_avail(void) {
  return rk_ncpu();
}

/* a positive integer at the start of s ("4" or "4,2": the first level),
   else 0 */
static long env_count(const char *name) {
  const char *s = getenv(name);
  if (s == NULL)
    return 0;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s < '0' || *s > '9')
    return 0;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || v <= 0)
    return 0;
  while (*end == ' ' || *end == '\t')
    end++;
  if (*end != '\0' && *end != ',')
    return 0;
  return v;
}

static int env_true(const char *name) {
  const char *s = getenv(name);
  return s && (strcmp(s, "true") == 0 || strcmp(s, "TRUE") == 0 ||
               strcmp(s, "True") == 0 || strcmp(s, "1") == 0);
}

int rk_threads_get(int requested, const char **why) {
  const char *w;
  long n, avail = rk_threads_avail(), lim;
  if (requested > 0) {
    n = requested;
    w = "ncore";
  } else if ((n = env_count("OMP_NUM_THREADS")) > 0) {
    w = "OMP_NUM_THREADS";
  } else {
    n = avail;
    w = "available cores";
  }
  if (n > avail) {
    n = avail;
    w = "available cores";
  }
  if ((lim = env_count("OMP_THREAD_LIMIT")) > 0 && n > lim) {
    n = lim;
    w = "OMP_THREAD_LIMIT";
  }
  if (env_true("_R_CHECK_LIMIT_CORES_") && n > 2) {
    n = 2;
    w = "_R_CHECK_LIMIT_CORES_";
  }
  if (forked && n > 1) {
    n = 1;
    w = "forked process";
  }
  if (n < 1)
    n = 1;
  if (why)
    *why = w;
  return (int)n;
}

int rk_threads_for_work(int nthreads, double work) {
  if (nthreads <= 1 || !(work > 0))
    return 1;
  double k = work / RK_WORK_PER_THREAD;
  if (k < 1)
    return 1;
  return k < (double)nthreads ? (int)k : nthreads;
}

/* ---- the cost model
 * ----------------------------------------------------------- */

static double op_weight(int op) {
  switch (op) {
  case RK_OP_VAR:
  case RK_OP_INTCST:
  case RK_OP_CST:
  case RK_OP_ZERO:
    return 0;
  case RK_OP_EXP:
  case RK_OP_LOG:
  case RK_OP_SIN:
  case RK_OP_COS:
  case RK_OP_TAN:
  case RK_OP_ASIN:
  case RK_OP_ACOS:
  case RK_OP_ATAN:
  case RK_OP_ATAN2:
  case RK_OP_POWF:
  case RK_OP_XLOGX:
  case RK_OP_SINXDIVX:
    return 16;
  case RK_OP_SQRT:
  case RK_OP_RSQRT:
  case RK_OP_INV:
  case RK_OP_DIVIDE:
  case RK_OP_NORM2:
  case RK_OP_NORMALIZE:
  case RK_OP_POW:
    return 4;
  default:
    return 1;
  }
}

void rk_formula_cost(const rk_formula *f, double *pair_cost,
                     size_t *stack_bytes) {
  double cost = 0, comps = 0;
  int n = f && f->ctx ? rk_ctx_nnodes(f->ctx) : 0;
  unsigned char *seen = calloc((size_t)n + 2, 1);
  const rk_node **stack =
      malloc(((size_t)n + 2) * RK_MAX_ARGS * sizeof *stack + sizeof *stack);
  int top = 0;
  if (f && seen && stack) {
    if (f->f)
      stack[top++] = f->f;
    if (f->w)
      stack[top++] = f->w;
    while (top > 0) {
      const rk_node *x = stack[--top];
      if (x->id >= 0 && x->id <= n) {
        if (seen[x->id])
          continue;
        seen[x->id] = 1;
      }
      double in = 0;
      for (int a = 0; a < x->nargs; a++) {
        in += x->args[a]->dim;
        if (top < (n + 1) * RK_MAX_ARGS)
          stack[top++] = x->args[a];
      }
      double size = in > x->dim ? in : x->dim;
      cost += op_weight(x->op) * size;
      comps += x->dim;
    }
  }
  free(seen);
  free(stack);
  double red = f ? (double)(f->f ? f->f->dim : 1) * (f->K > 0 ? f->K : 1) : 1;
  cost += 2 * red;
  if (cost < 1)
    cost = 1;
  if (pair_cost)
    *pair_cost = cost;
  /* the generated kernel keeps at most a value per component of each node
     for two rows at a time (vectors of 32 bytes: rk_v), and reduction
     states on the stack (cg-reduce.c rk_cg_red_decl: value, compensation
     and index arrays of outdim x K, up to 4 live copies): twice that, and
     256 KiB for the rest */
  if (stack_bytes) {
    double b = (comps * 2 * 32 + red * 4 * 24) * 2 + 256.0 * 1024;
    *stack_bytes = b > 1e15 ? (size_t)1e15 : (size_t)b;
  }
}

int rk_cpu_stack_check(const rk_formula *f, rk_error *e) {
  size_t stack;
  rk_formula_cost(f, NULL, &stack);
  if (stack <= RK_STACK_MAX)
    return RK_OK;
  return rk_err(e, RK_ENOMEM, -1,
                "the CPU kernel of this formula would need about %.0f MiB of "
                "stack per thread (the limit is %.0f MiB): its vectors are "
                "too large",
                (double)stack / 1048576.0, (double)RK_STACK_MAX / 1048576.0);
}

/* ---- chunks
 * ------------------------------------------------------------------ */

void rk_chunk_start(rk_chunker *c, int nthreads, int64_t nout, int64_t nred,
                    double pair_cost) {
  double per_row = (double)(nred > 0 ? nred : 1) * pair_cost;
  c->pair_cost = pair_cost;
  c->nred = nred;
  c->nthreads = rk_threads_for_work(nthreads, per_row * (double)nout);
  double rows = RK_CHUNK_FIRST_WORK * c->nthreads / per_row;
  c->rows = rows > 4e18 ? (int64_t)4e18 : (int64_t)rows;
  if (c->rows < c->nthreads)
    c->rows = c->nthreads; /* one row per thread at least */
}

int64_t rk_chunk_rows(rk_chunker *c, int64_t left) {
  int64_t r = c->rows < 1 ? 1 : c->rows;
  return r < left ? r : left;
}

int64_t rk_chunk_grain(const rk_chunker *c, int64_t rows) {
  if (c->nthreads <= 1)
    return rows;
  /* about 8 blocks per thread (the dynamic schedule balances them); a
     block is one kernel call, whose rows share each tile of the reduction
     variables (cg-cpu.c: up to RK_BI rows at a time) */
  int64_t nb = 8 * (int64_t)c->nthreads;
  int64_t g = (rows + nb - 1) / nb;
  return g < 1 ? 1 : g;
}

void rk_chunk_done(rk_chunker *c, int64_t done, double dt) {
  double rate = (double)done / (dt > 1e-6 ? dt : 1e-6); /* rows / s */
  double want = rate * RK_CHUNK_SECONDS;
  double floor_rows = (double)RK_CHUNK_ROWS_PER_THREAD * c->nthreads;
  if (floor_rows > rate * RK_CHUNK_MAX_SECONDS)
    floor_rows = rate * RK_CHUNK_MAX_SECONDS;
  if (want < floor_rows)
    want = floor_rows;
  if (want > 8.0 * (double)done + floor_rows)
    want = 8.0 * (double)done + floor_rows;
  if (want < c->nthreads)
    want = c->nthreads;
  c->rows = want > 4e18 ? (int64_t)4e18 : (int64_t)want + 1;
}

/* ---- the pool
 * ----------------------------------------------------------------- */

typedef struct pool {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int nworkers, cap;
  pthread_t *tid;
  size_t stack;      /* stack size the workers were created with */
  unsigned long gen; /* run number */
  int active;        /* workers taking part in the run (the first ones) */
  int pending;       /* of those, still working */
  int quit;
  /* the run */
  rk_par_fn fn;
  void *ctx;
  int64_t r0, r1, grain, nb;
  int nslots;
  atomic_llong next;
  atomic_int rc;
  atomic_int used;
} pool;

static pool P = {.mu = PTHREAD_MUTEX_INITIALIZER,
                 .go = PTHREAD_COND_INITIALIZER,
                 .done = PTHREAD_COND_INITIALIZER};
static int last_used;
static atomic_flag busy = ATOMIC_FLAG_INIT; /* a run holds the pool */

/* in a forked child: the workers do not exist; leak their table (it may
   be in use by nothing now, but freeing is not worth the risk) */
static void pool_forget(void) {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  P.mu = mu;
  P.go = c;
  P.done = c;
  P.nworkers = 0;
  P.cap = 0;
  P.tid = NULL;
  P.stack = 0;
  P.active = P.pending = 0;
  P.quit = 0;
  atomic_flag_clear(&busy);
}

/* run blocks in slot s: block s first, then the next free ones */
static void work(int s) {
  int ran = 0;
  int64_t b = s;
  while (atomic_load(&P.rc) == 0) {
    if (b >= P.nb)
      break;
    int64_t a = P.r0 + b * P.grain;
    int64_t e = a + P.grain < P.r1 ? a + P.grain : P.r1;
    int rc = P.fn(P.ctx, a, e);
    ran = 1;
    if (rc != 0) {
      int zero = 0;
      atomic_compare_exchange_strong(&P.rc, &zero, rc);
      break;
    }
    b = atomic_fetch_add(&P.next, 1);
  }
  if (ran)
    atomic_fetch_add(&P.used, 1);
}

typedef struct worker_arg {
  int me;
  unsigned long gen; /* the run number when it was created */
} worker_arg;

static void *worker(void *arg) {
  int me = ((worker_arg *)arg)->me;
  unsigned long seen = ((worker_arg *)arg)->gen;
  free(arg);
  pthread_mutex_lock(&P.mu);
  for (;;) {
    while (!P.quit && P.gen == seen)
      pthread_cond_wait(&P.go, &P.mu);
    if (P.quit)
      break;
    seen = P.gen;
    if (me >= P.active)
      continue;
    int slot = P.nslots - P.active + me; /* the caller has slot 0 or none */
    pthread_mutex_unlock(&P.mu);
    work(slot);
    pthread_mutex_lock(&P.mu);
    if (--P.pending == 0)
      pthread_cond_signal(&P.done);
  }
  pthread_mutex_unlock(&P.mu);
  return NULL;
}

/* stop and join every worker (the caller holds no lock) */
static void pool_stop(void) {
  pthread_mutex_lock(&P.mu);
  P.quit = 1;
  pthread_cond_broadcast(&P.go);
  pthread_mutex_unlock(&P.mu);
  for (int i = 0; i < P.nworkers; i++)
    pthread_join(P.tid[i], NULL);
  pthread_mutex_lock(&P.mu);
  P.nworkers = 0;
  P.quit = 0;
  P.stack = 0;
  pthread_mutex_unlock(&P.mu);
}

int rk_thread_start(pthread_t *t, size_t stack, int detached,
                    void *(*fn)(void *), void *arg) {
  pthread_attr_t at;
  int rc = pthread_attr_init(&at);
  if (rc != 0)
    return rc;
  if (stack > 0)
    rc = pthread_attr_setstacksize(&at, stack);
  if (rc == 0 && detached)
    rc = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  if (rc == 0) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t tid;
    rc = pthread_create(&tid, &at, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
      *t = tid;
  }
  pthread_attr_destroy(&at);
  return rc;
}

/* at least want workers with at least stack bytes each; returns how many
   there are (fewer when threads cannot be created) */
static int pool_grow(int want, size_t stack) {
  size_t min = (size_t)8 << 20;
  if (stack < min)
    stack = min;
  long pg = sysconf(_SC_PAGESIZE);
  if (pg > 0)
    stack = (stack + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
  if (P.nworkers > 0 && P.stack < stack)
    pool_stop(); /* recreated below with the larger stack */
  if (want <= P.nworkers)
    return want;
  if (want > P.cap) {
    pthread_t *t = realloc(P.tid, (size_t)want * sizeof *t);
    if (t == NULL)
      return P.nworkers;
    P.tid = t;
    P.cap = want;
  }
  while (P.nworkers < want) {
    worker_arg *a = malloc(sizeof *a);
    if (a == NULL)
      break;
    a->me = P.nworkers;
    /* the worker takes part in the runs after this one (gen is bumped
       under the lock when a run starts) */
    pthread_mutex_lock(&P.mu);
    a->gen = P.gen;
    int rc = rk_thread_start(&P.tid[P.nworkers], stack, 0, worker, a);
    if (rc == 0) {
      P.nworkers++;
      P.stack = stack;
    }
    pthread_mutex_unlock(&P.mu);
    if (rc != 0) {
      free(a);
      break;
    }
  }
  return P.nworkers < want ? P.nworkers : want;
}

static int serial(int64_t r0, int64_t r1, int64_t grain, int64_t nb,
                  rk_par_fn fn, void *ctx) {
  for (int64_t b = 0; b < nb; b++) {
    int64_t a = r0 + b * grain, e = a + grain < r1 ? a + grain : r1;
    int rc = fn(ctx, a, e);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int rk_par_rows(int nthreads, int64_t r0, int64_t r1, int64_t grain,
                size_t stack, rk_par_fn fn, void *ctx) {
  if (r1 <= r0)
    return 0;
  if (grain < 1)
    grain = 1;
  int64_t nb = (r1 - r0 + grain - 1) / grain;
  int caller = stack <= RK_CALLER_STACK;
  if (nthreads < 1)
    nthreads = 1;
  if ((int64_t)nthreads > nb)
    nthreads = (int)nb;
  if (forked && nthreads > 1)
    nthreads = 1;
  /* one run at a time uses the pool: a concurrent caller of the C API
     (another thread) runs alone on its own thread */
  int mine = !atomic_flag_test_and_set(&busy);
  if (!mine) {
    if (!caller)
      return -2;
    nthreads = 1;
  }
  if (nthreads == 1 && caller) { /* no pool */
    if (mine)
      atomic_flag_clear(&busy);
    else
      return serial(r0, r1, grain, nb, fn, ctx);
    last_used = 1;
    return serial(r0, r1, grain, nb, fn, ctx);
  }
  int nw = pool_grow(nthreads - caller, stack);
  if (nw == 0 && !caller) { /* no thread with a stack this large */
    atomic_flag_clear(&busy);
    return -2;
  }
  pthread_mutex_lock(&P.mu);
  P.fn = fn;
  P.ctx = ctx;
  P.r0 = r0;
  P.r1 = r1;
  P.grain = grain;
  P.nb = nb;
  P.nslots = nw + caller;
  atomic_store(&P.next, (long long)P.nslots);
  atomic_store(&P.rc, 0);
  atomic_store(&P.used, 0);
  P.active = nw;
  P.pending = nw;
  P.gen++;
  pthread_cond_broadcast(&P.go);
  pthread_mutex_unlock(&P.mu);
  if (caller)
    work(0);
  pthread_mutex_lock(&P.mu);
  while (P.pending > 0)
    pthread_cond_wait(&P.done, &P.mu);
  P.active = 0;
  pthread_mutex_unlock(&P.mu);
  last_used = atomic_load(&P.used);
  int rc = atomic_load(&P.rc);
  atomic_flag_clear(&busy);
  return rc;
}

int rk_threads_last_used(void) {
  return last_used;
}

int rk_threads_pool_size(void) {
  return P.nworkers;
}

/* ---- interrupts outside reductions ------------------------------------------
 */

static const rk_options *current;

void rk_call_begin(const rk_options *o) {
  current = o;
}
void rk_call_end(void) {
  current = NULL;
}
int rk_call_interrupted(void) {
  return current && current->interrupted &&
         current->interrupted(current->interrupt_data);
}

typedef struct abandonable {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* signalled when fn has returned */
  int finished, abandoned, result;
  int (*fn)(void *);
  void (*done)(void *);
  void *ctx;
} abandonable;

static void *abandonable_main(void *arg) {
  abandonable *a = arg;
  int r = a->fn(a->ctx);
  pthread_mutex_lock(&a->mu);
  a->result = r;
  a->finished = 1;
  int gone = a->abandoned;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  if (gone) { /* nobody waits: clean up */
    a->done(a->ctx);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
  }
  return NULL;
}

int rk_run_abandonable(int (*fn)(void *ctx), void (*done)(void *ctx), void *ctx,
                       int *result) {
  abandonable *a = calloc(1, sizeof *a);
  pthread_t t;
  int started = 0;
  int cv_ok = 0;
  if (a && pthread_mutex_init(&a->mu, NULL) == 0 &&
      (cv_ok = pthread_cond_init(&a->cv, NULL) == 0) == 0)
    pthread_mutex_destroy(&a->mu);
  if (a && cv_ok) {
    a->fn = fn;
    a->done = done;
    a->ctx = ctx;
    started = rk_thread_start(&t, (size_t)16 << 20, 1, abandonable_main, a) == 0;
    if (!started) {
      pthread_cond_destroy(&a->cv);
      pthread_mutex_destroy(&a->mu);
    }
  }
  if (!started) {
    free(a);
    *result = fn(ctx);
    return -1;
  }
  /* wait for fn (woken as soon as it returns), polling the interrupt
     callback every 20 ms */
  for (;;) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec += 1;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->mu);
    if (!a->finished)
      pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    int fin = a->finished;
    pthread_mutex_unlock(&a->mu);
    if (fin)
      break;
    if (rk_call_interrupted()) {
      pthread_mutex_lock(&a->mu);
      fin = a->finished;
      if (!fin)
        a->abandoned = 1;
      pthread_mutex_unlock(&a->mu);
      if (!fin)
        return 1; /* the thread frees a and ctx when fn returns */
      break;
    }
  }
  *result = a->result;
  pthread_cond_destroy(&a->cv);
  pthread_mutex_destroy(&a->mu);
  free(a);
  return 0;
}
