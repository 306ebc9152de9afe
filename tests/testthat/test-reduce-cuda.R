# test-reduce-cuda.R -- every reduction of src/red.def on the GPU, against
# the CPU float64 results (skipped without a usable GPU).  Sizes cross the
# tile and register-block boundaries and exercise the reduction split over
# blockIdx.y (few output rows) with its merge kernel; both axes; float64
# (relative error <= 1e-10) and float32 (<= 1e-4 against float64 on the
# same float32-rounded inputs; discrete data give exact values and indices).

gpu_count <- function() {
  tryCatch(rkeops:::rk_config()$gpu_count, error = function(e) 0L)
}
skip_if_no_gpu <- function() skip_if(gpu_count() < 1L, "no usable GPU")

# a reader of one field of ffi_cuda_meminfo() (device 0: "held",
# "pipelined", "parts", ...); skips the test without a GPU or the entry
cuda_counter <- function(field) {
  skip_if_no_gpu()
  skip_if_not(exists("ffi_cuda_meminfo", asNamespace("rkeops")),
              "ffi_cuda_meminfo is not registered")
  function() .Call(rkeops:::ffi_cuda_meminfo, 0L)[[field]]
}

local_backend <- function(backend, prec, envir = parent.frame()) {
  local_rk_options(envir)
  if (backend == "GPU") rkeops::rkeops_use_gpu(0) else rkeops::rkeops_use_cpu()
  if (prec == 32) rkeops::rkeops_use_float32() else rkeops::rkeops_use_float64()
}

on_backend <- function(backend, prec, formula, args, input) {
  local_backend(backend, prec)
  keops_kernel(formula, args)(input)
}

cuda_reds <- list(
  Sum = list(f = "Sum_Reduction(Sin(x + y) + x * y, %d)", disc = FALSE),
  Min = list(f = "Min_Reduction(Square(x - y), %d)", disc = TRUE),
  Max = list(f = "Max_Reduction(Square(x - y), %d)", disc = TRUE),
  ArgMin = list(f = "ArgMin_Reduction(Square(x - y), %d)", disc = TRUE),
  ArgMax = list(f = "ArgMax_Reduction(Square(x - y), %d)", disc = TRUE),
  Min_ArgMin = list(f = "Min_ArgMin_Reduction(Square(x - y), %d)", disc = TRUE),
  Max_ArgMax = list(f = "Max_ArgMax_Reduction(Square(x - y), %d)", disc = TRUE),
  KMin = list(f = "KMin_Reduction(Square(x - y), 5, %d)", disc = TRUE),
  ArgKMin = list(f = "ArgKMin_Reduction(Square(x - y), 5, %d)", disc = TRUE),
  KMin_ArgKMin = list(f = "KMin_ArgKMin_Reduction(Square(x - y), 3, %d)", disc = TRUE),
  LogSumExp = list(f = "LogSumExp_Reduction(Sum(Sin(x + y)), %d)", disc = FALSE),
  LogSumExpWeight = list(f = "LogSumExpWeight_Reduction(Sum(Sin(x + y)), g, %d)",
                         disc = FALSE),
  SumSoftMaxWeight = list(f = "SumSoftMaxWeight_Reduction(Sum(Sin(x + y)), g, %d)",
                          disc = FALSE)
)

cuda_sizes <- list(c(1, 7), c(7, 1001), c(1001, 7), c(3000, 2049), c(50, 40000))

test_that("every reduction on the GPU agrees with the CPU in float64", {
  skip_if_no_gpu()
  set.seed(501)
  for (red in names(cuda_reds)) {
    spec <- cuda_reds[[red]]
    for (sz in cuda_sizes) {
      for (axis in 0:1) {
        M <- sz[1]
        N <- sz[2]
        if (grepl("KMin", red) && (if (axis == 1) N else M) < 5) next
        gen <- function(n) {
          if (spec$disc) matrix(as.double(sample(0:15, n * 3, TRUE)), n, 3)
          else matrix(runif(n * 3, -2, 2), n, 3)
        }
        X <- gen(M)
        Y <- gen(N)
        G <- matrix(runif((if (axis == 1) N else M) * 2, 0.5, 2), ncol = 2)
        args <- c("x=Vi(3)", "y=Vj(3)",
                  sprintf("g=%s(2)", if (axis == 1) "Vj" else "Vi"))
        formula <- sprintf(spec$f, axis)
        input <- list(X, Y, G)
        ref <- on_backend("CPU", 64, formula, args, input)
        for (prec in c(64, 32)) {
          inp <- if (prec == 32) lapply(input, f32) else input
          ref_p <- if (prec == 32) on_backend("CPU", 64, formula, args, inp) else ref
          got <- on_backend("GPU", prec, formula, args, inp)
          label <- sprintf("%s [M=%d N=%d float%d]", formula, M, N, prec)
          expect_equal(dim(got), dim(ref_p), label = label)
          if (spec$disc) {
            expect_identical(got, ref_p, label = label)
          } else {
            tol <- if (prec == 64) 1e-10 else 1e-4
            expect_close(got, ref_p, tol, label)
          }
        }
      }
    }
  }
})

