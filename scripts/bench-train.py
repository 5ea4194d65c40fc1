#!/usr/bin/env python3
"""PyTorch CPU counterpart of trainer-offchain/benches/train_step.rs (used by bench-train.sh).

Same model (Linear+ReLU MLP, dense weights), loss (cross-entropy), optimizer (SGD lr 0.01,
momentum 0.9), batch gather from a 4096-sample pool, and timing (median of STEPS steps after
WARMUP). Prints `torch-step model=... batch=... threads=... steps=... median_ms=...`.

`--model gpt:V-D-L-H-T` builds the decoder-only transformer of trainer-offchain/src/gpt.rs:
token + learned position embeddings, L pre-LayerNorm blocks (causal multi-head attention
written out as matmul + mask + softmax, like candle's; MLP of width 4D with tanh GELU), final
LayerNorm, head tied to the token embedding; cross-entropy over every position of a batch
of rows of T+1 random token ids.
"""
import argparse
import resource
import time

import torch


class Block(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.fc, self.out = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def forward(self, h, mask):
        b, t, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(d, dim=2)
        split = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        att = (q @ k.transpose(-2, -1)) * (1.0 / (d // self.heads) ** 0.5) + mask[:t, :t]
        y = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        h = h + self.proj(y)
        return h + self.out(torch.nn.functional.gelu(self.fc(self.ln2(h)), approximate="tanh"))


class Gpt(torch.nn.Module):
    def __init__(self, vocab, d, layers, heads, context):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, d)
        self.wpe = torch.nn.Embedding(context, d)
        self.blocks = torch.nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(d)
        mask = torch.full((context, context), -1e30).triu(1)
        self.register_buffer("mask", mask)

    def forward(self, x):
        t = x.shape[1]
        h = self.wte(x) + self.wpe(torch.arange(t))
        for blk in self.blocks:
            h = blk(h, self.mask)
        return self.ln_f(h) @ self.wte.weight.t()


def build(model):
    """(module, inputs pool, labels pool, loss of a batch)."""
    if model.startswith("gpt:"):
        v, d, layers, heads, t = (int(x) for x in model[4:].split("@")[0].split("-"))
        net = Gpt(v, d, layers, heads, t)
        rows = torch.randint(0, v, (4096, t + 1))
        ce = torch.nn.CrossEntropyLoss()
        loss = lambda x, _y: ce(net(x[:, :t]).reshape(-1, v), x[:, 1:].reshape(-1))
        return net, rows, rows[:, 0], loss
    dims = [int(x) for x in model.split("-")]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i + 2 < len(dims):
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    ce = torch.nn.CrossEntropyLoss()
    return net, torch.randn(4096, dims[0]), torch.randint(0, dims[-1], (4096,)), lambda x, y: ce(net(x), y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="e.g. 784-256-10 or gpt:256-64-2-4-64")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rss", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, X, Y, loss_fn = build(a.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(7)
    times = []
    for s in range(a.warmup + a.steps):
        idx = torch.randint(0, 4096, (a.batch,), generator=g)
        t = time.perf_counter()
        x, y = X[idx], Y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
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
