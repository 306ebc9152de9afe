# cluster.R -- reductions across the workers of a `parallel` cluster.
#
# Master side: rkeops_cluster() registers a cluster and sets every worker up
# (rkeops loaded from the master's library paths; backend, device, precision
# and threads).  A reduction splits its output index (i for axis 1, j for
# axis 0) into one contiguous block per worker; each worker keeps its block
# of output-index data, the reduction-index data and the parameters in a
# registry keyed by a token: the "distributed operator"
# (rkeops_cluster_prepare / _apply / _release), so that only the varying
# inputs travel at each apply (the iterate of a conjugate gradient).  rk_run()
# (keops_kernel.R) hands every plain reduction, of keops_kernel() operators
# and of LazyTensors, to rk_cluster_run(): prepare + apply + release in one
# message per worker.  Results are gathered in row order.
#
# Protocol: every message to a worker is ONE call of rk_worker_exec() through
# parallel's sendCall(); its argument is a raw vector, the serialized list of
# commands, so that what is sent is counted exactly (rk_cl$traffic) without
# serializing twice.  The worker answers with a serialized list(ok, value) or
# list(ok = FALSE, message, class, fields): errors keep their class.  Results
# are collected with socketSelect() on the nodes' connections (PSOCK), so that
# a dead worker (end of file on its socket, or its process gone) or a timeout
# fails the call cleanly; other node types (MPI through snow) are read in
# order with parallel's recvResult().  After a death, a timeout or an
# interrupted exchange the cluster is marked broken (the messages are out of
# step): every cluster call then fails until rkeops_cluster(NULL).

rk_cl <- new.env(parent = emptyenv())
rk_cl$cl <- NULL        # the registered cluster, or NULL (local computing)
rk_cl$info <- NULL      # data frame: worker, host, pid, backend, device, ncore
rk_cl$broken <- NULL    # why the cluster can no longer be used
rk_cl$timeout <- Inf    # seconds to wait for one exchange
rk_cl$gen <- 0L         # generation: a handle of an earlier cluster is stale
rk_cl$seq <- 0          # token counter
rk_cl$garbage <- character() # tokens of collected handles, released next time
rk_cl$traffic <- NULL   # per worker: messages, bytes sent, bytes received
rk_cl$id <- 0           # message counter: an answer of another id is stale

# worker side: the data of prepared operators, keyed by token
rk_worker_registry <- new.env(parent = emptyenv())

# parallel's message primitives: internal to parallel, and the ones its own
# clusterCall() uses, so that every cluster type parallel supports works
rk_par <- function(name) utils::getFromNamespace(name, "parallel")

rk_cluster_abort <- function(message, ..., class = character()) {
  rk_abort(c(class, "rkeops_cluster_error"), message, ...)
}

