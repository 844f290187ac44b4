"""A verifier's work per task against the solver's training of it, threshold profiling included.

For each model: train the task with proofs (the solver's work, T), profile the distance threshold
(P: once per training graph, on the first task of the graph), verify the proof with the default
policy (V: replay of the sampled segments and the checkpoint checks). Prints V/T, P/T and what a
verifier pays per task when N tasks share a graph, (V + P/N)/T, for N = 1, 10, 100. Same threads
for everything. Models: the MLP preset's program on the digits and at 1.3M parameters (as
`dtm task post` makes them), and the CNN and GPT programs of ``bench/workloads.py``. Run:

    .venv/bin/python bench/verifier_cost.py [--threads 1] [--models mlp,cnn,gpt]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offchain.ml import (  # noqa: E402
    build_proof,
    digits_dataset,
    profile_threshold,
    synthetic_dataset,
    train,
    verify,
)
from offchain.ml.demo import mlp_task  # noqa: E402
from bench.workloads import PROGRAMS, workload_task  # noqa: E402

SHARED = (1, 10, 100)


def measure(name: str, demo, threads: int) -> None:
    task = demo.task
    started = time.perf_counter()
    result = train(task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, num_threads=threads)
    training = time.perf_counter() - started
    blobs = [c.to_bytes(demo.spec) for c in result.checkpoints]
    proof = build_proof(task, result, [f"cid{i}" for i in range(len(blobs))])

    started = time.perf_counter()
    threshold = profile_threshold(demo.graph, task, demo.spec, demo.dataset, demo.weights, num_threads=threads)
    profiling = time.perf_counter() - started

    started = time.perf_counter()
    verdict = verify(task, demo.spec, demo.dataset, proof, blobs, threshold.value, 7, graph=demo.graph,
                     num_threads=threads)
    verifying = time.perf_counter() - started
    assert verdict.accept, verdict.reason

    shared = "  ".join(f"N={n}: {(verifying + profiling / n) / training:.2f}" for n in SHARED)
    print(f"{name:<34} T {training:6.1f} s   V/T {verifying / training:.2f}   P/T {profiling / training:.2f}   "
          f"(V + P/N)/T  {shared}")


def demos():
    """Each model's task, built when measured."""
    yield "mlp", "digits 64-32-10, 2000 steps, k=10", lambda: mlp_task(
        64, (32,), 10, digits_dataset(), steps=2000, k=10, batch_size=32, lr=0.1, seed=1)
    yield "mlp", "MLP 784-1024-512-10, 200 steps, k=10", lambda: mlp_task(
        784, (1024, 512), 10, synthetic_dataset(4096, 784, 10, seed=3), steps=200, k=10, batch_size=256, lr=0.05,
        seed=1)
    for name, workload in PROGRAMS.items():
        yield name.split()[0].lower(), f"{name}, 40 steps, k=4", lambda w=workload: workload_task(w, steps=40, k=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="mlp,cnn,gpt", help="comma-separated: mlp, cnn, gpt")
    args = parser.parse_args()
    chosen = set(args.models.split(","))
    print(f"verifier work per task / training, {args.threads} thread(s); target <= 0.30")
    for family, name, demo in demos():
        if family in chosen:
            measure(name, demo(), args.threads)


if __name__ == "__main__":
    main()
