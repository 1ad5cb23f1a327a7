// The logreg target of rbsde (docs/targets.md): Bayesian logistic regression with a N(0, 1)
// prior on every coefficient, the intercept first; X is the standardised design with its
// column of ones (nuts.R builds it as rbsde does).
data {
  int<lower=1> N;
  int<lower=1> D;
  matrix[N, D] X;
  int<lower=0, upper=1> y[N];
}
parameters {
  vector[D] w;
}
model {
  w ~ std_normal();
  y ~ bernoulli_logit_glm(X, 0.0, w);
}
