# test-split.R -- partial states: every reduction of red.def (the plan of
# test-reduce-cpu.R: the same formula families, K = 1 and 5, the weighted
# reductions with a weight of dimension 2), over j and over i, computed on
# 1, 2, 3 and 7 ranges of the reduction index and then
#   * chained: each range starts from the states the previous one ended with
#     (the kernel's states in / out), or
#   * merged: each range from the empty state, the states merged in point
#     order (the backend's merge),
# compared with the unsplit run of the same kernel.
# Expected on the CPU:
#   * chained: bit for bit for every reduction (a fold of one point at a time
#     does not see where the ranges are); Sum too when the ranges are cut at
#     multiples of the kernel's tile (its partial sums are then the same);
#   * merged: bit for bit for the order-based reductions (Min, Max, Arg*,
#     KMin & co); for Sum, cut at tiles, within one ulp of the largest
#     result per tile (not per merge: a merge reassociates every addition
#     after the cut, so one merge already gives 2 ulp on these data); for
#     the LogSumExp family and for cuts
#     anywhere the sums are reassociated, so within 1e-12 relative (the
#     tolerance of the table-driven tests against dense R).
# On the GPU (RKEOPS_TEST_BACKEND=GPU) the unsplit run may itself split the
# reduction over blocks: order-based reductions bit for bit, sums within
# 1e-12 (float64).

split_plan <- list(
  Sum = list(fam = "smooth"), Min = list(fam = "discrete"),
  Max = list(fam = "smooth"), ArgMin = list(fam = "discrete"),
  ArgMax = list(fam = "discrete"), Min_ArgMin = list(fam = "discrete"),
  Max_ArgMax = list(fam = "discrete"), KMin = list(fam = "discrete", K = c(1, 5)),
  ArgKMin = list(fam = "discrete", K = c(1, 5)),
  KMin_ArgKMin = list(fam = "discrete", K = c(1, 5)),
  LogSumExp = list(fam = "smooth", d = 1), LogSumExpWeight = list(fam = "smooth", d = 1, e = 2),
  SumSoftMaxWeight = list(fam = "smooth", d = 1, e = 2))
split_fams <- list(
  smooth = list(f = "Sin(x + y) + x * y", gen = function(n, d) rdata(n, d, "real")),
  discrete = list(f = "Square(x - y)",
                  gen = function(n, d) matrix(as.double(sample(0:15, n * d, TRUE)), n, d)))

op_prepare <- function(formula, args, input) {
  p <- rkeops:::rk_parse(formula, args, "auto")
  .Call(rkeops:::ffi_op_prepare, p$ptr, input, rkeops:::rk_core_options())
}
op_info <- function(op) {
  i <- .Call(rkeops:::ffi_op_info, op)
  list(nout = i[1], nred = i[2], S = i[3], granule = i[4])
}
op_run <- function(op, rows, js, states = NULL, want_states = FALSE) {
  .Call(rkeops:::ffi_op_run, op, as.double(rows), as.double(js), -1L, NULL,
        states, want_states)
}
op_merge <- function(op, states, finalize = TRUE) {
  .Call(rkeops:::ffi_op_merge, op, states, finalize)
}

# k ranges of [0, n): cut anywhere, or at multiples of g
cuts <- function(n, k, g = 1) {
  b <- unique(c(0, round(seq(0, n, length.out = k + 1)[-c(1, k + 1)] / g) * g, n))
  b <- sort(unique(pmin(pmax(b, 0), n)))
  cbind(head(b, -1), tail(b, -1))
}

ulp <- function(x) 2^(floor(log2(pmax(abs(x), 2^-1000))) - 52)

test_that("ranges cover the reduction index", {
  expect_identical(cuts(10, 1), cbind(0, 10))
  expect_identical(nrow(cuts(1001, 7)), 7L)
  r <- cuts(7181, 3, 1024)
  expect_true(all(r[-nrow(r), 2] %% 1024 == 0))
  expect_identical(r[1, 1], 0)
  expect_identical(r[nrow(r), 2], 7181)
})

