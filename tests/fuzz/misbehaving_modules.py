#!/usr/bin/python3
"""Writes TorchScript targets (any d) that misbehave in ways a user's module can, for the fuzz
corpus and the fault tests:

    float16.pt      log pi~ in half precision (3 significant digits)
    not_tensor.pt   returns a Python float, not a tensor
    nan_gradient.pt finite log pi~ whose gradient is NaN everywhere
    unbounded.pt    allocates 2^36 elements (512 GiB in float64) per call
    slow.pt         about 0.3 s per call: a standard Gaussian behind a long chain of products

Usage: misbehaving_modules.py DIRECTORY
"""
import os
import sys

import torch


def gaussian(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x * x).sum(1)


class Float16(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian(x).to(torch.float16)


class NotTensor(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> float:
        return float(gaussian(x).sum())


class NanGradient(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # sqrt of a negative number is NaN, masked to 0 in the value but not in the gradient.
        hidden = torch.sqrt(-(x * x).sum(1) - 1.0).nan_to_num(0.0)
        return gaussian(x) + 0.0 * hidden


class Unbounded(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scratch = torch.ones(1 << 36, dtype=x.dtype)
        return gaussian(x) + scratch[0] - 1.0


class Slow(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for _ in range(100000):
            y = y * 1.0
        return gaussian(y)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: misbehaving_modules.py DIRECTORY")
    os.makedirs(sys.argv[1], exist_ok=True)
    modules = {"float16": Float16(), "not_tensor": NotTensor(), "nan_gradient": NanGradient(),
               "unbounded": Unbounded(), "slow": Slow()}
    for name, module in modules.items():
        torch.jit.save(torch.jit.script(module), os.path.join(sys.argv[1], name + ".pt"))


if __name__ == "__main__":
    main()
