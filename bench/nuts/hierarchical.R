# Stan's NUTS at its defaults (4 chains x (1,000 + 1,000), adapt_delta 0.8, 2 chains at a time)
# on a model of examples/hierarchical, against that model's long reference run: the same
# accuracy measure as `python3 -m postprocess compare-posteriordb` (the largest |mean - reference
# mean| / reference sd, and |sd / reference sd - 1|), with the compile and sampling times and the
# gradient evaluations (leapfrog steps, warm-up included).
# usage: Rscript bench/nuts/hierarchical.R MODEL [SEED]      (MODEL: a folder of examples/hierarchical)
args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: Rscript bench/nuts/hierarchical.R MODEL [SEED]")
model <- args[1]
seed <- if (length(args) > 1) as.integer(args[2]) else 1L
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
folder <- file.path(here, "..", "..", "examples", "hierarchical", model)
suppressMessages(library(rstan))
rstan_options(boost_lib = "/usr/include")  # Debian's r-cran-bh is empty
data <- jsonlite::fromJSON(file.path(folder, "data.json"))
reference <- jsonlite::fromJSON(file.path(folder, "reference_summary.json"))
compile <- system.time(sm <- stan_model(file.path(folder, "model.stan")))[["elapsed"]]
# Forked chains, 2 at a time (rstan's socket workers once hung here after compiling).
sample <- system.time(fits <- parallel::mclapply(1:4, function(chain) {
  sampling(sm, data = data, chains = 1, chain_id = chain, seed = seed, refresh = 0)
}, mc.cores = 2))[["elapsed"]]
fit <- sflist2stanfit(fits)
summary <- summary(fit, pars = names(reference))$summary
mean_error <- abs(summary[names(reference), "mean"] - sapply(reference, `[[`, "mean")) /
  sapply(reference, `[[`, "sd")
sd_error <- abs(summary[names(reference), "sd"] / sapply(reference, `[[`, "sd") - 1)
gradients <- sum(sapply(get_sampler_params(fit, inc_warmup = TRUE),
                        function(s) sum(s[, "n_leapfrog__"])))
cat(sprintf(paste("%s seed %d: compile %.1f s, sampling %.1f s, %d gradients, %d divergent,",
                  "largest Rhat %.3f; worst mean error %.3f sd (%s), worst sd error %.1f %%\n"),
            model, seed, compile, sample, as.integer(gradients),
            sum(get_divergent_iterations(fit)), max(summary[, "Rhat"], na.rm = TRUE),
            max(mean_error), names(which.max(mean_error)), 100 * max(sd_error)))
