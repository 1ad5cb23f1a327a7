// Eight schools, non-centred for NUTS (the same posterior as the centred module).
data {
  int<lower=0> J;
  real y[J];
  real<lower=0> sigma[J];
}
parameters {
  real mu;
  real<lower=0> tau;
  vector[J] theta_raw;
}
transformed parameters {
  vector[J] theta = mu + tau * theta_raw;
}
model {
  mu ~ normal(0, 5.0);
  tau ~ cauchy(0, 5.0);
  theta_raw ~ normal(0, 1.0);
  y ~ normal(theta, sigma);
}
