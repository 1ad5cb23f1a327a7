# Stan's NUTS (Debian's r-cran-rstan, Stan 2.21) on an rbsde target, for bench/nuts/run.sh:
# the same posterior as rbsde's built-in target, its data read as rbsde reads them.
# usage: Rscript bench/nuts/nuts.R MODEL DATA CHAINS WARMUP DRAWS SEED OUT.json
#   MODEL  logreg (DATA: a CSV with a 0/1 column Class, as configs/logreg_synthetic.yaml)
#          or lgcp (DATA: data/pines.csv, a 40 x 40 grid as configs/lgcp.yaml)
# OUT.json: compile and sampling seconds (2 chains at a time: the 2 cores), gradient
# evaluations (leapfrog steps, warm-up included), divergences, the largest R-hat, the smallest
# bulk n_eff, and per coordinate x[i] the posterior mean, sd and n_eff.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 7) stop("usage: Rscript nuts.R MODEL DATA CHAINS WARMUP DRAWS SEED OUT.json")
model <- args[1]
chains <- as.integer(args[3]); warmup <- as.integer(args[4]); draws <- as.integer(args[5])
seed <- as.integer(args[6])
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
suppressMessages(library(rstan))
rstan_options(boost_lib = "/usr/include")  # Debian's r-cran-bh is empty

if (model == "logreg") {
  table <- read.csv(args[2], check.names = FALSE)
  y <- as.integer(table[["Class"]])
  features <- as.matrix(table[, setdiff(names(table), "Class"), drop = FALSE])
  # Standardised as rbsde does: centred, divided by the population sd (1 where it is 0).
  centred <- sweep(features, 2, colMeans(features))
  scale <- sqrt(colMeans(centred^2))
  scale[scale == 0] <- 1
  X <- cbind(1, sweep(centred, 2, scale, "/"))
  data <- list(N = nrow(X), D = ncol(X), X = X, y = y)
  parameter <- "w"
} else if (model == "lgcp") {
  points <- read.csv(args[2])
  G <- 40L
  bin <- function(v) pmin(G - 1L, as.integer(floor(G * v)))
  counts <- numeric(G * G)
  for (k in seq_len(nrow(points))) {
    cell <- bin(points$data_x[k]) * G + bin(points$data_y[k]) + 1L
    counts[cell] <- counts[cell] + 1
  }
  data <- list(G = G, counts = counts, mu0 = log(nrow(points)) - 1.91 / 2, sigma2 = 1.91,
               beta = 1 / 33, area = 1 / G^2)
  parameter <- "u"
} else {
  stop("MODEL must be logreg or lgcp")
}

compile <- system.time(sm <- stan_model(file.path(here, paste0(model, ".stan"))))[["elapsed"]]
# The chains run in forked processes, two at a time (rstan's own socket workers once hung
# here after compiling, with no worker left running).
run_chain <- function(chain) {
  sampling(sm, data = data, chains = 1, chain_id = chain, warmup = warmup,
           iter = warmup + draws, seed = seed, refresh = 0, pars = parameter)
}
sample <- system.time(fits <- parallel::mclapply(seq_len(chains), run_chain,
                                                 mc.cores = 2))[["elapsed"]]
failed <- !sapply(fits, inherits, "stanfit")
if (any(failed)) stop("chain(s) ", paste(which(failed), collapse = ", "), " failed: ",
                      paste(sapply(fits[failed], as.character), collapse = "; "))
fit <- sflist2stanfit(fits)
summary <- summary(fit, pars = parameter)$summary
gradients <- sum(sapply(get_sampler_params(fit, inc_warmup = TRUE),
                        function(s) sum(s[, "n_leapfrog__"])))
result <- list(
  model = model, chains = chains, warmup = warmup, draws = draws, seed = seed,
  stan = stan_version(), compile_s = compile, sampling_s = sample,
  gradients = gradients, divergent = sum(get_divergent_iterations(fit)),
  max_rhat = max(summary[, "Rhat"], na.rm = TRUE), min_n_eff = min(summary[, "n_eff"], na.rm = TRUE),
  mean = unname(summary[, "mean"]), sd = unname(summary[, "sd"]), n_eff = unname(summary[, "n_eff"]))
writeLines(jsonlite::toJSON(result, auto_unbox = TRUE, digits = NA), args[7])
cat(sprintf("%s: compile %.1f s, sampling %.1f s, %d gradients, R-hat <= %.3f, n_eff >= %.0f\n",
            model, compile, sample, as.integer(gradients), result$max_rhat, result$min_n_eff))