#' Compute reductions across the workers of a cluster
#'
#' `rkeops_cluster(cl)` makes every reduction (operators of [keops_kernel()]
#' and `LazyTensor` reductions) run across the workers of `cl`, a cluster of
#' the `parallel` package (`parallel::makePSOCKcluster()` on this machine or
#' on several hosts, or an MPI cluster through `snow`).  Each worker loads
#' rkeops (from the master's library paths first) and computes with its own
#' backend; the output index of a reduction (i for `axis = 1`, j for
#' `axis = 0`) is split into one contiguous block of rows per worker (equal
#' shares), each worker receives its block of the output-index variables and
#' all of the reduction-index variables and parameters, and the blocks of the
#' result are gathered in row order.  Each row is computed exactly as it is
#' locally, so on the CPU the result is identical to the local one.  The
#' backend, device and threads of the workers are set here; the precision
#' follows the master's option at each call.
#' `rkeops_cluster(NULL)` returns to local computing (the cluster itself is
#' left running: stop it with `parallel::stopCluster()`); `rkeops_cluster()`
#' returns the current cluster, or `NULL`.
#'
#' Data that do not change between calls need not be sent again:
#' `rkeops_cluster_prepare(op, input, varying)` sends each worker its share
#' of `input` once and keeps it there, and returns a distributed operator;
#' `rkeops_cluster_apply(h, values)` sends only the `varying` inputs (the
#' iterate of a conjugate gradient) and gathers the result;
#' `rkeops_cluster_release(h)` frees the workers' copies (a handle that is
#' garbage collected is released with the next message).  Without a cluster
#' a handle computes locally.  `rkeops_cluster_traffic()` counts the
#' messages and bytes (serialized) sent to and received from each worker.
#'
#' `solve()` on a LazyTensor runs on the cluster too, with the local
#' solver's conjugate gradients and preconditioners (`"none"`, `"jacobi"`,
#' `"pivchol"`; not `"nystrom"`): the points go to the workers once, each
#' iteration sends the iterate and gathers the product, and the pivoted
#' Cholesky asks the workers for its kernel columns, one exchange per block
#' of 32 pivots.  The vector work and the preconditioner stay on the master.
#' `kernel_logdet()` computes locally.
#'
#' An error on a worker is an error of class `rkeops_cluster_error` (an
#' `rkeops_error`) whose message names the worker; it carries the fields
#' `worker`, `reason` (`"error"`, `"died"` or `"timeout"`; `"broken"` for a
#' call on a cluster that failed before, `"stale"` for a distributed operator
#' of a cluster no longer registered),
#' `worker_message` and `worker_class`, and the `rkeops_*` subclass of the
#' worker's error (so an `rkeops_dim_error` on a worker is also one on the
#' master).  A worker that dies (or does not answer within `timeout`
#' seconds) makes the call fail at once with such an error (`reason` `"died"`
#' or `"timeout"`); the cluster is then unusable and later reductions fail
#' until `rkeops_cluster(NULL)`, after which local computing works as before.
#'
#' @section Several hosts and MPI:
#' With PSOCK workers started over `ssh` (rkeops installed on every host,
#' the same version); the socket option `"no-delay"` on both ends avoids a
#' 40 ms stall of TCP on every message of more than a few kB:
#' ```
#' library(parallel)
#' options(socketOptions = "no-delay")
#' cl <- makePSOCKcluster(c("node1", "node1", "node2", "node2"),
#'   rscript_args = c("-e", shQuote("options(socketOptions = 'no-delay')")))
#' rkeops_cluster(cl, ncore = 8)   # 2 workers of 8 threads per host
#' # or one worker per GPU: rkeops_cluster(cl, backend = "gpu", device = 0:1)
#' res <- op(list(x, y, b))        # computed across the 4 workers
#' rkeops_cluster(NULL); stopCluster(cl)
#' ```
#' Under Slurm (or PBS, SGE) with MPI, start R with `mpirun -n 1 Rscript
#' job.R` (or `srun`) in an allocation of N + 1 tasks, and in `job.R` make
#' the workers with `snow` and `Rmpi`:
#' `cl <- snow::makeMPIcluster(N)` (or `parallel::makeCluster(N, type =
#' "MPI")`), then `rkeops_cluster(cl)` as above, and `snow::stopCluster(cl);
#' Rmpi::mpi.quit()` at the end.  The timeout and the detection of a dead
#' worker use the sockets of PSOCK clusters; with MPI a dead worker is
#' reported by MPI itself.
#'
#' @param cl a cluster of the `parallel` package (class `cluster`), `NULL`
#'   to return to local computing, or missing to get the current cluster.
#' @param backend `"cpu"` or `"gpu"` for every worker; `NULL` uses the
#'   master's backend option.  A worker without a usable GPU is then an
#'   error naming it.
#' @param device GPU numbers (counted from 0), assigned to the workers
#'   round-robin (worker k gets `device[(k - 1) %% length(device) + 1]`);
#'   `NULL` uses the master's `device_id`.  Only with the GPU backend.
#' @param ncore CPU threads of each worker; `NULL` uses all the cores of
#'   the worker's host (give `cores / workers per host` when several workers
#'   share a host).  By default the master's `ncore` option.
#' @param timeout seconds to wait for the workers' answers to one call
#'   (`Inf`: no limit).
#' @param op an operator made by [keops_kernel()].
#' @param input the list of inputs of `op`, as for calling it; the varying
#'   inputs are given too (their values fix their shapes).
#' @param varying names (declared in `args`) or 1-based positions of the
#'   inputs that `rkeops_cluster_apply()` sends at each call.
#' @param inner_dim `"col"` (one point per row) or `"row"`, as for `op`.
#' @param h a distributed operator made by `rkeops_cluster_prepare()`.
#' @param values the varying inputs, in the order of `varying` (or named):
#'   a list, or the value itself when one input varies.
#' @param reset `TRUE` to set the counters back to zero (after reading them).
#' @return `rkeops_cluster()`: the current cluster (or `NULL`) when called
#'   without argument, else the previous one, invisibly.
#'   `rkeops_cluster_prepare()`: a distributed operator (class
#'   `rkeops_cluster_operator`).  `rkeops_cluster_apply()`: the result
#'   matrix, as `op(input)` would return it.  `rkeops_cluster_release()`:
#'   `NULL`, invisibly.  `rkeops_cluster_traffic()`: a data frame with one
#'   row per worker: `worker`, `messages`, `sent` and `received` (bytes),
#'   counted since the cluster was registered or last reset.
#' @seealso [keops_kernel()], [rkeops_use_cpu()]
#' @examples
#' \donttest{
#' cl <- parallel::makePSOCKcluster(2)
#' rkeops_cluster(cl, ncore = 1)
#' op <- keops_kernel(
#'   "Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
#'   c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")
#' )
#' x <- matrix(runif(300), 100, 3)
#' y <- matrix(runif(600), 200, 3)
#' b <- runif(200)
#' res <- op(list(x, y, b))           # rows 1-50 on worker 1, 51-100 on 2
#' # x and y sent once, b at each apply
#' h <- rkeops_cluster_prepare(op, list(x, y, b), varying = "b")
#' r2 <- rkeops_cluster_apply(h, 2 * b)
#' rkeops_cluster_traffic()
#' rkeops_cluster_release(h)
#' rkeops_cluster(NULL)
#' parallel::stopCluster(cl)
#' identical(res, op(list(x, y, b)))  # the same as computed locally
#' }
#' @export
rkeops_cluster <- function(cl, backend = NULL, device = NULL,
                           ncore = get_rkeops_options("ncore"),
                           timeout = Inf) {
  if (missing(cl)) return(rk_cl$cl)
  old <- rk_cl$cl
  if (is.null(cl)) {
    rk_cluster_drop()
    return(invisible(old))
  }
  if (!inherits(cl, "cluster") || length(cl) < 1L) {
    rk_abort(
      "rkeops_value_error",
      "`cl` must be a cluster of the parallel package (e.g. parallel::makePSOCKcluster(2)) or NULL"
    )
  }
  opts <- get_rkeops_options()
  backend <- if (is.null(backend)) opts$backend else rk_check_option("backend", backend)
  if (!is.null(device)) {
    if (!identical(backend, "GPU")) {
      rk_abort("rkeops_value_error", "`device` is for backend = \"gpu\"")
    }
    if (!is.numeric(device) || length(device) < 1L || anyNA(device) ||
      any(device != round(device)) || any(device < 0)) {
      rk_abort("rkeops_value_error", "`device` must be GPU numbers (whole numbers >= 0)")
    }
  } else {
    device <- opts$device_id
  }
  if (!is.null(ncore)) ncore <- rk_check_option("ncore", ncore)
  if (!is.numeric(timeout) || length(timeout) != 1L || is.na(timeout) || timeout <= 0) {
    rk_abort("rkeops_value_error", "`timeout` must be a positive number of seconds (or Inf)")
  }
  rk_cluster_drop()
  nw <- length(cl)
  rk_cl$timeout <- as.double(timeout)
  rk_cl$traffic <- data.frame(
    worker = seq_len(nw), messages = numeric(nw), sent = numeric(nw),
    received = numeric(nw)
  )
  rk_cl$info <- data.frame(
    worker = seq_len(nw), host = NA_character_, pid = NA_integer_,
    backend = NA_character_, device = NA_integer_, ncore = NA_integer_,
    stringsAsFactors = FALSE
  )
  rk_cl$cl <- cl
  ok <- FALSE
  on.exit(if (!ok) rk_cluster_forget(), add = TRUE)
  # 1. load rkeops on every worker (a closure of the global environment: its
  # unserialization needs no package)
  boot <- rk_cluster_exchange(
    rep(list(list(libs = .libPaths())), nw), fun = rk_cluster_boot_fun()
  )
  mine <- as.character(utils::packageVersion("rkeops"))
  for (k in seq_len(nw)) {
    b <- boot[[k]]
    rk_cl$info$host[k] <- b$host
    rk_cl$info$pid[k] <- b$pid
    if (!isTRUE(b$ok)) {
      rk_cluster_abort(
        sprintf(
          "worker %d of %d (%s) cannot load rkeops: %s", k, nw, b$host, b$message
        ),
        worker = k, reason = "error", worker_message = b$message,
        worker_class = "packageNotFoundError"
      )
    }
    if (!identical(b$version, mine)) {
      rk_cluster_abort(
        sprintf(
          "worker %d of %d (%s) has rkeops %s, this session %s: install the same version",
          k, nw, b$host, b$version, mine
        ),
        worker = k, reason = "error", worker_message = "version mismatch",
        worker_class = character()
      )
    }
  }
  # 2. options of every worker
  dev <- as.integer(rep_len(device, nw))
  msgs <- lapply(seq_len(nw), function(k) {
    list(list(
      op = "setup", backend = backend, device = dev[k], ncore = ncore,
      precision = opts$precision
    ))
  })
  set <- rk_cluster_exchange(msgs)
  for (k in seq_len(nw)) {
    rk_cl$info$backend[k] <- set[[k]]$backend
    rk_cl$info$device[k] <- if (identical(set[[k]]$backend, "GPU")) dev[k] else NA_integer_
    rk_cl$info$ncore[k] <- if (is.null(set[[k]]$ncore)) NA_integer_ else set[[k]]$ncore
  }
  rk_cl$gen <- rk_cl$gen + 1L
  ok <- TRUE
  invisible(old)
}

