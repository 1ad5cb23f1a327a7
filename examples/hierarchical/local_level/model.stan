// A random walk observed in noise, unknown scales; non-centred innovations for NUTS.
data {
  int<lower=1> T;
  vector[T] y;
}
parameters {
  real<lower=0> sigma_z;
  real<lower=0> sigma_y;
  real z1;
  vector[T - 1] innovation;
}
transformed parameters {
  vector[T] z;
  z[1] = z1;
  for (t in 2:T) z[t] = z[t - 1] + sigma_z * innovation[t - 1];
}
model {
  sigma_z ~ normal(0, 1.0);
  sigma_y ~ normal(0, 1.0);
  z1 ~ normal(0, 10.0);
  innovation ~ normal(0, 1.0);
  y ~ normal(z, sigma_y);
}