test_that("the three sum schemes and parameters on the GPU", {
  skip_if_no_gpu()
  set.seed(502)
  X <- matrix(runif(3000), 1000, 3)
  Y <- matrix(runif(6000), 2000, 3)
  B <- matrix(runif(4000), 2000, 2)
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)", "s=Pm(1)")
  formula <- "Sum_Reduction(Exp(-s * SqDist(x, y)) * b, 1)"
  input <- list(X, Y, B, 0.7)
  ref <- on_backend("CPU", 64, formula, args, input)
  for (scheme in c("direct_sum", "block_sum", "kahan_scheme")) {
    local_backend("GPU", 64)
    got <- keops_kernel(formula, args, sum_scheme = scheme)(input)
    expect_close(got, ref, 1e-10, scheme)
    local_backend("GPU", 32)
    got <- keops_kernel(formula, args, sum_scheme = scheme)(input)
    expect_close(got, ref, 1e-4, paste(scheme, "float32"))
  }
})

test_that("float32 block_sum on the GPU: accurate, and from states as from scratch", {
  skip_if_no_gpu()
  set.seed(503)
  # a wide kernel: every one of the 3e5 terms counts, and float32 direct
  # summation loses about 1e-5 of the sum.  One part over j
  # (RKEOPS_CUDA_PARTS, read per call): few rows would otherwise split the
  # sum over blockIdx.y into parts merged in double, which makes even
  # direct_sum accurate
  withr::local_envvar(RKEOPS_CUDA_PARTS = "1")
  X <- matrix(runif(60), 20, 3)
  Y <- matrix(runif(9e5), 3e5, 3)
  B <- runif(3e5)
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "s=Pm(1)")
  formula <- "Sum_Reduction(Exp(-s * SqDist(x, y)) * b, 1)"
  # the reference on the float32-rounded inputs, in float64
  input <- list(f32(X), f32(Y), f32(B), 1)
  ref <- on_backend("CPU", 64, formula, args, input)
  rel <- function(got) max(abs(got - ref)) / max(abs(ref))
  local_backend("GPU", 32)
  direct <- rel(keops_kernel(formula, args, sum_scheme = "direct_sum")(input))
  for (tsum in c("1", "2")) {
    withr::local_envvar(RKEOPS_CUDA_TSUM = tsum)
    got <- keops_kernel(formula, args, sum_scheme = "block_sum")(input)
    expect_lt(rel(got), 1e-6, label = paste("block_sum, RKEOPS_CUDA_TSUM", tsum))
    expect_lt(rel(got) * 10, direct, label = paste("block_sum against direct_sum", tsum))
    # a run continued from the states of earlier ranges of points (the
    # kernel reads its accumulators in) gives the sum of a whole run
    p <- rkeops:::rk_parse(formula, args, "block_sum")
    op <- .Call(rkeops:::ffi_op_prepare, p$ptr, input, rkeops:::rk_core_options())
    op_run <- function(op, rows, js, states = NULL, want_states = FALSE) {
      .Call(rkeops:::ffi_op_run, op, as.double(rows), as.double(js), -1L, NULL,
            states, want_states)
    }
    st <- NULL
    cut <- c(0, 65536, 140000, 3e5)
    for (q in 1:2) st <- op_run(op, c(0, 20), cut[q + 0:1], states = st, want_states = TRUE)
    fin <- op_run(op, c(0, 20), cut[3:4], states = st)
    expect_lt(rel(fin), 1e-6, label = paste("block_sum from states, RKEOPS_CUDA_TSUM", tsum))
  }
})