# forget the cluster without talking to it
rk_cluster_forget <- function() {
  rk_cl$cl <- NULL
  rk_cl$broken <- NULL
  rk_cl$garbage <- character()
  rk_cl$gen <- rk_cl$gen + 1L
  invisible()
}

# back to local computing: free the workers' data when they can be reached
rk_cluster_drop <- function() {
  if (!is.null(rk_cl$cl) && is.null(rk_cl$broken)) {
    nw <- length(rk_cl$cl)
    old <- rk_cl$timeout
    rk_cl$timeout <- min(old, 10)
    try(
      rk_cluster_exchange(rep(list(list(list(op = "reset"))), nw)),
      silent = TRUE
    )
    rk_cl$timeout <- old
  }
  rk_cluster_forget()
}

# TRUE when reductions go to a cluster (rk_run() asks)
rk_cluster_on <- function() !is.null(rk_cl$cl)

rk_cluster_check <- function() {
  if (is.null(rk_cl$cl)) {
    rk_cluster_abort("no cluster: call rkeops_cluster(cl) first")
  }
  if (!is.null(rk_cl$broken)) {
    rk_cluster_abort(
      paste0(
        "the cluster can no longer be used (", rk_cl$broken, "); call ",
        "rkeops_cluster(NULL) to compute locally, or register a new cluster"
      ),
      reason = "broken"
    )
  }
}

# The function of every call: a small closure of the global environment that
# calls rk_worker_exec() from the worker's rkeops (sending rk_worker_exec
# itself would add 7 kB of byte code to each message)
rk_cluster_exec_fun <- function() {
  f <- function(payload) {
    get("rk_worker_exec", envir = asNamespace("rkeops"))(payload)
  }
  environment(f) <- globalenv()
  f
}

# bytes that parallel's messages add around a payload (a raw vector counts
# its length plus a fixed header): the EXEC message of a call of `fun`, or
# (fun = NULL) the VALUE message of the answer
rk_cluster_envelope <- function(fun = NULL) {
  msg <- if (is.null(fun)) {
    list(type = "VALUE", value = raw(), success = TRUE,
         time = proc.time() - proc.time(), tag = NULL)
  } else {
    list(type = "EXEC", data = list(fun = fun, args = list(raw()),
                                    return = TRUE, tag = NULL), tag = NULL)
  }
  length(serialize(msg, NULL))
}

