# Long NUTS runs (Debian's r-cran-rstan, Stan 2.21) for the reference moments of one model of
# the hierarchical test set: MODEL/reference_summary.json, for each of the module's parameter
# names its posterior mean, sd, the mean's Monte Carlo standard error, the effective sample
# size and R-hat (Stan's), and MODEL/reference.txt with
# the command, the settings, timings and the diagnostics (largest R-hat, smallest bulk ESS).
# usage: Rscript reference.R MODEL [CHAINS WARMUP DRAWS]    (defaults 4 2000 5000)
args <- commandArgs(trailingOnly = TRUE)
model <- args[1]
chains <- if (length(args) > 1) as.integer(args[2]) else 4L
warmup <- if (length(args) > 2) as.integer(args[3]) else 2000L
draws <- if (length(args) > 3) as.integer(args[4]) else 5000L
here <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
folder <- file.path(here, model)
suppressMessages(library(rstan))
# Debian's r-cran-bh is empty: Stan's Boost headers are the system's.
rstan_options(boost_lib = "/usr/include")
options(mc.cores = 2)
data <- jsonlite::fromJSON(file.path(folder, "data.json"))
compile <- system.time(sm <- stan_model(file.path(folder, "model.stan")))[["elapsed"]]
sample <- system.time(fit <- sampling(sm, data = data, chains = chains, warmup = warmup,
                                      iter = warmup + draws, seed = 1, refresh = 0,
                                      control = list(adapt_delta = 0.95)))[["elapsed"]]
parameters <- setdiff(fit@model_pars, c("lp__", "theta_raw", "b_raw", "innovation", "z1",
                                         "h_std", "eta"))
summary <- summary(fit, pars = parameters)$summary
reference <- lapply(rownames(summary), function(p) {
  list(mean = summary[p, "mean"], sd = summary[p, "sd"], se_mean = summary[p, "se_mean"],
       n_eff = summary[p, "n_eff"], Rhat = summary[p, "Rhat"])
})
names(reference) <- rownames(summary)
writeLines(jsonlite::toJSON(reference, auto_unbox = TRUE, digits = NA),
           file.path(folder, "reference_summary.json"))
divergent <- sum(get_divergent_iterations(fit))
gradients <- sum(sapply(get_sampler_params(fit, inc_warmup = TRUE), function(s) sum(s[, "n_leapfrog__"])))
lines <- c(
  sprintf("command: Rscript examples/hierarchical/reference.R %s %d %d %d", model, chains, warmup, draws),
  sprintf("stan %s, adapt_delta 0.95, seed 1", stan_version()),
  sprintf("compile %.1f s, sampling %.1f s (2 cores), %d gradient evaluations, %d divergent",
          compile, sample, as.integer(gradients), divergent),
  sprintf("largest Rhat %.4f, smallest n_eff %.0f", max(summary[, "Rhat"], na.rm = TRUE),
          min(summary[, "n_eff"], na.rm = TRUE)))
writeLines(lines, file.path(folder, "reference.txt"))
writeLines(lines)