test_that("inner_dim = 'row' and a second call reuse the kernel", {
  skip_if_no_gpu()
  local_backend("GPU", 64)
  set.seed(503)
  X <- matrix(runif(300), 100, 3)
  Y <- matrix(runif(600), 200, 3)
  op <- keops_kernel("Sum_Reduction(SqDist(x, y) * y, 1)", c("x=Vi(3)", "y=Vj(3)"))
  a <- op(list(X, Y))
  n0 <- rkeops:::rk_stats()[1]
  b <- op(list(t(X), t(Y)), inner_dim = "row")
  expect_equal(rkeops:::rk_stats()[1], n0)
  expect_close(a, b, 1e-12, "row layout")
})

# the device memory this process holds (cuMemAlloc'ed pools and bound data:
# "held"), not the device's free memory, which other processes running at
# the same time change (tools/device-run.sh runs the test files in
# parallel); bench/gpu.R, which runs alone, checks the free memory after
# 1000 calls
test_that("repeated GPU calls leave the device memory held where it was", {
  held <- cuda_counter("held")
  local_backend("GPU", 32)
  X <- matrix(runif(3e4), 1e4, 3)
  Y <- matrix(runif(3e4), 1e4, 3)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)), 1)", c("x=Vi(3)", "y=Vj(3)"))
  op(list(X, Y))
  m0 <- held()
  expect_gt(m0, 0)
  for (k in 1:200) op(list(X, Y))
  expect_equal(held(), m0)
  # a call 100 times larger grows the pool (the count follows it), and
  # repeated calls after it hold no more than it did
  big <- matrix(runif(3e6), 1e6, 3)
  op(list(big, Y))
  m1 <- held()
  expect_gt(m1, m0)
  for (k in 1:50) op(list(X, Y))
  expect_equal(held(), m1)
})

test_that("blocks over i and j (small memory budget) combine exactly", {
  skip_if_no_gpu()
  # about 300 kB of device memory: 2 to 8 blocks over i, 8 to 32 over j
  withr::local_envvar(RKEOPS_CUDA_MEMORY_LIMIT = "300000")
  set.seed(504)
  M <- 3000
  N <- 60000
  X <- matrix(runif(M * 3, -2, 2), M, 3)
  Y <- matrix(runif(N * 3, -2, 2), N, 3)
  Xd <- matrix(as.double(sample(0:15, M * 3, TRUE)), M, 3)
  Yd <- matrix(as.double(sample(0:15, N * 3, TRUE)), N, 3)
  G <- matrix(runif(N * 2, 0.5, 2), N, 2)
  args <- c("x=Vi(3)", "y=Vj(3)", "g=Vj(2)")
  cases <- list(
    list(f = "Sum_Reduction(Sin(x + y) + x * y, 1)", d = FALSE),
    list(f = "Max_ArgMax_Reduction(Square(x - y), 1)", d = TRUE),
    list(f = "ArgKMin_Reduction(Square(x - y), 5, 1)", d = TRUE),
    list(f = "KMin_ArgKMin_Reduction(Square(x - y), 3, 1)", d = TRUE),
    list(f = "LogSumExp_Reduction(Sum(Sin(x + y)), 1)", d = FALSE),
    list(f = "SumSoftMaxWeight_Reduction(Sum(Sin(x + y)), g, 1)", d = FALSE))
  for (cs in cases) {
    input <- if (cs$d) list(Xd, Yd, G) else list(X, Y, G)
    ref <- on_backend("CPU", 64, cs$f, args, input)
    got <- on_backend("GPU", 64, cs$f, args, input)
    if (cs$d) expect_identical(got, ref, label = cs$f)
    else expect_close(got, ref, 1e-10, cs$f)
  }
})