# the bootstrap function sent first: base R only, environment globalenv()
rk_cluster_boot_fun <- function() {
  f <- function(payload) {
    msg <- unserialize(payload)
    libs <- msg$cmds$libs
    libs <- libs[dir.exists(libs)]
    .libPaths(unique(c(libs, .libPaths())))
    why <- ""
    ok <- tryCatch(
      {
        loadNamespace("rkeops")
        TRUE
      },
      error = function(e) {
        why <<- conditionMessage(e)
        FALSE
      }
    )
    serialize(list(
      id = msg$id, ok = TRUE, value = list(
        ok = ok, message = why, pid = Sys.getpid(),
        host = Sys.info()[["nodename"]],
        version = if (ok) as.character(utils::packageVersion("rkeops")) else NA
      )
    ), NULL)
  }
  environment(f) <- globalenv()
  f
}

# Send one message (a list of commands, or NULL: nothing) to each worker and
# collect the answers; returns the list of the workers' values (NULL for
# workers sent nothing).  Raises the first failure after collecting all.
rk_cluster_exchange <- function(msgs, fun = NULL) {
  worker <- is.null(fun)
  if (worker) fun <- rk_cluster_exec_fun()
  envelope <- rk_cluster_envelope(fun)
  rk_cluster_check()
  cl <- rk_cl$cl
  nw <- length(cl)
  if (length(rk_cl$garbage) && worker) {
    rel <- list(op = "release", tokens = rk_cl$garbage)
    rk_cl$garbage <- character()
    msgs <- lapply(msgs, function(m) c(list(rel), m))
  }
  send_call <- rk_par("sendCall")
  rk_cl$id <- rk_cl$id + 1
  id <- rk_cl$id
  pending <- logical(nw)
  fail <- vector("list", nw)
  done <- FALSE
  started <- FALSE
  on.exit(if (!done && started) {
    rk_cl$broken <- "a call was interrupted before every worker answered"
  }, add = TRUE)
  last <- NULL
  payload <- NULL
  for (k in seq_len(nw)) {
    if (is.null(msgs[[k]])) next
    # the same message to several workers (the full iterate of a matvec) is
    # serialized once; identical() stops at shared vectors at once
    if (is.null(payload) || !identical(msgs[[k]], last)) {
      payload <- serialize(list(id = id, cmds = msgs[[k]]), NULL)
      last <- msgs[[k]]
    }
    started <- TRUE
    err <- tryCatch(
      {
        send_call(cl[[k]], fun, list(payload))
        NULL
      },
      error = function(e) conditionMessage(e)
    )
    rk_cl$traffic$messages[k] <- rk_cl$traffic$messages[k] + 1
    rk_cl$traffic$sent[k] <- rk_cl$traffic$sent[k] + length(payload) +
      envelope
    if (is.null(err)) {
      pending[k] <- TRUE
    } else {
      fail[[k]] <- list(reason = "died", message = err)
    }
  }
  got <- rk_cluster_collect(cl, pending, id)
  done <- TRUE
  out <- vector("list", nw)
  for (k in seq_len(nw)) {
    v <- got[[k]]
    if (is.null(v)) next
    if (isTRUE(v$ok)) {
      out[k] <- list(v$value)
    } else if (identical(v$ok, FALSE)) {
      fail[[k]] <- list(
        reason = "error", message = v$message, class = v$class,
        fields = v$fields
      )
    } else {
      fail[[k]] <- v
    }
  }
  bad <- which(!vapply(fail, is.null, NA))
  if (length(bad)) {
    lost <- bad[vapply(fail[bad], function(f) f$reason != "error", NA)]
    if (length(lost)) {
      f <- fail[[lost[1L]]]
      rk_cl$broken <- sprintf(
        "worker %d %s", lost[1L],
        if (f$reason == "timeout") "did not answer in time" else "died"
      )
    }
    rk_cluster_worker_error(bad[1L], fail[[bad[1L]]])
  }
  out
}

rk_cluster_worker_error <- function(k, f) {
  nw <- length(rk_cl$cl)
  info <- rk_cl$info
  who <- sprintf("worker %d of %d", k, nw)
  if (!is.null(info) && !is.na(info$host[k])) {
    who <- sprintf("%s (%s, pid %d)", who, info$host[k], info$pid[k])
  }
  if (f$reason == "error") {
    sub <- grep("^rkeops_", f$class, value = TRUE)
    sub <- setdiff(sub, c("rkeops_error", "rkeops_cluster_error"))
    fields <- f$fields
    fields <- fields[setdiff(names(fields), c("message", "call", "worker", "reason"))]
    do.call(rk_cluster_abort, c(
      list(
        sprintf("%s failed: %s", who, f$message),
        worker = k, reason = "error", worker_message = f$message,
        worker_class = f$class, class = sub
      ),
      fields
    ))
  }
  rk_cluster_abort(
    sprintf(
      "%s %s (%s): the cluster can no longer be used; rkeops_cluster(NULL) returns to local computing",
      who,
      if (f$reason == "timeout") "did not answer in time" else "died or lost its connection",
      f$message
    ),
    worker = k, reason = f$reason, worker_message = f$message,
    worker_class = character()
  )
}

