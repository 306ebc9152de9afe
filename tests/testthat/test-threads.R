# test-threads.R -- the thread getter (src/threads.c), the pool and what
# it really used, forked children, huge thread counts and stack-hungry
# formulas (issue 17 items 1-3, issue 9 item 5).

info <- function(ncore = NULL) rkeops:::rk_threads_info(ncore)

gauss_ref <- function(x, y) {
  d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
  rowSums(exp(-d2))
}

gauss_op <- function() {
  keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)), 1)", c("x=Vi(3)", "y=Vj(3)"))
}

test_that("forked children (mcparallel, as mclapply) finish after a 2-thread reduction", {
  skip_on_os("windows")
  local_rk_cpu_only()
  skip_if(info()$available < 2, "one core: no 2-thread reduction to fork from")
  rkeops_use_cpu(2)
  set.seed(17)
  x <- matrix(rnorm(3000), 1000, 3)
  y <- matrix(rnorm(3000), 1000, 3)
  op <- gauss_op()
  r0 <- op(list(x, y))
  expect_equal(r0[, 1], gauss_ref(x, y), tolerance = 1e-12)
  expect_identical(info()$last_used, 2L) # the parent really ran 2 threads
  jobs <- lapply(1:4, function(k) {
    parallel::mcparallel(list(res = op(list(x * k / 4, y)), info = info()))
  })
  pids <- vapply(jobs, function(j) j$pid, 1)
  got <- list()
  deadline <- Sys.time() + 60
  while (length(got) < 4L && Sys.time() < deadline) {
    left <- jobs[!as.character(pids) %in% names(got)]
    r <- parallel::mccollect(left, wait = FALSE, timeout = 1)
    if (!is.null(r)) got[names(r)] <- r
  }
  hung <- setdiff(as.character(pids), names(got))
  if (length(hung) > 0L) { # do not leave hung children behind
    tools::pskill(as.integer(hung), tools::SIGKILL)
    parallel::mccollect(jobs[as.character(pids) %in% hung], wait = FALSE,
                        timeout = 1)
  }
  expect_identical(hung, character(0))
  for (k in 1:4) {
    g <- got[[as.character(pids[k])]]
    expect_true(is.list(g), info = k)
    if (!is.list(g)) next
    expect_equal(g$res[, 1], gauss_ref(x * k / 4, y), tolerance = 1e-12, info = k)
    expect_true(g$info$forked, info = k)
    expect_identical(g$info$last_used, 1L, info = k) # one thread per child
  }
  # the parent's pool still works after the forks
  r1 <- op(list(x, y))
  expect_identical(r1, r0)
  expect_identical(info()$last_used, 2L)
})

test_that("a huge ncore is capped at the cores available, with a warning", {
  local_rk_cpu_only()
  avail <- info()$available
  expect_gte(avail, 1L)
  expect_warning(rkeops_use_cpu(1e9), class = "rkeops_threads_warning")
  expect_identical(get_rkeops_options("ncore"), avail)
  expect_warning(set_rkeops_options(list(ncore = avail + 1)),
                 class = "rkeops_threads_warning")
  expect_identical(get_rkeops_options("ncore"), avail)
  # the engine caps too (C API callers)
  expect_identical(info(1e9)$threads, avail)
  expect_identical(info(.Machine$integer.max - 1)$threads, avail)
  set.seed(2)
  x <- matrix(rnorm(3000), 1000, 3)
  res <- gauss_op()(list(x, x))
  expect_equal(res[, 1], gauss_ref(x, x), tolerance = 1e-12)
  expect_lte(info()$last_used, avail)
  expect_lte(info()$pool, avail)
  expect_no_warning(rkeops_use_cpu(avail))
})

test_that("the getter honours ncore, OMP_NUM_THREADS, OMP_THREAD_LIMIT and _R_CHECK_LIMIT_CORES_", {
  avail <- info()$available
  withr::local_envvar(c(OMP_NUM_THREADS = NA, OMP_THREAD_LIMIT = NA,
                        `_R_CHECK_LIMIT_CORES_` = NA))
  expect_identical(info()$threads, avail)
  expect_identical(info()$why, "available cores")
  expect_identical(info(1)$threads, 1L)
  expect_identical(info(1)$why, "ncore")
  withr::with_envvar(c(OMP_NUM_THREADS = "1"), {
    expect_identical(info()$threads, 1L)
    expect_identical(info()$why, "OMP_NUM_THREADS")
    expect_identical(info(avail)$threads, avail) # ncore wins
  })
  withr::with_envvar(c(OMP_NUM_THREADS = "1,3"), {
    expect_identical(info()$threads, 1L) # the first level
  })
  withr::with_envvar(c(OMP_NUM_THREADS = "junk"), {
    expect_identical(info()$threads, avail) # ignored
  })
  withr::with_envvar(c(OMP_NUM_THREADS = "100000"), {
    expect_identical(info()$threads, avail) # capped
  })
  withr::with_envvar(c(OMP_THREAD_LIMIT = "1"), {
    expect_identical(info(avail)$threads, 1L)
    expect_identical(info()$why, "OMP_THREAD_LIMIT")
  })
  withr::with_envvar(c(`_R_CHECK_LIMIT_CORES_` = "TRUE"), {
    expect_identical(info()$threads, min(avail, 2L))
  })
  expect_false(info()$forked)
})

