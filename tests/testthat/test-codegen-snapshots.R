# test-codegen-snapshots.R -- the generated CPU and CUDA source of a handful
# of formulas, as testthat snapshots (tests/testthat/_snaps/), so that a
# change to generated code shows in review.  Code generation is a pure
# function of (formula, configuration): the developer knobs are unset here,
# and the key embedded in the source names no machine (the target of an
# inspected source is "source"); the package version is masked.

snap_cases <- list(
  gauss = list(f = "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
               args = c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)", "s=Pm(1)")),
  knn = list(f = "ArgKMin_Reduction(SqDist(x, y), 3, 1)",
             args = c("x=Vi(2)", "y=Vj(2)")),
  lse = list(f = "LogSumExp_Reduction(-SqDist(x, y) + Log(a), 0)",
             args = c("x=Vi(2)", "y=Vj(2)", "a=Vi(1)")),
  softmax = list(f = "SumSoftMaxWeight_Reduction(x | y, g, 1)",
                 args = c("x=Vi(2)", "y=Vj(2)", "g=Vj(3)")),
  # the min/max family with its argument (one formula per reduction family)
  maxarg = list(f = "Max_ArgMax_Reduction(x - y, 0)",
                args = c("x=Vi(2)", "y=Vj(2)"))
)

knobs <- c("RKEOPS_CPU_LSE", "RKEOPS_CPU_UNROLL", "RKEOPS_CUDA_GEOM", "RKEOPS_CUDA_UNROLLJ", "RKEOPS_CUDA_UNROLL",
           "RKEOPS_CUDA_PREGS", "RKEOPS_CUDA_LSE", "RKEOPS_CUDA_EXP2", "RKEOPS_CUDA_TSUM")

# the per-formula part: the key and what follows the (fixed) prelude
snap_source <- function(case, backend, precision) {
  src <- rkeops:::rk_source(case$f, case$args, backend = backend,
                            precision = precision)
  src <- gsub("rkeops [0-9][0-9.]*;", "rkeops <version>;", src)
  if (backend == "CPU") {
    src <- sub("(?s)^.*?(const char rk_kernel_key)", "\\1", src, perl = TRUE)
  } else {
    key <- regmatches(src, regexpr(" \\* key: [^\n]*", src))
    src <- paste0(key, "\n", sub("(?s)^.*?(#define RK_TPB)", "\\1", src, perl = TRUE))
  }
  cat(src)
}

test_that("the source names no machine and no path", {
  withr::local_envvar(setNames(rep(NA, length(knobs)), knobs))
  for (be in c("CPU", "GPU")) {
    src <- rkeops:::rk_source(snap_cases$gauss$f, snap_cases$gauss$args,
                              backend = be, precision = "float64")
    expect_false(grepl("/tmp|/home|gcc|clang|-march|nvrtc[0-9]", src), info = be)
    expect_match(src, "target source;", fixed = TRUE)
  }
})

test_that("the configuration is in the source's key, every field", {
  withr::local_envvar(setNames(rep(NA, length(knobs)), knobs))
  cpu <- rkeops:::rk_source(snap_cases$gauss$f, snap_cases$gauss$args)
  expect_match(cpu, "precision=64 cpu_lse=0 cpu_unroll=16 ;", fixed = TRUE)
  gpu <- rkeops:::rk_source(snap_cases$gauss$f, snap_cases$gauss$args,
                            backend = "GPU", precision = "float32")
  expect_match(gpu, "precision=32 cuda_tpb=0 cuda_rb=0 cuda_unrollj=0 cuda_pregs=0 cuda_lse=1 cuda_exp2=2 cuda_unroll=256 cuda_tsum=2 ;",
               fixed = TRUE)
  withr::local_envvar(c(RKEOPS_CUDA_GEOM = "128,2", RKEOPS_CPU_LSE = "1",
                        RKEOPS_CPU_UNROLL = "4"))
  gpu2 <- rkeops:::rk_source(snap_cases$gauss$f, snap_cases$gauss$args,
                             backend = "GPU", precision = "float32")
  expect_match(gpu2, "cuda_tpb=128 cuda_rb=2", fixed = TRUE)
  expect_match(gpu2, "#define RK_TPB 128\n#define RK_RB 2", fixed = TRUE)
  expect_match(rkeops:::rk_source(snap_cases$gauss$f, snap_cases$gauss$args),
               "cpu_lse=1 cpu_unroll=4 ;", fixed = TRUE)
})