# wait for the answers (to message `id`) of the pending workers; returns a
# list: the unserialized answers, or list(reason, message) for the workers
# lost.  An answer to an earlier message (one that timed out) is dropped.
rk_cluster_collect <- function(cl, pending, id) {
  nw <- length(cl)
  got <- vector("list", nw)
  recv <- rk_par("recvResult")
  envelope <- rk_cluster_envelope()
  timeout <- rk_cl$timeout
  t0 <- proc.time()[[3L]]
  sock <- all(vapply(cl, function(n) inherits(n$con, "connection"), NA))
  here <- Sys.info()[["nodename"]]
  info <- rk_cl$info
  read_one <- function(k) {
    v <- tryCatch(recv(cl[[k]]), error = function(e) e)
    if (is.raw(v)) {
      rk_cl$traffic$received[k] <- rk_cl$traffic$received[k] + length(v) +
        envelope
      v <- tryCatch(unserialize(v), error = function(e) e)
      if (is.list(v) && !inherits(v, "error") && !identical(v$id, id)) {
        return() # stale: still pending
      }
    }
    pending[k] <<- FALSE
    got[k] <<- list(
      if (inherits(v, "error")) {
        list(reason = "died", message = conditionMessage(v))
      } else if (is.list(v) && is.logical(v$ok)) {
        v
      } else {
        list(
          reason = "died",
          message = paste("unexpected answer:", paste(format(v), collapse = " "))
        )
      }
    )
  }
  while (any(pending)) {
    ks <- which(pending)
    if (!sock) {
      read_one(ks[1L])
      next
    }
    left <- timeout - (proc.time()[[3L]] - t0)
    if (left <= 0) {
      for (k in ks) {
        pending[k] <- FALSE
        got[k] <- list(list(
          reason = "timeout",
          message = sprintf("no answer after %g s", timeout)
        ))
      }
      break
    }
    ready <- tryCatch(
      socketSelect(lapply(cl[ks], function(n) n$con), timeout = min(1, left)),
      error = function(e) rep(TRUE, length(ks))
    )
    for (k in ks[ready]) read_one(k)
    if (!any(ready) && !is.null(info) && .Platform$OS.type == "unix") {
      # a local worker whose process is gone (signal 0 only asks; on
      # Windows pskill() would terminate it, so the socket alone tells)
      for (k in ks) {
        if (identical(info$host[k], here) && !is.na(info$pid[k]) &&
          !isTRUE(tools::pskill(info$pid[k], 0L))) {
          pending[k] <- FALSE
          got[k] <- list(list(reason = "died", message = "its process is gone"))
        }
      }
    }
  }
  got
}

# ---- worker side ----------------------------------------------------------

# Run on a worker: `payload` is a serialized list of commands, run in order;
# the answer (serialized) carries the value of the last command, or the
# error with its class.
rk_worker_exec <- function(payload) {
  t0 <- proc.time()[[3L]]
  out <- tryCatch(
    {
      msg <- unserialize(payload)
      value <- NULL
      for (cmd in msg$cmds) value <- rk_worker_do(cmd)
      list(ok = TRUE, value = value)
    },
    error = function(e) {
      fields <- unclass(e)
      fields <- fields[setdiff(names(fields), c("message", "call"))]
      list(
        ok = FALSE, message = conditionMessage(e), class = class(e),
        fields = fields
      )
    }
  )
  out$time <- proc.time()[[3L]] - t0
  out$id <- tryCatch(msg$id, error = function(e) NULL)
  serialize(out, NULL)
}

rk_worker_do <- function(cmd) {
  reg <- rk_worker_registry
  switch(cmd$op,
    setup = {
      # a forked worker inherits the master's cluster: never dispatch again
      rk_cl$cl <- NULL
      rk_cl$broken <- NULL
      opts <- list(
        backend = "CPU", precision = cmd$precision, ncore = cmd$ncore,
        verbosity = FALSE
      )
      if (identical(cmd$backend, "GPU")) {
        if (rk_state$gpu$count == 0L) {
          rk_abort(
            "rkeops_value_error",
            sprintf("no usable GPU on this worker (%s)", rk_state$gpu$why)
          )
        }
        opts$backend <- "GPU"
        opts$device_id <- cmd$device
      }
      set_rkeops_options(opts)
      o <- get_rkeops_options()
      list(backend = o$backend, ncore = o$ncore)
    },
    prepare = {
      entry <- cmd[c("formula", "args", "sum_scheme", "inputs", "varying", "row")]
      parsed <- rk_parsed(entry$formula, entry$args, entry$sum_scheme)
      if (isTRUE(cmd$compile)) rk_prepare(parsed)
      assign(cmd$token, entry, envir = reg)
      TRUE
    },
    apply = {
      entry <- get0(cmd$token, envir = reg, inherits = FALSE)
      if (is.null(entry)) {
        rk_abort(
          "rkeops_value_error",
          "this worker holds no data for the operator (released, or the worker was restarted): prepare it again"
        )
      }
      if (isTRUE(cmd$drop)) rm(list = cmd$token, envir = reg)
      inputs <- entry$inputs
      inputs[entry$varying] <- cmd$values
      parsed <- rk_parsed(entry$formula, entry$args, entry$sum_scheme)
      opts <- get_rkeops_options()
      if (!is.null(cmd$precision)) opts$precision <- cmd$precision
      res <- .Call(ffi_run, parsed$ptr, inputs, rk_core_options(opts), entry$row)
      attr(res, "messages") <- NULL
      res
    },
    release = {
      rm(list = intersect(cmd$tokens, ls(reg, all.names = TRUE)), envir = reg)
      TRUE
    },
    reset = {
      rm(list = ls(reg, all.names = TRUE), envir = reg)
      TRUE
    },
    tokens = ls(reg, all.names = TRUE),
    # for the tests: a failure, or a slow worker
    fail = rk_abort(cmd$class, cmd$message),
    sleep = {
      Sys.sleep(cmd$seconds)
      TRUE
    },
    rk_abort("rkeops_internal_error", sprintf("unknown cluster command %s", cmd$op))
  )
}

# ---- distributed operators ------------------------------------------------

# contiguous blocks of 1..n, one per worker, sizes differing by at most one;
# a matrix with columns start and end (end < start: an empty block)
rk_cluster_blocks <- function(n, nw) {
  sizes <- rep(n %/% nw, nw) + (seq_len(nw) <= n %% nw)
  end <- cumsum(sizes)
  cbind(start = end - sizes + 1, end = end)
}

rk_slice <- function(x, a, b, row) {
  if (row) x[, a:b, drop = FALSE] else x[a:b, , drop = FALSE]
}