test_that("inner variables wider than a shared-memory tile: values of dense R", {
  skip_if_no_gpu()
  set.seed(7)
  for (d in c(500L, 1200L)) {
    x <- matrix(rnorm(300 * d, sd = 1 / sqrt(d)), 300)
    y <- matrix(rnorm(700 * d, sd = 1 / sqrt(d)), 700)
    b <- matrix(rnorm(700), 700)
    d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
    args <- c(sprintf("x=Vi(%d)", d), sprintf("y=Vj(%d)", d), "b=Vj(1)")
    got <- on_backend("GPU", 64, "Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                      args, list(x, y, b))
    expect_equal(got, exp(-d2) %*% b, tolerance = 1e-10, label = sprintf("Sum d = %d", d))
    got <- on_backend("GPU", 64, "ArgKMin_Reduction(SqDist(x, y), 3, 0)",
                      args[1:2], list(x, y))
    want <- t(apply(d2, 2, function(r) order(r)[1:3]))
    expect_equal(unname(got), want, label = sprintf("ArgKMin d = %d", d))
    got <- on_backend("GPU", 32, "Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                      args, list(x, y, b))
    expect_equal(got, exp(-d2) %*% b, tolerance = 1e-4, label = sprintf("Sum f32 d = %d", d))
  }
})

test_that("large inputs and results go through the page-locked staging buffers, exactly", {
  skip_if_no_gpu()
  set.seed(505)
  f <- "Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)"
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(4)")
  N <- 300
  Y <- matrix(runif(N * 3), N, 3)
  B <- matrix(runif(N * 4), N, 4)
  # growing, then smaller (the buffers grow, then are reused), both
  # precisions (float32: the inputs are converted into the staging buffer;
  # results of more than 1 MB come back through the device's), both layouts
  for (M in c(1e5, 3e5, 4e4)) {
    X <- matrix(runif(M * 3), M, 3)
    ref <- on_backend("CPU", 64, f, args, list(X, Y, B))
    for (prec in c(32, 64)) {
      got <- on_backend("GPU", prec, f, args, list(X, Y, B))
      tol <- if (prec == 32) 1e-5 else 1e-12
      expect_close(got, ref, tol, sprintf("M = %g, float%d", M, prec))
      local_backend("GPU", prec)
      gotr <- keops_kernel(f, args)(list(t(X), t(Y), t(B)), inner_dim = "row")
      expect_close(gotr, ref, tol, sprintf("M = %g, float%d, rows", M, prec))
    }
  }
  # blocks of rows (a small device budget): each block's results land at
  # their rows
  withr::local_envvar(RKEOPS_CUDA_MEMORY_LIMIT = "4000000")
  M <- 2e5
  X <- matrix(runif(M * 3), M, 3)
  ref <- on_backend("CPU", 64, f, args, list(X, Y, B))
  expect_close(on_backend("GPU", 32, f, args, list(X, Y, B)), ref, 1e-5,
               "blocks of rows, float32")
  expect_close(on_backend("GPU", 64, f, args, list(X, Y, B)), ref, 1e-12,
               "blocks of rows, float64")
})

# pipelined calls (be-cuda.c run_pipe): the rows of a call in chunks whose
# copies in, kernels and copies out overlap on two streams.  Forced
# (RKEOPS_CUDA_PIPE=1) on calls too small for the default rule, each
# result must equal that of one block (RKEOPS_CUDA_PIPE=0) exactly and the
# CPU's float64 values within the usual tolerances; the counter of
# pipelined calls (ffi_cuda_meminfo) tells that the pipeline ran
test_that("pipelined calls: chunks of rows give the results of one block", {
  piped <- cuda_counter("pipelined")
  set.seed(506)
  M <- 200003 # uneven chunks
  N <- 777
  cases <- list(
    list(f = "Sum_Reduction(Exp(-SqDist(x, y)) * b, %d)", disc = FALSE),
    list(f = "KMin_Reduction(SqDist(x, y), 4, %d)", disc = TRUE),
    list(f = "ArgKMin_Reduction(SqDist(x, y), 4, %d)", disc = TRUE)
  )
  for (cs in cases) {
    for (axis in 0:1) {
      gen <- function(n) {
        if (cs$disc) matrix(as.double(sample(0:40, n * 3, TRUE)), n, 3)
        else matrix(runif(n * 3), n, 3)
      }
      nout <- if (axis == 1) M else N
      nred <- if (axis == 1) N else M
      # the outer points are the many ones
      if (axis == 1) {
        X <- gen(M); Y <- gen(N)
        args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)")
        B <- matrix(runif(N * 2), N, 2)
      } else {
        X <- gen(N); Y <- gen(M)
        args <- c("x=Vi(3)", "y=Vj(3)", "b=Vi(2)")
        B <- matrix(runif(N * 2), N, 2)
      }
      f <- sprintf(cs$f, axis)
      inp <- if (grepl("Sum", f)) list(X, Y, B) else list(X, Y)
      if (!grepl("Sum", f)) args <- args[1:2]
      ref <- on_backend("CPU", 64, f, args, inp)
      for (prec in c(32, 64)) {
        withr::with_envvar(c(RKEOPS_CUDA_PIPE = "0"), {
          n0 <- piped()
          one <- on_backend("GPU", prec, f, args, inp)
          expect_equal(piped(), n0)
        })
        withr::with_envvar(c(RKEOPS_CUDA_PIPE = "1"), {
          n0 <- piped()
          got <- on_backend("GPU", prec, f, args, inp)
          expect_equal(piped(), n0 + 1)
        })
        lab <- sprintf("%s, float%d", f, prec)
        expect_identical(got, one, label = lab)
        if (cs$disc) {
          expect_identical(got, ref, label = lab)
        } else {
          expect_close(got, ref, if (prec == 32) 1e-5 else 1e-12, lab)
        }
      }
    }
  }
  # the inner points go in before the chunks (on lane 0 by the legacy
  # stream, whose copies from pageable memory return before the DMA lands:
  # the chunks must wait for them).  float64 (R's memory, pageable), a new
  # y each call: a kernel that ran before its y landed would see the last
  # call's y in the pool
  local_backend("GPU", 64)
  nnk <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 3, 1)", c("x=Vi(3)", "y=Vj(3)"))
  X <- matrix(runif(3 * 150001), 150001, 3)
  for (k in 1:6) {
    Y <- matrix(runif(3 * 60000), 60000, 3)
    withr::with_envvar(c(RKEOPS_CUDA_PIPE = "0"), one <- nnk(list(X, Y)))
    withr::with_envvar(c(RKEOPS_CUDA_PIPE = "1"), got <- nnk(list(X, Y)))
    expect_identical(got, one, label = sprintf("new inner points, call %d", k))
  }
  # the default rule: the skewed shape (1e6 rows, 1e3 points) runs
  # pipelined; one point (a trivial kernel) and a small call do not
  f <- "Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)"
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")
  X <- matrix(runif(3e6), 1e6, 3)
  Y1 <- matrix(runif(3e3), 1e3, 3)
  B1 <- matrix(runif(1e3), 1e3, 1)
  local_backend("GPU", 32)
  op <- keops_kernel(f, args)
  n0 <- piped()
  got <- op(list(X, Y1, B1))
  expect_equal(piped(), n0 + 1)
  i <- sample(1e6, 200)
  dense <- exp(-outer(rowSums(X[i, ]^2), rowSums(Y1^2), "+") +
                 2 * X[i, ] %*% t(Y1)) %*% B1
  expect_close(got[i, , drop = FALSE], dense, 1e-5, "skewed shape, float32")
  op(list(X, Y1[1, , drop = FALSE], B1[1, , drop = FALSE]))
  op(list(X[1:1000, ], Y1, B1))
  expect_equal(piped(), n0 + 1)
})

