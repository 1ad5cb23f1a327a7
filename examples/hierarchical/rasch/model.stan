// Rasch item response model with a hierarchical item difficulty; non-centred difficulties.
data {
  int<lower=1> J;
  int<lower=1> K;
  int<lower=0, upper=1> y[J, K];
}
parameters {
  real mu_b;
  real<lower=0> sigma_b;
  vector[K] b_raw;
  vector[J] theta;
}
transformed parameters {
  vector[K] b = mu_b + sigma_b * b_raw;
}
model {
  mu_b ~ normal(0, 5.0);
  sigma_b ~ cauchy(0, 5.0);
  b_raw ~ normal(0, 1.0);
  theta ~ normal(0, 1.0);
  for (j in 1:J) y[j] ~ bernoulli_logit(theta[j] - b);
}
