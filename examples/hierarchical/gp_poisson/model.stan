// A log-Gaussian Cox process on a 1-D grid, unknown amplitude and length scale; non-centred.
data {
  int<lower=1> N;
  real t[N];
  real m;
  int<lower=0> y[N];
}
parameters {
  real<lower=0> alpha;
  real<lower=0> rho;
  vector[N] eta;
}
transformed parameters {
  vector[N] f;
  {
    matrix[N, N] K = cov_exp_quad(t, alpha, rho);
    for (i in 1:N) K[i, i] += 1e-6;
    f = m + cholesky_decompose(K) * eta;
  }
}
model {
  alpha ~ normal(0, 2.0);
  rho ~ lognormal(log(5.0), 0.5);
  eta ~ normal(0, 1.0);
  y ~ poisson_log(f);
}