test_that("CUDA loops of the emitted code are unrolled when small", {
  withr::local_envvar(setNames(rep(NA, length(knobs)), knobs))
  src <- rkeops:::rk_source("KMin_Reduction(SqDist(x, y), 101, 1)",
                            c("x=Vi(3)", "y=Vj(3)"), backend = "GPU")
  lines <- trimws(strsplit(src, "\n", fixed = TRUE)[[1]])
  prag <- which(grepl("^#pragma unroll", lines))
  expect_true(all(grepl("^for \\(", lines[prag + 1])))
  trips <- suppressWarnings(as.integer(sub("^for \\(int [a-z_]+ = 0; [a-z_]+ < ([0-9]+);.*", "\\1",
                                           lines[prag + 1])))
  big <- !is.na(trips) & trips > 64
  expect_true(any(big) && any(!big))
  expect_true(all(lines[prag[big]] == "#pragma unroll 1"))
  expect_true(all(lines[prag[!big]] %in% c("#pragma unroll", "#pragma unroll 4")))
  cpu <- rkeops:::rk_source("KMin_Reduction(SqDist(x, y), 101, 1)",
                            c("x=Vi(3)", "y=Vj(3)"))
  expect_false(grepl("#pragma unroll", cpu, fixed = TRUE))
})

test_that("CUDA loops over a formula node's components unroll up to cuda_unroll trips", {
  withr::local_envvar(setNames(rep(NA, length(knobs)), knobs))
  # a 128-wide SqDist: its loop (k += 4 up to 128) is unrolled by default,
  # so the outer point lives in registers; RKEOPS_CUDA_UNROLL = 64 rolls it
  pragma_before_dot <- function(src) {
    lines <- trimws(strsplit(src, "\n", fixed = TRUE)[[1]])
    at <- grep("^for \\(int k = 0; k < 128; k \\+= 4\\)", lines)
    expect_length(at, 1)
    lines[at - 1]
  }
  f <- "ArgKMin_Reduction(SqDist(x, y), 10, 1)"
  a <- c("x=Vi(128)", "y=Vj(128)")
  src <- rkeops:::rk_source(f, a, backend = "GPU", precision = "float32")
  expect_match(src, "cuda_unroll=256 cuda_tsum=2 ;", fixed = TRUE)
  expect_equal(pragma_before_dot(src), "#pragma unroll")
  withr::local_envvar(c(RKEOPS_CUDA_UNROLL = "64"))
  src64 <- rkeops:::rk_source(f, a, backend = "GPU", precision = "float32")
  expect_match(src64, "cuda_unroll=64 cuda_tsum=2 ;", fixed = TRUE)
  expect_equal(pragma_before_dot(src64), "#pragma unroll 1")
  # the reduction state's loops keep their limit of 64 trips
  kmin <- rkeops:::rk_source("KMin_Reduction(SqDist(x, y), 101, 1)",
                             c("x=Vi(3)", "y=Vj(3)"), backend = "GPU")
  expect_match(kmin, "#pragma unroll 1", fixed = TRUE)
})