# positions of the varying inputs
rk_cluster_varying <- function(parsed, varying) {
  nv <- length(parsed$names)
  if (is.null(varying) || length(varying) == 0L) return(integer())
  if (is.character(varying) && !anyNA(varying)) {
    pos <- match(varying, parsed$names)
    if (anyNA(pos) || !all(nzchar(varying))) {
      rk_abort(
        "rkeops_value_error",
        sprintf(
          "`varying`: %s %s not among the declared names (%s)",
          paste0("`", varying[is.na(pos)], "`", collapse = ", "),
          if (sum(is.na(pos)) == 1L) "is" else "are",
          paste0("`", parsed$names, "`", collapse = ", ")
        )
      )
    }
  } else if (is.numeric(varying) && !anyNA(varying) &&
    all(varying == round(varying)) && all(varying >= 1 & varying <= nv)) {
    pos <- as.integer(varying)
  } else {
    rk_abort(
      "rkeops_value_error",
      sprintf("`varying` must be declared names or positions in 1..%d", nv)
    )
  }
  if (anyDuplicated(pos)) {
    rk_abort("rkeops_value_error", "`varying` names an input twice")
  }
  pos
}

rk_cluster_token <- function() {
  rk_cl$seq <- rk_cl$seq + 1
  sprintf("rk%d.%d.%.0f", Sys.getpid(), rk_cl$gen, rk_cl$seq)
}

# the messages that give each worker its share of `inputs` (prepared by
# rk_prepare_inputs()); varying inputs are left out (NULL)
rk_cluster_share <- function(parsed, inputs, row, blocks, varying, token,
                             compile) {
  outcat <- if (identical(parsed$axis, 1L)) 0L else 1L
  lapply(seq_len(nrow(blocks)), function(k) {
    a <- blocks[k, 1L]
    b <- blocks[k, 2L]
    if (b < a) return(NULL)
    mine <- inputs
    for (p in seq_along(mine)) {
      if (p %in% varying) {
        mine[p] <- list(NULL)
      } else if (parsed$cats[p] == outcat) {
        mine[[p]] <- rk_slice(mine[[p]], a, b, row)
      }
    }
    list(list(
      op = "prepare", token = token, formula = parsed$formula,
      args = parsed$args, sum_scheme = parsed$sum_scheme, inputs = mine,
      varying = varying, row = row, compile = compile
    ))
  })
}

# the varying values of each worker's apply message
rk_cluster_values <- function(parsed, values, row, blocks, varying) {
  outcat <- if (identical(parsed$axis, 1L)) 0L else 1L
  lapply(seq_len(nrow(blocks)), function(k) {
    a <- blocks[k, 1L]
    b <- blocks[k, 2L]
    if (b < a) return(NULL)
    lapply(seq_along(varying), function(v) {
      x <- values[[v]]
      if (parsed$cats[varying[v]] == outcat) rk_slice(x, a, b, row) else x
    })
  })
}

# gather the blocks of the result in row order
rk_cluster_gather <- function(parts, outdim) {
  parts <- parts[!vapply(parts, is.null, NA)]
  res <- do.call(rbind, parts)
  storage.mode(res) <- "double"
  res
}

# A plain reduction on the cluster (rk_run(), keops_kernel.R): one message
# per worker with prepare + apply + release.
rk_cluster_run <- function(parsed, prep, row) {
  rk_cluster_check()
  t0 <- proc.time()[[3L]]
  outidx <- if (identical(parsed$axis, 1L)) "i" else "j"
  blocks <- rk_cluster_blocks(prep$npts[[outidx]], length(rk_cl$cl))
  token <- rk_cluster_token()
  share <- rk_cluster_share(parsed, prep$inputs, row, blocks, integer(), token,
                            compile = FALSE)
  msgs <- lapply(share, function(m) {
    if (is.null(m)) return(NULL)
    c(m, list(list(
      op = "apply", token = token, values = list(), drop = TRUE,
      precision = get_rkeops_options("precision")
    )))
  })
  res <- rk_cluster_gather(rk_cluster_exchange(msgs), parsed$outdim)
  if (isTRUE(get_rkeops_options("verbosity"))) {
    message(sprintf(
      "rkeops: %s -> %d x %d on a cluster of %d workers in %.3f s",
      parsed$canonical, nrow(res), ncol(res), length(rk_cl$cl),
      proc.time()[[3L]] - t0
    ))
  }
  res
}

#' @rdname rkeops_cluster
#' @export
rkeops_cluster_prepare <- function(op, input, varying = NULL, inner_dim = "col") {
  if (!inherits(op, "rkeops_operator") || inherits(op, "rkeops_grad_operator")) {
    rk_abort(
      "rkeops_input_error",
      paste0(
        "`op` must be an operator made by keops_kernel() (a keops_grad() ",
        "operator runs several reductions: call it, each goes to the cluster)"
      )
    )
  }
  rk_cluster_prepare_parsed(rk_as_parsed(op), input, varying, inner_dim)
}

