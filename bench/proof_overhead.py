"""Proof-of-learning training vs a plain PyTorch training loop on the digits demo.

Proof-of-learning run = keccak-derived batches + the program executor + a checkpoint every k steps
(checkpoint Merkle root + safetensors serialization handed to a callback).  Baseline = the same
64-32-10 MLP as ``nn.Sequential`` + autograd + ``torch.optim.SGD`` with ``torch.randint`` batches.
Both use one intra-op thread.  Runs are interleaved and the median of several repeats is reported,
as ratios against the baseline measured in the same process.  Run:

    .venv/bin/python bench/proof_overhead.py

``--models`` measures instead MLP presets of 2-10 M parameters (synthetic data, batch 256), where
layer widths and the batch exceed the judge's 64 terms (reductions run whole; a dispute dissects
them): proof-of-learning training against the plain loop measured in the same run, and the
dispute trace size against the checkpoint size:

    .venv/bin/python bench/proof_overhead.py --models

``--programs`` measures the captured CNN (1.1M parameters) and GPT (5.1M) of ``bench/workloads.py``
the same way, against the plain loop of the same module and optimizer (``bench/program_speed.py``),
and one checkpoint's bookkeeping as training does it (its root on one thread, update norm, the whole
state written to disk) against the plain loop's time for one segment of k steps:

    .venv/bin/python bench/proof_overhead.py --programs
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from offchain.ml import (  # noqa: E402
    BatchSampler,
    checkpoint_root,
    digits_task,
    execution_context,
    synthetic_dataset,
    train,
)
from offchain.ml.artifacts import write_weights  # noqa: E402
from offchain.ml.commit import hashing_threads  # noqa: E402
from offchain.ml.demo import mlp_task  # noqa: E402
from offchain.ml.models import MLP  # noqa: E402
from offchain.ml.program import tune_allocator  # noqa: E402
from offchain.ml.train import update_norm  # noqa: E402
from bench.program_speed import plain  # noqa: E402
from bench.workloads import PROGRAMS, workload_task  # noqa: E402


def plain_loop(demo, steps: int, batches=None) -> None:
    """The MLP preset's module + autograd + SGD; random batches unless ``batches`` is given."""
    model = MLP(64, (32,), 10)
    model.load_state_dict({name: demo.weights[name] for name, _ in model.named_parameters()})
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


def preset_loop(demo, hidden: tuple[int, ...], steps: int) -> None:
    """The plain loop for an MLP preset task: the module with the task's weights + autograd + SGD,
    randint batches."""
    inputs, classes = demo.dataset.input_dim, int(demo.dataset.y.max()) + 1
    model = MLP(inputs, hidden, classes)
    model.load_state_dict(demo.weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=demo.task.lr)
    x_all, y_all = demo.dataset.x, demo.dataset.y
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        index = torch.randint(0, x_all.shape[0], (demo.task.batch_size,), generator=generator)
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x_all[index]), y_all[index])
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    torch.stack(losses).tolist()


ITEMSIZE = {"f32": 4, "i64": 8, "bool": 1}


def trace_sizes(program) -> tuple[int, int]:
    """(checkpoint bytes, trace bytes) of a program: its state, and every node's output."""
    checkpoint = sum(program.nodes[i].numel * 4 for i in program.outputs)
    return checkpoint, sum(n.numel * ITEMSIZE[n.dtype] for n in program.nodes)


MODELS = {  # input, hidden widths, classes: about 2.1, 5.3 and 9.5 M parameters
    "2.1M": (1024, (1024, 1024), 10),
    "5.3M": (1024, (2048, 1536), 10),
    "9.5M": (2048, (2048, 2048, 512), 10),
}


