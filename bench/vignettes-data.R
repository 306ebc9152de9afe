# bench/vignettes-data.R -- the real data of the vignettes and of
# bench/kriging.R, with their fitted variogram models, in one .rds file, for
# a machine that has rkeops but not gstat, sp, fields or spam (the GPU
# machine). Run where those packages are installed:
#
#   Rscript bench/vignettes-data.R .benchdata/data.rds
#
# and carry .benchdata to the GPU machine (about 3 MB). The variograms are
# fitted here exactly as in vignettes/kriging.Rmd (Walker Lake: exponential
# model on a 10% sample, set.seed(1)) and, for PRISM elevation, on a random
# sample of 20,000 cells (set.seed(3)), variogram cutoff 1 degree.
out <- commandArgs(TRUE)[1]
if (is.na(out)) out <- ".benchdata/data.rds"
suppressPackageStartupMessages({library(sp); library(gstat)})
data(walker, package = "gstat")
XW <- unname(coordinates(walker.exh))
vW <- walker.exh$V
set.seed(1)
s <- sample(nrow(XW), round(0.1 * nrow(XW)))
ds <- data.frame(x = XW[s, 1], y = XW[s, 2], V = vW[s])
coordinates(ds) <- ~x + y
vw <- fit.variogram(variogram(V ~ 1, ds), vgm(6e4, "Exp", 30, 2e4))
data(USprecip, package = "spam")
data(PRISMelevation, package = "fields")
pz <- PRISMelevation$z
ok <- which(!is.na(pz))
ij <- arrayInd(ok, dim(pz))
XP <- cbind(PRISMelevation$x[ij[, 1]], PRISMelevation$y[ij[, 2]])
zP <- pz[ok]
# longitude scaled by the cosine of the mean latitude: degrees of arc
XP[, 1] <- XP[, 1] * cos(mean(XP[, 2]) * pi / 180)
set.seed(3)
sp3 <- sample(nrow(XP), 2e4)
dp <- data.frame(x = XP[sp3, 1], y = XP[sp3, 2], z = zP[sp3])
coordinates(dp) <- ~x + y
# cutoff 1 degree: the short-range structure, which is what kriging from
# dense samples uses (a cutoff of 5 degrees fits a range of 17 degrees, a
# nearly linear variogram, and systems that CG solves very slowly)
vp <- fit.variogram(variogram(z ~ 1, dp, cutoff = 1), vgm(var(zP), "Exp", 0.3, 0))
print(vw); print(vp)
dir.create(dirname(out), showWarnings = FALSE, recursive = TRUE)
saveRDS(list(
  walker = list(X = XW, V = vW, sample = s,
                vgm = c(nugget = vw$psill[1], psill = vw$psill[2],
                        range = vw$range[2])),
  usprecip = USprecip[, c("lon", "lat", "anomaly")],
  prism = list(X = XP, z = zP,
               vgm = c(nugget = vp$psill[1], psill = vp$psill[2],
                       range = vp$range[2]))), out)
cat("wrote", out, file.size(out), "bytes;", nrow(XP), "PRISM cells\n")