rk_cluster_prepare_parsed <- function(parsed, input, varying, inner_dim) {
  if (!is.character(inner_dim) || length(inner_dim) != 1L ||
    !inner_dim %in% c("col", "row")) {
    rk_abort("rkeops_value_error", "`inner_dim` must be \"col\" or \"row\"")
  }
  row <- identical(inner_dim, "row")
  vary <- rk_cluster_varying(parsed, varying)
  prep <- rk_prepare_inputs(parsed, input, row)
  outidx <- if (identical(parsed$axis, 1L)) "i" else "j"
  nout <- prep$npts[[outidx]]
  h <- new.env(parent = emptyenv())
  h$parsed <- parsed
  h$row <- row
  h$inner_dim <- inner_dim
  h$varying <- vary
  h$vdims <- lapply(prep$inputs[vary], dim)
  h$released <- FALSE
  h$napply <- 0
  local <- !rk_cluster_on() || is.na(nout) || nout == 0
  if (local) {
    h$local <- TRUE
    h$inputs <- prep$inputs
    h$nworkers <- 0L
    return(structure(list(env = h), class = "rkeops_cluster_operator"))
  }
  rk_cluster_check()
  h$local <- FALSE
  h$gen <- rk_cl$gen
  h$token <- rk_cluster_token()
  h$blocks <- rk_cluster_blocks(nout, length(rk_cl$cl))
  h$nworkers <- sum(h$blocks[, 2L] >= h$blocks[, 1L])
  before <- rk_cl$traffic$sent
  rk_cluster_exchange(rk_cluster_share(
    parsed, prep$inputs, row, h$blocks, vary, h$token, compile = TRUE
  ))
  h$sent_prepare <- rk_cl$traffic$sent - before
  reg.finalizer(h, rk_cluster_finalize)
  structure(list(env = h), class = "rkeops_cluster_operator")
}

rk_cluster_finalize <- function(h) {
  if (!isTRUE(h$released) && !isTRUE(h$local) && identical(h$gen, rk_cl$gen)) {
    rk_cl$garbage <- c(rk_cl$garbage, h$token)
  }
  invisible()
}

rk_cluster_handle <- function(h) {
  if (!inherits(h, "rkeops_cluster_operator")) {
    rk_abort(
      "rkeops_input_error",
      "`h` must be a distributed operator made by rkeops_cluster_prepare()"
    )
  }
  h$env
}

# check and normalise the varying values like rk_prepare_inputs() did at
# prepare time: same shapes
rk_cluster_norm_values <- function(h, values) {
  nv <- length(h$varying)
  if (nv == 1L && !is.list(values)) values <- list(values)
  if (!is.list(values) || is.data.frame(values) || length(values) != nv) {
    rk_abort(
      "rkeops_input_error",
      sprintf("`values` must be a list of the %d varying input%s", nv, if (nv == 1L) "" else "s")
    )
  }
  parsed <- h$parsed
  names_v <- parsed$names[h$varying]
  if (!is.null(names(values)) && all(names(values) %in% names_v) &&
    !anyDuplicated(names(values))) {
    values <- values[names_v]
  }
  for (v in seq_len(nv)) {
    p <- h$varying[v]
    x <- values[[v]]
    lab <- rk_label(parsed, p)
    want <- h$vdims[[v]]
    if (is.data.frame(x)) x <- as.matrix(x)
    if (!is.numeric(x) || is.complex(x)) {
      rk_abort(
        "rkeops_input_error",
        sprintf("%s must be a real numeric matrix or vector", lab),
        arg = p
      )
    }
    ok <- if (is.null(dim(x))) {
      length(x) == prod(want) && (parsed$cats[p] == 2L || parsed$dims[p] == 1L)
    } else {
      length(dim(x)) == 2L && all(dim(x) == want)
    }
    if (!ok) {
      rk_abort(
        "rkeops_dim_error",
        sprintf(
          "%s must keep the shape it had at rkeops_cluster_prepare() (%d x %d)",
          lab, want[1L], want[2L]
        ),
        arg = p
      )
    }
    if (!is.double(x)) storage.mode(x) <- "double"
    attributes(x) <- list(dim = want)
    values[[v]] <- x
  }
  unname(values)
}

#' @rdname rkeops_cluster
#' @export
rkeops_cluster_apply <- function(h, values = list()) {
  h <- rk_cluster_handle(h)
  if (isTRUE(h$released)) {
    rk_abort("rkeops_value_error", "this distributed operator was released")
  }
  values <- rk_cluster_norm_values(h, values)
  h$napply <- h$napply + 1
  if (h$local) {
    inputs <- h$inputs
    inputs[h$varying] <- values
    return(rk_run_local(h$parsed, inputs, h$inner_dim))
  }
  if (!identical(h$gen, rk_cl$gen) || !rk_cluster_on()) {
    rk_cluster_abort(
      "this distributed operator belongs to a cluster that is no longer registered: prepare it again",
      reason = "stale"
    )
  }
  vals <- rk_cluster_values(h$parsed, values, h$row, h$blocks, h$varying)
  precision <- get_rkeops_options("precision")
  msgs <- lapply(vals, function(v) {
    if (is.null(v)) {
      return(NULL)
    }
    list(list(op = "apply", token = h$token, values = v, precision = precision))
  })
  before <- rk_cl$traffic$sent
  parts <- rk_cluster_exchange(msgs)
  h$sent_apply <- rk_cl$traffic$sent - before
  rk_cluster_gather(parts, h$parsed$outdim)
}

# a local computation (rk_run() without the cluster)
rk_run_local <- function(parsed, inputs, inner_dim) {
  cl <- rk_cl$cl
  rk_cl$cl <- NULL
  on.exit(rk_cl$cl <- cl)
  rk_run(parsed, inputs, inner_dim)
}

#' @rdname rkeops_cluster
#' @export
rkeops_cluster_release <- function(h) {
  h <- rk_cluster_handle(h)
  if (isTRUE(h$released)) return(invisible())
  h$released <- TRUE
  h$inputs <- NULL
  if (!h$local && identical(h$gen, rk_cl$gen) && rk_cluster_on() &&
    is.null(rk_cl$broken)) {
    nw <- length(rk_cl$cl)
    rk_cluster_exchange(rep(list(list(list(op = "release", tokens = h$token))), nw))
  }
  invisible()
}