# tiers (run.c tier_kernel, with RKEOPS_CUDA_QUICK=1): the first small call
# of a new formula gets a quick kernel (NVRTC -Ofast-compile=mid, "/fast-mid" in its target), a
# larger call or enough work the fully optimised one, compiled once; the
# verbose messages tell which was compiled, the values are those of the CPU
test_that("a new formula's small calls take a quick kernel, larger work the full one", {
  skip_if_no_gpu()
  d <- rkeops:::rk_config()$description
  v <- regmatches(d, regexpr("NVRTC: [0-9]+\\.[0-9]+", d))
  nv <- if (length(v)) as.numeric(sub("NVRTC: ", "", v)) else 0
  skip_if(nv < 12.8, "NVRTC before 12.8: no -Ofast-compile")
  local_backend("GPU", 32)
  withr::local_envvar(RKEOPS_NVRTC_FAST = NA, RKEOPS_CUDA_QUICK = "1")
  rkeops::set_rkeops_options(list(verbosity = TRUE))
  set.seed(as.integer(Sys.time()) %% 100000L)
  fresh <- function() {
    # a new constant factor: a formula no cache holds, values of the same
    # conditioning whatever it is
    sprintf("Sum_Reduction(Exp(-SqDist(x, y)) * b * IntCst(%d), 1)",
            sample.int(1e6, 1) + 3e6)
  }
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")
  compiles <- function(expr) {
    m <- testthat::capture_messages(val <- force(expr))
    list(val = val, comp = grep("compiling the CUDA kernel", m, value = TRUE))
  }
  ref <- function(f, X, Y, B) on_backend("CPU", 64, f, args, list(X, Y, B))
  f <- fresh()
  op <- keops_kernel(f, args)
  X <- matrix(runif(30), 10, 3) / 4
  B <- matrix(runif(10), 10, 1)
  r <- compiles(op(list(X, X, B)))
  expect_length(r$comp, 1)
  expect_match(r$comp, "fast-mid", fixed = TRUE)
  expect_close(r$val, ref(f, X, X, B), 1e-5, "quick kernel")
  expect_length(compiles(op(list(X, X, B)))$comp, 0)
  # 1.6e7 pairs: the full kernel
  Xl <- matrix(runif(12000), 4000, 3) / 4
  Bl <- matrix(runif(4000), 4000, 1)
  r <- compiles(op(list(Xl, Xl, Bl)))
  expect_length(r$comp, 1)
  expect_no_match(r$comp, "fast-", fixed = TRUE)
  expect_close(r$val, ref(f, Xl, Xl, Bl), 1e-5, "full kernel")
  # small calls now take the loaded full kernel
  r <- compiles(op(list(X, X, B)))
  expect_length(r$comp, 0)
  expect_close(r$val, ref(f, X, X, B), 1e-5, "full kernel, small call")
  # many small calls: after 2e9 pairs through the quick kernel, the full one
  f2 <- fresh()
  op2 <- keops_kernel(f2, args)
  Xm <- matrix(runif(9000), 3000, 3) / 4
  Bm <- matrix(runif(3000), 3000, 1)
  comp <- character(0)
  for (k in 1:240) comp <- c(comp, compiles(op2(list(Xm, Xm, Bm)))$comp)
  expect_length(comp, 2)
  expect_match(comp[1], "fast-mid", fixed = TRUE)
  expect_no_match(comp[2], "fast-", fixed = TRUE)
  expect_close(op2(list(Xm, Xm, Bm)), ref(f2, Xm, Xm, Bm), 1e-5, "after the budget")
  # by default (RKEOPS_CUDA_QUICK unset) and with 0: no tiers
  for (q in list(NA, "0")) {
    withr::local_envvar(RKEOPS_CUDA_QUICK = q)
    r <- compiles(keops_kernel(fresh(), args)(list(X, X, B)))
    expect_length(r$comp, 1)
    expect_no_match(r$comp, "fast-", fixed = TRUE)
  }
})