test_that("the kernel runs on the threads the getter gives (observed)", {
  local_rk_cpu_only()
  skip_if(info()$available < 2, "one core")
  withr::local_envvar(c(OMP_NUM_THREADS = NA, OMP_THREAD_LIMIT = NA,
                        `_R_CHECK_LIMIT_CORES_` = NA))
  set.seed(5)
  x <- matrix(rnorm(6000), 2000, 3)
  y <- matrix(rnorm(6000), 2000, 3)
  op <- gauss_op()
  ref <- gauss_ref(x, y)
  rkeops_use_cpu(2)
  expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
  expect_identical(info()$last_used, 2L)
  rkeops_use_cpu(1)
  expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
  expect_identical(info()$last_used, 1L)
  rkeops_use_cpu()
  withr::with_envvar(c(OMP_NUM_THREADS = "1"), {
    expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
    expect_identical(info()$last_used, 1L)
  })
  withr::with_envvar(c(OMP_THREAD_LIMIT = "1"), {
    rkeops_use_cpu(2)
    expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
    expect_identical(info()$last_used, 1L)
  })
  rkeops_use_cpu()
  expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
  # every core the getter gives may be used, but a 2000 x 2000 sum is cut
  # into chunks by its cost (threads.c rk_chunk_*): on the 16-core H200
  # host it runs on 10 threads, on a 2-core machine on both
  used <- info()$last_used
  expect_gte(used, min(2L, info()$threads))
  expect_lte(used, info()$threads)
})

test_that("small reductions run on one thread", {
  local_rk_cpu_only()
  rkeops_use_cpu(info()$available)
  set.seed(6)
  x <- matrix(rnorm(900), 300, 3)
  y <- matrix(rnorm(900), 300, 3)
  op <- keops_kernel("LogSumExp_Reduction(-SqDist(x, y), 1)", c("x=Vi(3)", "y=Vj(3)"))
  d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
  m <- apply(-d2, 1, max)
  ref <- m + log(rowSums(exp(-d2 - m)))
  expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
  expect_identical(info()$last_used, 1L)
})

test_that("a formula that needs a large stack runs on threads with that stack", {
  local_rk_cpu_only()
  # the kernel keeps the parameter's 1e6 components on its stack (32 MB):
  # a segfault on the 8 MB stack of R's thread before
  D <- 1000000L
  p <- cos(seq_len(D))
  x <- matrix(c(1, 2, 3, 4), 4, 1)
  y <- matrix(c(1, 2, 3), 3, 1)
  op <- keops_kernel("Sum_Reduction(x * y * Sum(p), 1)",
                     c("x=Vi(1)", "y=Vj(1)", sprintf("p=Pm(%d)", D)))
  for (nc in unique(c(1L, min(2L, info()$available)))) {
    rkeops_use_cpu(nc)
    res <- op(list(x, y, p))
    expect_equal(res[, 1], c(1, 2, 3, 4) * 6 * sum(p), tolerance = 1e-9, info = nc)
  }
  # one that would need more than the limit (1 GiB) is refused before it
  # is compiled
  nm <- paste0("p", 1:9)
  op <- keops_kernel(
    sprintf("Sum_Reduction(x * y * Sum(%s), 1)", paste(nm, collapse = " + ")),
    c("x=Vi(1)", "y=Vj(1)", sprintf("%s=Pm(%d)", nm, D))
  )
  n0 <- rkeops:::rk_stats()[["compiles"]]
  expect_error(op(c(list(x, y), rep(list(p), 9))), class = "rkeops_memory_error",
               regexp = "MiB of\\s+stack")
  expect_identical(rkeops:::rk_stats()[["compiles"]], n0)
})

test_that("the configuration reports the thread getter", {
  cfg <- rkeops:::rk_config()
  expect_match(cfg$description, "threads: [0-9]+ by default")
})