#' @rdname rkeops_cluster
#' @export
rkeops_cluster_traffic <- function(reset = FALSE) {
  tr <- rk_cl$traffic
  if (is.null(tr) || is.null(rk_cl$cl)) {
    tr <- data.frame(worker = integer(), messages = numeric(), sent = numeric(),
                     received = numeric())
  }
  if (isTRUE(reset) && !is.null(rk_cl$traffic)) {
    rk_cl$traffic[, c("messages", "sent", "received")] <- 0
  }
  tr
}

#' @export
print.rkeops_cluster_operator <- function(x, ...) {
  h <- x$env
  cat("rkeops distributed operator\n")
  cat("  formula: ", h$parsed$canonical, "\n", sep = "")
  cat(sprintf(
    "  %s; varying: %s; %s\n",
    if (h$local) "local (no cluster)" else sprintf("%d workers", h$nworkers),
    if (length(h$varying)) paste(vapply(h$varying, function(p) rk_label(h$parsed, p), ""), collapse = ", ") else "none",
    if (h$released) "released" else sprintf("%g applies", h$napply)
  ))
  invisible(x)
}

# ---- solve() over distributed operators -------------------------------------

# solve() on a cluster (called from solve()'s method, R/solve.R, when a
# cluster is registered): the local solver's own conjugate gradients and
# preconditioners (ffi_solve_cb: rk_precond_build + rk_pcg in C), whose
# products K v and kernel columns K[, p] are asked of the workers:
# - products: a distributed operator of the block product K b_j of solve()'s
#   setup `st` (the points sent once; each product sends the iterate and
#   gathers K v), in the working precision, and in float64 for the float32
#   refinement's residuals;
# - columns (pivchol): a second distributed operator, Sum_Reduction(K * e_j)
#   with RK_PIVCHOL_BLOCK-wide one-hot e, whose j-variables (the candidate
#   pivots' points, padded to the width) are what each exchange sends: one
#   exchange per block of candidates, n x width doubles back.
# Returns the list that the local solver (ffi_solve) returns.
rk_cluster_solve <- function(K, st, b, x0, ctl) {
  n <- nrow(b)
  parts <- lt_reduction_parts(K * Vj(matrix(0, n, ncol(b))), "Sum", "j")
  parsed <- rk_parsed(parts$formula, parts$args, "auto")
  bpos <- st$mv$bpos + 1L
  inputs <- st$mv$inputs
  inputs[[bpos]] <- matrix(0, n, ncol(b))
  h <- rk_cluster_prepare_parsed(parsed, inputs, bpos, "col")
  on.exit(rkeops_cluster_release(h), add = TRUE)
  prec0 <- get_rkeops_options("precision")
  on.exit(set_rkeops_options(list(precision = prec0)), add = TRUE)
  cols <- rk_cluster_columns(K, n, prec0)
  on.exit(cols$release(), add = TRUE)
  product <- function(v, precision) {
    set_rkeops_options(list(precision = precision))
    rkeops_cluster_apply(h, v)
  }
  kept <- new.env(parent = emptyenv())
  fun <- function(what, arg) {
    keep <- function(e) {
      kept$cond <- e
      NULL
    }
    tryCatch(switch(what,
      apply = product(arg, prec0),
      apply64 = product(arg, "float64"),
      columns = cols$get(arg)
    ), error = keep, interrupt = keep)
  }
  res <- tryCatch(
    .Call(ffi_solve_cb, fun, st$diag, b, x0, ctl, rk_core_options()),
    error = function(e) {
      # a worker's or the exchange's own condition, kept by fun()
      if (inherits(kept$cond, "interrupt")) rk_interrupt()
      stop(if (is.null(kept$cond)) e else kept$cond)
    }
  )
  res
}

# the kernel columns K[, p] on the cluster, for the pivoted Cholesky: get(p)
# (1-based points) returns the n x length(p) matrix; the operator is
# prepared at the first request (so "jacobi" and "none" never make it)
rk_cluster_columns <- function(K, n, precision, width = 32L) {
  env <- new.env(parent = emptyenv())
  rows_of <- function(x, r) if (is.null(dim(x))) x[r] else x[r, , drop = FALSE]
  prepare <- function() {
    ck <- sv_kernel(lt_reduction_parts(K * Vj(matrix(0, n, width)), "Sum", "j"))
    env$inputs <- ck$inputs
    env$epos <- length(ck$inputs) # the one-hot block, the last input
    env$jpos <- which(ck$parsed$cats == 1L)
    pad <- rep_len(seq_len(n), width)
    init <- ck$inputs
    for (p in env$jpos) {
      init[[p]] <- if (p == env$epos) diag(width) else rows_of(init[[p]], pad)
    }
    env$h <- rk_cluster_prepare_parsed(ck$parsed, init, env$jpos, "col")
  }
  list(
    get = function(piv) {
      if (is.null(env$h)) prepare()
      set_rkeops_options(list(precision = precision))
      out <- matrix(0, n, length(piv))
      for (s0 in seq(1L, length(piv), by = width)) {
        pk <- piv[s0:min(length(piv), s0 + width - 1L)]
        nc <- length(pk)
        rows <- c(pk, rep(pk[1L], width - nc))
        e <- diag(width)
        if (nc < width) e[, (nc + 1L):width] <- 0
        vals <- lapply(env$jpos, function(p) {
          if (p == env$epos) e else rows_of(env$inputs[[p]], rows)
        })
        out[, s0:(s0 + nc - 1L)] <- rkeops_cluster_apply(env$h, vals)[, seq_len(nc)]
      }
      out
    },
    release = function() if (!is.null(env$h)) rkeops_cluster_release(env$h)
  )
}
