#!/usr/bin/python3
"""Writes a user target for rbsde as a TorchScript module: a 2-D banana density.

    /usr/bin/python3 examples/torchscript_target.py results/banana.pt
    build/rbsde run configs/torchscript_banana.yaml

rbsde calls the module's log_prob (else forward) on a batch x of shape [M, d], float64 where
it computes weights, modes and MCMC and float32 while training, and expects log pi~(x) of shape
[M]; autograd runs through it, so only differentiable torch operations belong in it. Computing
in x's dtype (no float32 constants or parameters) keeps float64 calls exact. The banana bends
a Gaussian:

    log pi~(x) = -x1^2 / (2 s^2) - (x2 - c (x1^2 - s^2))^2 / 2

The map (x1, x2) -> (x1, x2 - c (x1^2 - s^2)) has unit Jacobian, so log Z = log(2 pi s):
1.8379 + log 2 = 2.5310 for s = 2, a check on rbsde's estimate.
"""
import sys

import torch


class Banana(torch.nn.Module):
    def __init__(self, scale: float = 2.0, curvature: float = 0.25):
        super().__init__()
        self.dim = 2  # rbsde takes d from this attribute (target.dim may then be left out)
        self.scale = scale
        self.curvature = curvature

    @torch.jit.export
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.size(1) != 2:
            raise ValueError("banana: expected x of shape [M, 2], got " + str(x.shape))
        x1 = x[:, 0]
        x2 = x[:, 1] - self.curvature * (x1 * x1 - self.scale * self.scale)
        return -0.5 * (x1 / self.scale) ** 2 - 0.5 * x2 * x2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: torchscript_target.py OUTPUT.pt")
    torch.jit.save(torch.jit.script(Banana()), sys.argv[1])
    print("wrote", sys.argv[1])


if __name__ == "__main__":
    main()
