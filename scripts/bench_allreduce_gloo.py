#!/usr/bin/env python3
"""PyTorch torch.distributed all_reduce on gloo over loopback, for comparison with
trainchain's p2p averaging. Usage: bench_allreduce_gloo.py N FLOATS [REPS].
Prints one JSON line: {"n":..,"floats":..,"ms":median_ms}. Only 127.0.0.1 is used."""
import json
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def worker(rank, n, floats, reps, port, q):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=n)
    t = torch.full((floats,), float(rank + 1), dtype=torch.float32)
    dist.all_reduce(t)  # warm-up
    times = []
    for _ in range(reps):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        times.append((time.perf_counter() - t0) * 1000.0)
    # The collective ends when the slowest rank ends: report the max over ranks per rep.
    tt = torch.tensor(times, dtype=torch.float64)
    dist.all_reduce(tt, op=dist.ReduceOp.MAX)
    if rank == 0:
        q.put(statistics.median(tt.tolist()))
    dist.destroy_process_group()


def main():
    n = int(sys.argv[1])
    floats = int(sys.argv[2])
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, n, floats, reps, port, q)) for r in range(n)]
    for p in procs:
        p.start()
    ms = q.get(timeout=600)
    for p in procs:
        p.join()
    print(json.dumps({"n": n, "floats": floats, "ms": ms}))


if __name__ == "__main__":
    main()
