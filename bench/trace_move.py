"""The solver's trace move: re-derive a disputed step's trace and publish it to the store.

Two ways, each in a fresh process per model so that peak memory is its own: ``kept`` derives the
whole trace in memory, then publishes it (``publish_trace``); ``streamed`` (what the solver does)
publishes each node output as the step computes it and frees it after its last use
(``TraceWriter`` through ``step_trace(on_node=...)``). Printed per model: seconds, peak resident
memory above the process's memory before the move (the Linux high-water mark, reset
first, after returning freed memory to the system), the
trace's and checkpoint's bytes, and streamed against kept. Run:

    .venv/bin/python bench/trace_move.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from offchain.dispute.trace_store import TraceWriter, publish_trace  # noqa: E402
from offchain.ml import synthetic_dataset  # noqa: E402
from offchain.ml.demo import mlp_task  # noqa: E402
from offchain.ml.artifacts import Dataset  # noqa: E402
from offchain.ml.demo import module_task  # noqa: E402
from offchain.ml.capture import ExportConfig  # noqa: E402
from offchain.ml.models import CNN, GPT  # noqa: E402
from offchain.ml.optim import OptimizerConfig  # noqa: E402
from offchain.ml.train import step_trace  # noqa: E402
from offchain.storage.store import LocalStore  # noqa: E402
from bench.memory import in_fresh_process, peak_growth  # noqa: E402

MODELS = ("mlp 5.3M (preset)", "cnn (program)", "transformer (program)")


def _demo(name: str):
    torch.manual_seed(0)
    if name.startswith("mlp"):
        return mlp_task(1024, (2048, 1536), 10, synthetic_dataset(1024, 1024, 10, seed=3), steps=2, k=1,
                        batch_size=256, lr=0.05, seed=1)
    if name.startswith("cnn"):
        model, config = CNN(3, 32, 32, 10, widths=(64, 128), groups=8), ExportConfig(
            64, (3, 32, 32), optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))
        x, y = torch.randn(256, config.data_dim), torch.randint(0, 10, (256,))
    else:
        model, config = GPT(256, 64, 256, 8, 6), ExportConfig(
            16, (64,), loss="lm_cross_entropy", optimizer=OptimizerConfig("adamw", 3e-4, weight_decay=0.1))
        x, y = torch.randint(0, 256, (64, config.data_dim)).float(), torch.zeros(64, dtype=torch.int64)
    return module_task(model, config, Dataset(x, y), steps=2, k=1, seed=5)


def one(name: str, mode: str) -> dict:
    torch.set_num_threads(1)
    demo = _demo(name)
    state = demo.weights
    with tempfile.TemporaryDirectory(prefix="dtm-trace-") as folder:
        store = LocalStore(Path(folder))
        with peak_growth() as peak:
            start = time.perf_counter()
            if mode == "kept":
                trace = step_trace(demo.graph, demo.task, demo.dataset, state, 0).trace
                publish_trace(store, trace)
                trace_bytes = sum(t.numel() * t.element_size() for t in trace)
            else:
                writer = TraceWriter(store)
                sizes = {}

                def add(node, output):
                    sizes[node] = output.numel() * output.element_size()
                    writer.add(node, output)

                step_trace(demo.graph, demo.task, demo.dataset, state, 0, on_node=add)
                writer.finish()
                trace_bytes = sum(sizes.values())
            seconds = time.perf_counter() - start
    checkpoint = sum(t.numel() * t.element_size() for t in state.values())
    return {"seconds": seconds, "peak_mib": peak["mib"], "trace": trace_bytes, "checkpoint": checkpoint}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    print("trace move of step 0, one thread, each in a fresh process; memory: peak resident above the start")
    print(f"{'model':<22} {'trace MB':>9} {'trace/ckpt':>10} {'kept s':>7} {'kept MiB':>9} {'streamed s':>10} "
          f"{'streamed MiB':>12} {'time ratio':>10} {'memory ratio':>12}")
    for name in MODELS:
        runs = {}
        for mode in ("kept", "streamed"):
            runs[mode] = in_fresh_process(__file__, name, mode)
        kept, streamed = runs["kept"], runs["streamed"]
        print(f"{name:<22} {kept['trace'] / 1e6:>9.1f} {kept['trace'] / kept['checkpoint']:>10.2f} "
              f"{kept['seconds']:>7.2f} {kept['peak_mib']:>9.0f} {streamed['seconds']:>10.2f} "
              f"{streamed['peak_mib']:>12.0f} {streamed['seconds'] / kept['seconds']:>10.2f} "
              f"{streamed['peak_mib'] / max(kept['peak_mib'], 1e-9):>12.2f}")


if __name__ == "__main__":
    main()
