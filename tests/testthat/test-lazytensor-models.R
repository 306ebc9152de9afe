# test-lazytensor-models.R -- whole models written with LazyTensors, checked
# end to end against independent dense R code (and FNN for kNN).

lt_models_f64 <- function(envir = parent.frame()) {
  old <- rkeops::get_rkeops_options()
  withr::defer(rkeops::set_rkeops_options(old), envir = envir)
  rkeops::set_rkeops_options(list(precision = "float64", formula_only = FALSE))
  invisible(old)
}

# dense squared distances between the rows of A and of B
lt_sqdist_dense <- function(A, B) {
  outer(seq_len(nrow(A)), seq_len(nrow(B)),
        Vectorize(function(i, j) sum((A[i, ] - B[j, ])^2)))
}

test_that("K-means: the assignment and update steps match dense R", {
  lt_models_f64()
  set.seed(1)
  n <- 300L
  k <- 6L
  X <- rbind(matrix(rnorm(n, 0, 0.5), n / 2, 2),
             matrix(rnorm(n, 2, 0.5), n / 2, 2))
  C <- X[sample(n, k), ] + 0.01
  for (iter in 1:3) {
    x_i <- Vi(X)
    c_j <- Vj(C)
    D_ij <- sqdist(x_i, c_j)
    lab <- argmin(D_ij, index = "j")
    Dd <- lt_sqdist_dense(X, C)
    ref <- apply(Dd, 1, which.min)
    expect_equal(dim(lab), c(n, 1L))
    expect_equal(as.vector(lab), ref)
    # within-cluster cost
    expect_equal(sum(min(D_ij, index = "j")), sum(apply(Dd, 1, min)),
                 tolerance = 1e-12)
    # update: cluster sums and counts as sums over i of a one-hot code
    # (one_hot counts from 0, argmin from 1)
    l_i <- Vi(as.numeric(lab) - 1)
    oh <- one_hot(l_i, k)
    counts <- sum(oh + 0 * elem(c_j, 0), index = "i")
    sums <- sum(tensorprod(oh, x_i) + 0 * elem(c_j, 0), index = "i")[1, ]
    ref_counts <- tabulate(ref, k)
    expect_equal(as.vector(counts[1, ]), ref_counts)
    ref_sums <- t(vapply(seq_len(k), function(a) {
      colSums(X[ref == a, , drop = FALSE])
    }, numeric(2)))
    expect_equal(matrix(sums, k, 2, byrow = TRUE), unname(ref_sums),
                 tolerance = 1e-12)
    C <- unname(ref_sums / pmax(ref_counts, 1))
  }
})

test_that("Gaussian mixture responsibilities (softmax) match dense R", {
  lt_models_f64()
  set.seed(2)
  n <- 250L
  k <- 4L
  X <- matrix(rnorm(2 * n), n, 2) + sample(0:2, n, TRUE)
  mu <- matrix(rnorm(2 * k), k, 2)
  sigma <- runif(k, 0.5, 1.5)
  w <- prop.table(runif(k, 1, 2))
  # dense log-densities log(w_k N(x_i; mu_k, sigma_k^2 I))
  logp <- sweep(-lt_sqdist_dense(X, mu), 2, 2 * sigma^2, "/")
  logp <- sweep(logp, 2, log(w) - 2 * log(sigma) - log(2 * pi), "+")
  resp <- exp(logp - apply(logp, 1, max))
  resp <- resp / rowSums(resp)
  loglik <- sum(log(rowSums(exp(logp))))
  # LazyTensor model
  x_i <- Vi(X)
  mu_j <- Vj(mu)
  a_j <- Vj(1 / (2 * sigma^2))
  b_j <- Vj(log(w) - 2 * log(sigma) - log(2 * pi))
  f_ij <- b_j - sqdist(x_i, mu_j) * a_j
  # responsibilities: the softmax over j averages the one-hot rows of I_k
  r <- sumsoftmaxweight(f_ij, "j", Vj(diag(k)))
  expect_equal(r, resp, tolerance = 1e-12)
  expect_equal(rowSums(r), rep(1, n), tolerance = 1e-12)
  # and through logsumexp: r_ik = exp(f_ik - lse_i)
  lse <- logsumexp(f_ij, "j")
  expect_equal(sum(lse), loglik, tolerance = 1e-12)
  expect_equal(exp(logp - as.vector(lse)), resp, tolerance = 1e-12)
  # M-step quantities: N_k and the weighted means, summing over i
  Nk <- sum(Vi(r) + 0 * elem(mu_j, 0), index = "i")[1, ]
  expect_equal(Nk, colSums(resp), tolerance = 1e-12)
})