def interleaved_medians(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Each case's median seconds (what its callable returns) over ``repeats`` interleaved rounds,
    after one warm-up run of each, on one thread."""
    samples: dict[str, list[float]] = {case: [] for case in cases}
    with execution_context(1):
        for fn in cases.values():
            fn()
        for _ in range(repeats):
            for case, fn in cases.items():
                samples[case].append(fn())
    return {case: statistics.median(values) for case, values in samples.items()}


def models(args) -> None:
    print(f"MLP presets, batch {args.batch}, {args.model_steps} steps, k={args.k}, 1 thread, median of "
          f"{args.repeats}, allocator tuned in both (as `dtm solver run` does); ratios against the plain loop "
          f"of the same run")
    tune_allocator()
    print(f"{'model':<6} {'params':>10} {'plain ms':>9} {'PoL x plain':>11} {'trace/ckpt':>11}")
    for name, (inputs, hidden, classes) in MODELS.items():
        demo = mlp_task(inputs, hidden, classes, synthetic_dataset(4 * args.batch, inputs, classes, seed=3),
                        steps=args.model_steps, k=args.k, batch_size=args.batch, lr=0.05, seed=1)
        med = interleaved_medians({
            "plain": lambda: timed(lambda: preset_loop(demo, hidden, args.model_steps)),
            "pol": lambda: timed(lambda: pol_run(demo)),
        }, args.repeats)
        checkpoint, trace = trace_sizes(demo.graph.program)
        print(f"{name:<6} {checkpoint // 4:>10,} {med['plain'] * 1e3:>9.0f} {med['pol'] / med['plain']:>10.2f}x "
              f"{trace / checkpoint:>10.2f}x")


def programs(args) -> None:
    """Proof-of-learning training of the captured CNN and GPT (``bench/workloads.py``) against
    the plain loop of the same module, and one checkpoint's bookkeeping against one segment."""
    print(f"programs, {args.model_steps} steps, k={args.k}, 1 thread, median of {args.repeats}, allocator tuned "
          f"in both; ratios against the plain loop of the same run")
    print(f"{'model':<20} {'plain ms/step':>13} {'PoL x plain':>11} {'bookkeeping / segment':>22}"
          f"   {'of which: root, norm, write (ms)':>32}")
    tune_allocator()
    for name, workload in PROGRAMS.items():
        demo = workload_task(workload, steps=args.model_steps, k=args.k)
        model, config, data = workload()
        rows = torch.randint(0, data.n_rows, (args.model_steps, config.batch_size),
                             generator=torch.Generator().manual_seed(0))
        batches = [(data.x[r], data.y[r]) for r in rows]
        state, names = demo.weights, list(demo.weights)
        med = interleaved_medians({
            "plain": lambda: plain(copy.deepcopy(model), config, batches),
            "pol": lambda: timed(lambda: pol_run(demo)),
            **{part: (lambda part=part: book(state, names, demo.spec, part)) for part in BOOKKEEPING},
        }, args.repeats)
        segment = med["plain"] / args.model_steps * args.k
        parts = ", ".join(f"{med[part] * 1e3:.0f}" for part in BOOKKEEPING)
        print(f"{name:<20} {med['plain'] / args.model_steps * 1e3:>13.1f} {med['pol'] / med['plain']:>10.2f}x "
              f"{sum(med[part] for part in BOOKKEEPING) / segment:>21.3f}x   {parts:>32}")


#: one checkpoint's bookkeeping as training does it beside the next segment
BOOKKEEPING = ("root", "norm", "write")


def book(state, names, spec, part: str) -> float:
    """Seconds of one part of a checkpoint's bookkeeping: its root on one thread (the other cores
    train), its update norm, or the solver's hook writing it to disk."""
    with hashing_threads(1), tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        if part == "root":
            checkpoint_root(state, names)
        elif part == "norm":
            update_norm(state, state)
        else:
            write_weights(Path(directory) / "checkpoint.safetensors", state, spec)
        return time.perf_counter() - start


def executor_only(demo, batches) -> None:
    executor = demo.graph.executor()
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
    parser.add_argument("--repeats", type=int, help="interleaved rounds (default 9; 3 with --models or --programs)")
    parser.add_argument("--models", action="store_true", help="2-10 M parameter MLPs, now vs chunked")
    parser.add_argument("--programs", action="store_true", help="the 1.1M CNN and 5.1M GPT programs")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--model-steps", type=int, default=20)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 3 if args.programs or args.models else 9
    if args.programs:
        return programs(args)
    if args.models:
        args.k = min(args.k, 10)
        return models(args)
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
    medians = interleaved_medians({name: (lambda fn=fn: timed(fn)) for name, fn in cases.items()}, args.repeats)
    base = medians["baseline: nn.Module+autograd+SGD, randint batches"]
    print(f"digits 64-32-10 MLP, {args.steps} steps, batch {demo.task.batch_size}, k={args.k} "
          f"({demo.task.num_checkpoints} checkpoints), 1 thread, median of {args.repeats}")
    print(f"{'case':<58} {'ms':>8} {'us/step':>8} {'x baseline':>10}")
    for name, median in medians.items():
        print(f"{name:<58} {median * 1e3:>8.2f} {median / args.steps * 1e6:>8.1f} {median / base:>10.3f}")
    ratio = medians["PROOF-OF-LEARNING: train() + roots + serialization"] / base
    verdict = "meets" if ratio <= 1.05 else ("within" if ratio <= 1.10 else "MISSES")
    print(f"\nproof-of-learning overhead: {ratio:.3f}x the plain loop ({verdict} the 1.10x target, goal 1.05x)")


if __name__ == "__main__":
    main()