# the reduction parts (be-cuda.c choose_parts): RKEOPS_CUDA_PARTS_EXACT=n
# runs exactly n parts (at most one a whole tile of 256 points: 78 here), which
# ffi_cuda_meminfo()'s `parts` reports; every count gives the CPU's values
# (a Sum within float32 rounding, an ArgKMin on integer data exactly)
test_that("RKEOPS_CUDA_PARTS_EXACT: the parts run, and their values agree", {
  parts <- cuda_counter("parts")
  set.seed(507)
  M <- 3001
  N <- 20011 # 78 whole tiles of 256 points
  X <- matrix(runif(M * 3), M, 3); Y <- matrix(runif(N * 3), N, 3)
  B <- matrix(runif(N), N, 1)
  fs <- "Sum_Reduction(Exp(-SqDist(x, y) * IntCst(4)) * b, 1)"
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")
  ref <- on_backend("CPU", 64, fs, args, list(X, Y, B))
  Xd <- matrix(as.double(sample(0:30, M * 3, TRUE)), M, 3)
  Yd <- matrix(as.double(sample(0:30, N * 3, TRUE)), N, 3)
  fk <- "ArgKMin_Reduction(SqDist(x, y), 5, 1)"
  refk <- on_backend("CPU", 64, fk, args[1:2], list(Xd, Yd))
  for (np in c(1L, 2L, 7L, 78L, 500L)) {
    withr::with_envvar(c(RKEOPS_CUDA_PARTS_EXACT = as.character(np)), {
      got <- on_backend("GPU", 32, fs, args, list(X, Y, B))
      expect_equal(parts(), min(np, 78L), label = sprintf("Sum, %d parts", np))
      expect_close(got, ref, 1e-5, sprintf("Sum, %d parts", np))
      gotk <- on_backend("GPU", 32, fk, args[1:2], list(Xd, Yd))
      expect_equal(parts(), min(np, 78L), label = sprintf("ArgKMin, %d parts", np))
      expect_identical(gotk, refk, label = sprintf("ArgKMin, %d parts", np))
    })
  }
})