test_that("kNN classification on iris matches FNN::knn", {
  skip_if_not_installed("FNN")
  lt_models_f64()
  set.seed(3)
  feats <- as.matrix(datasets::iris[, 1:4])
  # distinct points, and a tiny jitter so that no two distances tie
  keep <- !duplicated(feats)
  feats <- feats[keep, ] + matrix(runif(sum(keep) * 4, 0, 1e-3), sum(keep), 4)
  cl <- datasets::iris$Species[keep]
  test <- sample(nrow(feats), 40)
  train <- setdiff(seq_len(nrow(feats)), test)
  K <- 7L
  x_i <- Vi(feats[test, ])
  y_j <- Vj(feats[train, ])
  nn <- argKmin(sqdist(x_i, y_j), K = K, index = "j")
  ref <- FNN::knn(feats[train, ], feats[test, ], cl[train], k = K,
                  algorithm = "brute")
  expect_equal(dim(nn), c(length(test), K))
  expect_equal(unname(nn), unname(attr(ref, "nn.index")) + 0)
  # majority vote, ties to the first class (as FNN::knn)
  pred <- apply(nn, 1, function(idx) {
    levels(cl)[which.max(table(factor(cl[train][idx], levels(cl))))]
  })
  expect_identical(pred, as.character(ref))
  # and the vote itself computed by the engine: class counts of the K
  # nearest, summing one-hot codes over j for the K smallest distances
  d_K <- Kmin(sqdist(x_i, y_j), K = K, index = "j")
  expect_equal(sqrt(d_K), unname(attr(ref, "nn.dist")), tolerance = 1e-12)
  onehot_j <- Vj(diag(3)[as.integer(cl[train]), ])
  votes <- sum((Vi(d_K[, K]) >= sqdist(x_i, y_j)) * onehot_j, index = "j")
  pred2 <- levels(cl)[apply(votes, 1, which.max)]
  expect_identical(pred2, as.character(ref))
  expect_equal(mean(pred2 == as.character(cl[test])) > 0.85, TRUE)
})

test_that("Nadaraya-Watson kernel regression matches dense R", {
  lt_models_f64()
  set.seed(4)
  n <- 200L
  m <- 60L
  X <- matrix(runif(n * 2, -2, 2), n, 2)
  yv <- sin(X[, 1]) + cos(X[, 2]) + rnorm(n, 0, 0.1)
  Z <- matrix(runif(m * 2, -2, 2), m, 2)
  h <- 0.4
  Kd <- exp(-lt_sqdist_dense(Z, X) / (2 * h^2))
  ref <- drop(Kd %*% yv) / rowSums(Kd)
  z_i <- Vi(Z)
  x_j <- Vj(X)
  K_ij <- exp(-sqdist(z_i, x_j) / (2 * h^2))
  # with %*%
  nw <- (K_ij %*% yv) / (K_ij %*% rep(1, n))
  expect_equal(as.vector(nw), ref, tolerance = 1e-12)
  # in one reduction, as a softmax-weighted average
  nw2 <- sumsoftmaxweight(-sqdist(z_i, x_j) / (2 * h^2), "j", Vj(yv))
  expect_equal(as.vector(nw2), ref, tolerance = 1e-12)
  # with a parameter bandwidth: same result, and one kernel for any h
  s <- Pm(1 / (2 * h^2))
  nw3 <- sum(exp(-sqdist(z_i, x_j) * s) * Vj(yv), "j") /
    sum(exp(-sqdist(z_i, x_j) * s), "j")
  expect_equal(as.vector(nw3), ref, tolerance = 1e-12)
})
