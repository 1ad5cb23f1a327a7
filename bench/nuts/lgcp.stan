// The lgcp target of rbsde, whitened (docs/targets.md): the field x = mu0 + L u on a G x G
// grid with L L' = K, K_ij = sigma2 exp(-|c_i - c_j| / (G beta)) over integer cell coordinates,
// u ~ N(0, I), and counts n_i ~ Poisson(area exp(x_i)) (up to constants in n).
data {
  int<lower=1> G;
  vector[G * G] counts;  // row-major over (x bin, y bin)
  real mu0;
  real<lower=0> sigma2;
  real<lower=0> beta;
  real<lower=0> area;
}
transformed data {
  int D = G * G;
  matrix[D, D] L;
  {
    matrix[D, D] K;
    for (i in 1:D) {
      for (j in 1:D) {
        int ri = (i - 1) / G;
        int rj = (j - 1) / G;
        int ci = (i - 1) % G;
        int cj = (j - 1) % G;
        K[i, j] = sigma2 * exp(-sqrt(square(ri - rj) + square(ci - cj)) / (G * beta));
      }
    }
    L = cholesky_decompose(K);
  }
}
parameters {
  vector[D] u;
}
model {
  vector[D] x = mu0 + L * u;
  u ~ std_normal();
  target += dot_product(x, counts) - area * sum(exp(x));
}