test_that("the tile loop of a wide Sum (a solver block product) unrolls twice", {
  withr::local_envvar(setNames(rep(NA, length(knobs)), knobs))
  # the pragma above the loop over a tile's points, and the geometry
  tile_loop <- function(E, prec) {
    src <- rkeops:::rk_source("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                              c("x=Vi(3)", "y=Vj(3)", sprintf("b=Vj(%d)", E)),
                              backend = "GPU", precision = prec)
    lines <- trimws(strsplit(src, "\n", fixed = TRUE)[[1]])
    at <- grep("^for \\(int sk_jj = 0; sk_jj < sk_n; sk_jj\\+\\+\\)", lines)
    expect_length(at, 1)
    rb <- as.integer(sub(".*#define RK_RB ([0-9]+).*", "\\1",
                         gsub("\n", " ", src, fixed = TRUE)))
    list(pragma = if (grepl("^#pragma unroll", lines[at - 1])) lines[at - 1] else "",
         rb = rb)
  }
  # E = 31 and 64 on two rows a thread: twice (bench/ab-block.R)
  for (p in list(list(31, "float64"), list(32, "float64"), list(31, "float32"),
                 list(64, "float32"))) {
    t <- tile_loop(p[[1]], p[[2]])
    expect_identical(t$rb, 2L)
    expect_identical(t$pragma, "#pragma unroll 2")
  }
  # one row a thread (E = 64, float64): not unrolled; a narrow state keeps
  # its 4 (E = 8, 4 rows; E = 16, 2 rows)
  expect_identical(tile_loop(64, "float64"), list(pragma = "", rb = 1L))
  expect_identical(tile_loop(8, "float64")$pragma, "#pragma unroll 4")
  expect_identical(tile_loop(16, "float64"), list(pragma = "#pragma unroll 4", rb = 2L))
  # the knob still decides when set
  withr::local_envvar(c(RKEOPS_CUDA_UNROLLJ = "1"))
  expect_identical(tile_loop(31, "float64")$pragma, "")
})

for (nm in names(snap_cases)) {
  local({
    nm <- nm
    test_that(sprintf("generated source: %s", nm), {
      withr::local_envvar(setNames(rep(NA, length(knobs)), knobs))
      expect_snapshot(snap_source(snap_cases[[nm]], "CPU", "float64"))
      expect_snapshot(snap_source(snap_cases[[nm]], "GPU", "float32"))
    })
  })
}

# the generated CPU source compiles without a warning (a macro of the
# scalar prelude, RK_S(f), was once redefined by the kernel's state size)
test_that("generated CPU kernels compile without warnings (-Wall -Wextra)", {
  cc <- tryCatch(system2(file.path(R.home("bin"), "R"), c("CMD", "config", "CC"),
                         stdout = TRUE, stderr = FALSE), error = function(e) "")
  skip_if(!length(cc) || !nzchar(cc[1]), "no C compiler from R CMD config CC")
  # the engine's own kernel flags (-march=native: the vector types' ABI)
  desc <- strsplit(rkeops:::rk_config()$description, "\n", fixed = TRUE)[[1]]
  flags <- sub("^kernel flags: *", "", grep("^kernel flags:", desc, value = TRUE))
  expect_length(flags, 1)
  flags <- gsub("-shared|-fPIC", "", flags)
  withr::local_envvar(setNames(rep(NA, length(knobs)), knobs))
  cases <- c(snap_cases, list(
    round = list(f = "Sum_Reduction(Round(x * y, 2) + Mod(x, y, 0.5), 1)",
                 args = c("x=Vi(1)", "y=Vj(1)"))))
  for (nm in names(cases)) for (prec in c("float64", "float32")) {
    src <- rkeops:::rk_source(cases[[nm]]$f, cases[[nm]]$args, precision = prec)
    f <- withr::local_tempfile(fileext = ".c")
    writeLines(src, f)
    cmd <- paste(cc[1], flags, "-std=gnu11 -Wall -Wextra -Wno-unknown-pragmas",
                 "-Wno-unused-parameter -fsyntax-only", shQuote(f), "2>&1")
    out <- suppressWarnings(system2("sh", c("-c", shQuote(cmd)), stdout = TRUE))
    expect_identical(grep("warning|error", out, value = TRUE), character(),
                     info = paste(nm, prec))
  }
})