for (red in names(split_plan)) {
  local({
    red <- red
    plan <- split_plan[[red]]
    test_that(sprintf("%s_Reduction split in 1, 2, 3, 7 ranges of j merges exactly", red), {
      set.seed(3000 + match(red, names(split_plan)))
      local_rk_cpu()
      gpu <- test_backend() == "GPU"
      order_based <- red %in% order_reds
      Ks <- if (is.null(plan$K)) list(NULL) else as.list(plan$K)
      d <- if (is.null(plan$d)) 3 else plan$d
      fm <- split_fams[[plan$fam]]
      for (axis in c(1, 0)) for (K in Ks) {
        # 23 output rows, 4099 reduction points: several tiles, not a
        # multiple of any
        nI <- if (axis == 1) 23 else 4099
        nJ <- if (axis == 1) 4099 else 23
        nout <- 23
        nred <- 4099
        args <- c(sprintf("x=Vi(%d)", d), sprintf("y=Vj(%d)", d))
        input <- list(fm$gen(nI, d), fm$gen(nJ, d))
        if (!is.null(plan$e)) {
          args <- c(args, sprintf("g=%s(%d)", if (axis == 1) "Vj" else "Vi", plan$e))
          input <- c(input, list(rdata(nred, plan$e, "posw")))
        }
        formula <- red_formula(red, fm$f, axis, K = K, weight = if (!is.null(plan$e)) "g")
        op <- op_prepare(formula, args, input)
        info <- op_info(op)
        expect_identical(c(info$nout, info$nred), c(nout, nred), info = formula)
        full <- op_run(op, c(0, nout), c(0, nred))
        # the operator computes what keops_kernel computes
        expect_identical(full, keops_kernel(formula, args)(input), info = formula)
        for (k in c(1, 2, 3, 7)) for (aligned in c(TRUE, FALSE)) {
          r <- cuts(nred, k, if (aligned) info$granule else 1)
          label <- sprintf("%s, %d ranges%s", formula, nrow(r),
                           if (aligned) " cut at tiles" else "")
          st <- NULL
          parts <- vector("list", nrow(r))
          for (q in seq_len(nrow(r))) {
            st <- op_run(op, c(0, nout), r[q, ], states = st, want_states = TRUE)
            parts[[q]] <- op_run(op, c(0, nout), r[q, ], want_states = TRUE)
          }
          expect_identical(dim(st), c(as.integer(nout), as.integer(info$S)), info = label)
          chained <- op_merge(op, list(st))
          merged <- op_merge(op, parts)
          # finalising in the run (states in, results out) is the same
          last <- nrow(r)
          st_prev <- if (last > 1) {
            s <- NULL
            for (q in seq_len(last - 1)) s <- op_run(op, c(0, nout), r[q, ], states = s, want_states = TRUE)
            s
          }
          fin <- op_run(op, c(0, nout), r[last, ], states = st_prev)
          expect_identical(fin, chained, info = paste(label, "states in, results out"))
          if (order_based) {
            expect_identical(chained, full, info = paste(label, "chained"))
            expect_identical(merged, full, info = paste(label, "merged"))
          } else if (!gpu && (red != "Sum" || aligned)) {
            expect_identical(chained, full, info = paste(label, "chained"))
            if (red == "Sum") {
              # the tile sums are the same; adding them as (A) + (B + C)
              # instead of (A + B) + C rounds each later addition anew:
              # at most one ulp per tile (one merge alone gives 2 here)
              ntiles <- ceiling(nred / info$granule)
              dev <- max(abs(merged - full) / ulp(max(abs(full))))
              expect_true(dev <= ntiles, info = sprintf(
                "%s merged: %.1f ulp for %d tiles", label, dev, ntiles))
            } else {
              expect_close(merged, full, 1e-12, paste(label, "merged"))
            }
          } else {
            expect_close(chained, full, 1e-12, paste(label, "chained"))
            expect_close(merged, full, 1e-12, paste(label, "merged"))
          }
        }
      }
    })
  })
}

test_that("a part of the output rows is the same rows of the full result", {
  local_rk_cpu()
  set.seed(3100)
  X <- rdata(300, 2); Y <- rdata(500, 2)
  op <- op_prepare("ArgKMin_Reduction(SqDist(x, y), 3, 1)", c("x=Vi(2)", "y=Vj(2)"),
                   list(X, Y))
  full <- op_run(op, c(0, 300), c(0, 500))
  expect_identical(op_run(op, c(17, 230), c(0, 500)), full[18:230, , drop = FALSE])
  expect_identical(dim(op_run(op, c(5, 5), c(0, 500))), c(0L, 3L))
  # and a dense reference for the indices
  D <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  ref <- t(apply(D, 1, function(v) order(v)[1:3]))
  expect_identical(unname(full) + 0, unname(ref) + 0)
})

test_that("bad ranges and states are refused with classed errors", {
  local_rk_cpu()
  op <- op_prepare("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"),
                   list(matrix(1:4 + 0, 4), matrix(1:3 + 0, 3)))
  expect_error(op_run(op, c(0, 5), c(0, 3)), class = "rkeops_input_error")
  expect_error(op_run(op, c(2, 1), c(0, 3)), class = "rkeops_input_error")
  expect_error(op_run(op, c(0, 4), c(0, 4)), class = "rkeops_input_error")
  expect_error(op_run(op, c(0, 4), c(0, 3), states = matrix(0, 3, 1)),
               class = "rkeops_input_error")
  expect_error(op_merge(op, list(matrix(0, 4, 1), matrix(0, 3, 1))),
               class = "rkeops_input_error")
  # Sum of x * y: states are the partial sums
  s1 <- op_run(op, c(0, 4), c(0, 2), want_states = TRUE)
  expect_identical(as.vector(s1), (1:4) * 3)
  expect_identical(as.vector(op_merge(op, list(s1, op_run(op, c(0, 4), c(2, 3), want_states = TRUE)))),
                   (1:4) * 6 + 0)
})
