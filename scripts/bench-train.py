#!/usr/bin/env python3
"""PyTorch CPU counterpart of trainer-offchain/benches/train_step.rs (used by bench-train.sh).

Same model (Linear+ReLU MLP, dense weights), loss (cross-entropy), optimizer (SGD lr 0.01,
momentum 0.9), batch gather from a 4096-sample pool, and timing (median of STEPS steps after
WARMUP). Prints `torch-step model=... batch=... threads=... steps=... median_ms=...`.
"""
import argparse
import resource
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="e.g. 784-256-10")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rss", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dims = [int(x) for x in a.model.split("-")]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i + 2 < len(dims):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.randn(4096, dims[0])
    Y = torch.randint(0, dims[-1], (4096,))
    g = torch.Generator().manual_seed(7)
    times = []
    for s in range(a.warmup + a.steps):
        idx = torch.randint(0, 4096, (a.batch,), generator=g)
        t = time.perf_counter()
        x, y = X[idx], Y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if s >= a.warmup:
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    q = lambda p: times[round((len(times) - 1) * p)]
    print(f"torch-step model={a.model} batch={a.batch} threads={a.threads} steps={a.steps} "
          f"median_ms={q(0.5):.4f} p10_ms={q(0.1):.4f} p90_ms={q(0.9):.4f}")
    if a.rss:
        print(f"torch-peak-rss kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")


if __name__ == "__main__":
    main()
