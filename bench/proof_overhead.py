"""Proof-of-learning training vs a plain PyTorch training loop on the digits demo.

Proof-of-learning run = keccak-derived batches + the graph executor + a checkpoint every k steps
(checkpoint Merkle root + safetensors serialization handed to a callback).  Baseline = the same
64-32-10 MLP as ``nn.Sequential`` + autograd + ``torch.optim.SGD`` with ``torch.randint`` batches.
Both use one intra-op thread.  Runs are interleaved and the median of several repeats is reported,
as ratios against the baseline measured in the same process.  Run:

    .venv/bin/python bench/proof_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from offchain.ml import (  # noqa: E402
    BatchSampler,
    Executor,
    checkpoint_root,
    digits_task,
    execution_context,
    train,
)


def plain_loop(demo, steps: int, batches=None) -> None:
    """nn.Module + autograd + SGD; random batches unless ``batches`` is given."""
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with torch.no_grad():
        model[0].weight.copy_(demo.weights["l0.weight"])
        model[0].bias.copy_(demo.weights["l0.bias"])
        model[2].weight.copy_(demo.weights["l2.weight"])
        model[2].bias.copy_(demo.weights["l2.bias"])
    optimizer = torch.optim.SGD(model.parameters(), lr=demo.task.lr)
    x_all, y_all = demo.dataset.x, demo.dataset.y
    generator = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        if batches is None:
            index = torch.randint(0, x_all.shape[0], (demo.task.batch_size,), generator=generator)
            x, y = x_all[index], y_all[index]
        else:
            x, y = batches[step]
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    torch.stack(losses).tolist()


def pol_run(demo) -> None:
    blobs = []
    train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph,
          on_checkpoint=lambda c: blobs.append(c.to_bytes(demo.spec)))


def executor_only(demo, batches) -> None:
    executor = Executor(demo.graph)
    params = [demo.weights[n] for n in demo.spec.param_names]
    for x, y in batches:
        params = executor.run(params, x, y).params


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    demo = digits_task(steps=args.steps, k=args.k)
    sampler = BatchSampler(demo.task.seed, demo.task.batch_size, demo.dataset)
    batches = [sampler.batch(step) for step in range(args.steps)]
    state = demo.weights
    names = demo.spec.param_names
    cases = {
        "baseline: nn.Module+autograd+SGD, randint batches": lambda: plain_loop(demo, args.steps),
        "nn.Module+autograd+SGD, same derived batches (pre-made)": lambda: plain_loop(demo, args.steps, batches),
        "graph executor only, same batches (pre-made)": lambda: executor_only(demo, batches),
        "batch derivation only (keccak indices + gather)": lambda: [sampler.batch(s) for s in range(args.steps)],
        "checkpoint roots only (x checkpoints)": lambda: [checkpoint_root(state, names) for _ in range(demo.task.num_checkpoints)],
        "PROOF-OF-LEARNING: train() + roots + serialization": lambda: pol_run(demo),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    with execution_context(1):
        for fn in cases.values():  # warm-up (lazy init, allocator)
            fn()
        for _ in range(args.repeats):
            for name, fn in cases.items():
                samples[name].append(timed(fn))
    base = statistics.median(samples["baseline: nn.Module+autograd+SGD, randint batches"])
    print(f"digits 64-32-10 MLP, {args.steps} steps, batch {demo.task.batch_size}, k={args.k} "
          f"({demo.task.num_checkpoints} checkpoints), 1 thread, median of {args.repeats}")
    print(f"{'case':<58} {'ms':>8} {'us/step':>8} {'x baseline':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<58} {median * 1e3:>8.2f} {median / args.steps * 1e6:>8.1f} {median / base:>10.3f}")
    ratio = statistics.median(samples["PROOF-OF-LEARNING: train() + roots + serialization"]) / base
    verdict = "meets" if ratio <= 1.05 else ("within" if ratio <= 1.10 else "MISSES")
    print(f"\nproof-of-learning overhead: {ratio:.3f}x the plain loop ({verdict} the 1.10x target, goal 1.05x)")


if __name__ == "__main__":
    main()
