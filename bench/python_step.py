#!/usr/bin/python3
"""The rbsde training step written as a Python user of the prototype would write it.

Plain PyTorch, one step of detached-path Reverse-BSDE training (method.md §4): per time step
Z = net([x, time features]) with autograd on, the control u = Z.detach() drives X, and the
graph runs through the Y recursion with the off-policy driver

    Y += (u·Z − ½|Z|² − ½ b d) h + Z·ΔB,      X += (½ b X + √b u) h + √b ΔB;

loss = variance of Y_N − log π̃(X_N) (optimal constant), loss.backward(), clip, Adam step.
The target is N(0, I), the network Z = √b (−x) + MLP([x, τ, sin kπτ, cos kπτ]) as in rbsde.

Prints one line:  bench-python threads=... d=... s_per_iter=... path_steps_per_s=...
and GFLOP/s against the torch.mm peak of this process (3× forward matrix-product FLOPs).

Run it with Debian's interpreter and python3-torch (the same libtorch as rbsde):
    /usr/bin/python3 bench/python_step.py --dim 2 --width 64 --paths 512 --threads 1
"""
import argparse
import math
import time

import torch

TIME_FEATURES = 4  # rbsde's network.time_features default


def parse_arguments():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=2, help="hidden layers")
    p.add_argument("--paths", type=int, default=1024)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--iterations", type=int, default=10, help="timed iterations")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--gemm-size", type=int, default=2048)
    p.add_argument("--no-peak", action="store_true", help="skip the torch.mm peak")
    return p.parse_args()


def make_net(dim, width, depth):
    layers = [torch.nn.Linear(dim + 1 + 2 * TIME_FEATURES, width), torch.nn.SiLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.SiLU()]
    last = torch.nn.Linear(width, dim)
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return torch.nn.Sequential(*layers, last)


def time_features(s, horizon):
    tau = s / horizon
    k = torch.arange(1, TIME_FEATURES + 1) * math.pi
    return torch.cat([torch.tensor([tau]), torch.sin(tau * k), torch.cos(tau * k)])


def log_normal(x):
    return -0.5 * (x * x).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)


def train_step(net, optimizer, state, a):
    m, d, n_steps = a.paths, a.dim, a.steps
    beta, horizon = 2.0, 4.0  # OU, rbsde's defaults
    h = horizon / n_steps
    x = torch.randn(m, d)
    y = log_normal(x) + state["c"]
    for n in range(n_steps):
        s = n * h
        b = beta  # constant schedule: b(s) = β(T − s) = β
        features = time_features(s, horizon).expand(m, -1)
        z = net(torch.cat([x, features], 1)) - math.sqrt(b) * x
        u = z.detach()
        db = math.sqrt(h) * torch.randn(m, d)
        y = y + ((u * z).sum(1) - 0.5 * (z * z).sum(1) - 0.5 * b * d) * h + (z * db).sum(1)
        x = x + (0.5 * b * x + math.sqrt(b) * u) * h + math.sqrt(b) * db
    r = y - log_normal(x)  # target N(0, I): log π̃ = log N(x; 0, I)
    mean = r.mean()
    loss = ((r - mean) ** 2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    state["c"] -= mean.item()  # optimal constant
    return loss.item()


def sgemm_peak_gflops(size, repetitions=5):
    a, b = torch.randn(size, size), torch.randn(size, size)
    c = torch.mm(a, b)
    best = 0.0
    for _ in range(repetitions):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        best = max(best, 2.0 * size**3 / (time.perf_counter() - start) * 1e-9)
    return best


def main():
    a = parse_arguments()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    peak = None if a.no_peak else sgemm_peak_gflops(a.gemm_size)
    net = make_net(a.dim, a.width, a.depth)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    state = {"c": 0.0}
    for _ in range(a.warmup):
        train_step(net, optimizer, state, a)
    seconds = []
    for _ in range(a.iterations):
        start = time.perf_counter()
        loss = train_step(net, optimizer, state, a)
        seconds.append(time.perf_counter() - start)
    s_per_iter = sum(seconds) / len(seconds)

    rows = a.paths * a.steps
    d, w = a.dim, a.width
    forward = 2.0 * rows * (d * w + (a.depth - 1) * w * w + w * d)  # as bench_train counts it
    gflops = 3.0 * forward / s_per_iter * 1e-9
    line = (
        f"bench-python threads={torch.get_num_threads()} d={d} width={w} depth={a.depth} "
        f"paths={a.paths} steps={a.steps} iterations={a.iterations} warmup={a.warmup} "
        f"s_per_iter={s_per_iter:.5f} s_min_iter={min(seconds):.5f} "
        f"path_steps_per_s={rows / s_per_iter:.4g} "
        f"gflops_3x_forward={gflops:.2f}"
    )
    if peak is not None:
        best = 3.0 * forward / min(seconds) * 1e-9
        line += (f" sgemm_peak_gflops={peak:.2f} peak_fraction_3x_forward={gflops / peak:.4f}"
                 f" peak_fraction_3x_forward_min_iter={best / peak:.4f}")
    print(line + f" loss={loss:.4g}", flush=True)


if __name__ == "__main__":
    main()
