"""Peak memory of proof-of-learning training against a plain PyTorch loop.

Each case runs in a fresh process; printed: the resident high-water mark above the process's memory
once the model and data are loaded (what training itself adds), for the plain loop of the same
module and optimizer and for ``train()`` with checkpoints every k steps as a solver runs it (each
checkpoint written to disk as it is booked, only the first and last kept in memory); and proof of learning against the plain loop (target <= 1.5x). One thread;
both under the workers' allocator setting (``tune_allocator``), or the default with
``--allocator default``. Run:

    .venv/bin/python bench/training_memory.py [--steps 20] [--k 10] [--allocator tuned|default]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from offchain.ml import execution_context, synthetic_dataset, train  # noqa: E402
from offchain.ml.demo import mlp_task  # noqa: E402
from offchain.ml.program import tune_allocator  # noqa: E402
from offchain.workers.artifacts import save_checkpoint  # noqa: E402
from bench.memory import in_fresh_process, peak_growth  # noqa: E402
from bench.program_speed import plain  # noqa: E402
from bench.proof_overhead import preset_loop  # noqa: E402
from bench.workloads import PROGRAMS, workload_task  # noqa: E402

MLP = "MLP 1024-2048-1536-10 (5.3M)"
MODELS = (MLP, *PROGRAMS)


def one(name: str, case: str, steps: int, k: int, allocator: str) -> dict:
    if allocator == "tuned":
        tune_allocator()
    if name == MLP:
        demo = mlp_task(1024, (2048, 1536), 10, synthetic_dataset(1024, 1024, 10, seed=3), steps=steps,
                        k=k, batch_size=256, lr=0.05, seed=1)
        run_plain = lambda: preset_loop(demo, (2048, 1536), steps)  # noqa: E731
    else:
        demo = workload_task(PROGRAMS[name], steps=steps, k=k)
        model, config, data = PROGRAMS[name]()
        rows = torch.randint(0, data.n_rows, (steps, config.batch_size), generator=torch.Generator().manual_seed(0))
        batches = [(data.x[r], data.y[r]) for r in rows]
        run_plain = lambda: plain(copy.deepcopy(model), config, batches)  # noqa: E731
    with execution_context(1), tempfile.TemporaryDirectory() as saved, peak_growth() as peak:
        if case == "plain":
            run_plain()
        else:
            train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, keep_params=False,
                  on_checkpoint=lambda c: save_checkpoint(Path(saved), c, demo))
    return {"mib": peak["mib"], "state_mib": sum(t.numel() * 4 for t in demo.weights.values()) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--allocator", choices=["tuned", "default"], default="tuned")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.steps, args.k, args.allocator)))
        return
    print(f"peak resident memory above the loaded process, {args.steps} steps, k={args.k}, one thread, "
          f"allocator {args.allocator}; target: proof of learning <= 1.5x plain")
    print(f"{'model':<30} {'state MiB':>9} {'plain MiB':>9} {'PoL MiB':>8} {'PoL / plain':>11}")
    for name in MODELS:
        extra = ["--steps", str(args.steps), "--k", str(args.k), "--allocator", args.allocator]
        runs = {case: in_fresh_process(__file__, name, case, *extra) for case in ("plain", "pol")}
        print(f"{name:<30} {runs['pol']['state_mib']:>9.0f} {runs['plain']['mib']:>9.0f} {runs['pol']['mib']:>8.0f} "
              f"{runs['pol']['mib'] / max(runs['plain']['mib'], 1e-9):>10.2f}x")


if __name__ == "__main__":
    main()
