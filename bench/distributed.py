"""One task over several processes, on fast and on slow links, with and without compression.

The same training (the GPT preset on CPython's help texts, AdamW + warm-up/cosine, clipping) runs
as 2 pipeline stages x 1 replica and as 1 stage x 2 data-parallel replicas (``--four`` adds
2 x 2), each on the loopback as it is ("fast") and on an emulated link (``--latency`` one-way,
``--bandwidth``, or ``--slower N``: N times the loopback's measured latency and 1/N of its
bandwidth; the engine's transport delays every message in user space, see
``offchain/distributed/engine.py``), with:

* pipeline: raw float32 boundaries, or AQ-SGD (activation deltas in ``--bits``, gradients in
  ``--grad-bits``, first epoch in full);
* data parallel: gradients all-reduced every step, or DiLoCo every ``--inner`` steps with raw,
  4-bit (error feedback) or top-10% (without: with it, held-back values come out in bursts that
  the outer momentum amplifies) pseudo-gradients.

Printed per row: steps/s on each link after the first epoch (when AQ-SGD compresses) and the
slowdown fast/slow (target <= 1.7x), payload bytes
per step (all ranks together) and their share of the uncompressed layout's, and the held-out loss
against the single-process run on the same batches; "noise" is the held-out gap between two
single-process runs with different seeds. The loopback's own latency and bandwidth are measured
first, so the emulated link's distance from it is printed too.

With ``--programs`` the uncompressed layouts also run with every participant executing its
captured step program (``TrainSpec.programs``, docs/group-tasks.md §4.2) instead of the modules,
and both once more with their messages quantised inside the programs (``--bits`` forward,
``--grad-bits`` back and for the all-reduce: ``TrainSpec.quantize``, §4.2.1); DiLoCo's raw and
4-bit rows run as programs too (§4.2.1 there).

    .venv/bin/python bench/distributed.py [--steps 64] [--batch 16] [--four] [--paper-outer] [--repeat 1]
        [--programs | --only-programs] [--slower N | --latency S --bandwidth B/S] [--schedule 1f1b]
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from offchain.distributed.engine import run_many, run_single  # noqa: E402
from offchain.distributed.spec import (  # noqa: E402
    AQSGDConfig,
    DiLoCoConfig,
    GPTShape,
    LinkConfig,
    QuantizeConfig,
    TrainSpec,
)


def _pingpong(rank: int, port: int, out: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    results = []
    for size, reps in ((8, 200), (4 << 20, 20)):
        buffer = torch.zeros(size, dtype=torch.uint8)
        best = float("inf")
        for _ in range(reps):
            dist.barrier()
            start = time.perf_counter()
            if rank == 0:
                dist.send(buffer, 1)
                dist.recv(buffer, 1)
            else:
                dist.recv(buffer, 0)
                dist.send(buffer, 0)
            best = min(best, (time.perf_counter() - start) / 2)
        results.append(best)
    if rank == 0:
        out["latency"], out["bandwidth"] = results[0], (4 << 20) / results[1]
    dist.destroy_process_group()


def measure_loopback() -> tuple[float, float]:
    """(one-way latency s, bandwidth B/s) of gloo send/recv between two local processes: the best
    round trip of many, halved (a busy machine only makes single round trips slower)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = mp.Manager().dict()
    mp.start_processes(_pingpong, args=(port, out), nprocs=2, start_method="fork")
    return out["latency"], out["bandwidth"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16,
                        help="rows a step (4 micro-batches): more compute a step against the link's latencies")
    parser.add_argument("--latency", type=float, default=0.010, help="slow link: one-way seconds")
    parser.add_argument("--bandwidth", type=float, default=5e6, help="slow link: bytes/s")
    parser.add_argument("--slower", type=float, default=0,
                        help="slow link: this many times the measured loopback's latency, 1/this of its bandwidth "
                             "(instead of --latency and --bandwidth)")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--grad-bits", type=int, default=8)
    parser.add_argument("--inner", type=int, default=8, help="DiLoCo inner steps")
    parser.add_argument("--schedule", choices=("1f1b", "gpipe"), default="1f1b", help="pipeline schedule")
    parser.add_argument("--four", action="store_true", help="also 2 stages x 2 replicas (4 processes)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the fastest counts")
    parser.add_argument("--paper-outer", action="store_true", help="also DiLoCo with outer lr 0.7, momentum 0.9")
    parser.add_argument("--programs", action="store_true",
                        help="also the uncompressed layouts with every participant running its step program")
    parser.add_argument("--only-programs", action="store_true",
                        help="only the layouts programs can run, with modules and with programs")
    args = parser.parse_args()
    if args.batch % 8 or not 8 <= args.batch <= 256:
        parser.error("--batch must be a multiple of 8 (4 micro-batches, 2 replicas) from 8 to 256")
    epoch = 256 // args.batch  # train_rows // batch_size below: throughput is measured after the first epoch
    if args.steps <= epoch:
        parser.error(f"--steps must exceed one epoch ({epoch} steps): throughput is measured after it")

    latency, bandwidth = measure_loopback()
    slow = LinkConfig(latency * args.slower, bandwidth / args.slower) if args.slower else LinkConfig(args.latency, args.bandwidth)
    print(f"loopback (gloo, measured): {latency * 1e6:.0f} us one-way, {bandwidth / 1e6:.0f} MB/s; "
          f"slow link (emulated): {slow.latency_s * 1e3:.0f} ms, {slow.bandwidth / 1e6:.1f} MB/s = "
          f"{slow.latency_s / latency:.0f}x the latency, 1/{bandwidth / slow.bandwidth:.0f} of the bandwidth")

    base = TrainSpec(model=GPTShape(vocab=256, seq_len=32, dim=64, heads=4, layers=2), batch_size=args.batch,
                     micro_batches=4, steps=args.steps, train_rows=256, holdout_rows=512, schedule=args.schedule)
    aqsgd = AQSGDConfig(args.bits, args.grad_bits, warmup_epochs=1)
    rows = [
        ("2x1", "none", dict(stages=2)),
        ("2x1", f"AQ-SGD {args.bits}/{args.grad_bits}-bit", dict(stages=2, aqsgd=aqsgd)),
        ("1x2", "all-reduce", dict(replicas=2)),
        ("1x2", f"DiLoCo H={args.inner}", dict(replicas=2, diloco=DiLoCoConfig(args.inner))),
        ("1x2", f"DiLoCo H={args.inner} 4-bit",
         dict(replicas=2, diloco=DiLoCoConfig(args.inner, compress="quant", bits=4))),
        ("1x2", f"DiLoCo H={args.inner} top10%",
         dict(replicas=2, diloco=DiLoCoConfig(args.inner, compress="topk", fraction=0.1, error_feedback=False))),
    ]
    if args.paper_outer:
        rows.append(("1x2", f"DiLoCo H={args.inner} 0.7/0.9",
                     dict(replicas=2, diloco=DiLoCoConfig(args.inner, outer_lr=0.7, outer_momentum=0.9))))
    programmed = ("none", "all-reduce", f"DiLoCo H={args.inner}", f"DiLoCo H={args.inner} 4-bit")
    if args.only_programs:
        rows = [row for row in rows if row[1] in programmed]
    if args.programs or args.only_programs:
        rows += [(layout, f"{name}, programs", {**kw, "programs": True}) for layout, name, kw in rows
                 if name in programmed]
        quantize = QuantizeConfig(args.bits, args.grad_bits, sum_bits=args.grad_bits)
        rows += [("2x1", f"quant {args.bits}/{args.grad_bits}, programs", dict(stages=2, programs=True, quantize=quantize)),
                 ("1x2", f"quant {args.grad_bits}-bit, programs", dict(replicas=2, programs=True, quantize=quantize))]
    if args.four:
        rows += [
            ("2x2", "none", dict(stages=2, replicas=2)),
            ("2x2", "AQ-SGD + DiLoCo 4-bit",
             dict(stages=2, replicas=2, aqsgd=aqsgd, diloco=DiLoCoConfig(args.inner, compress="quant", bits=4))),
        ]
    specs = []
    for _, _, kw in rows:
        fast = dataclasses.replace(base, **kw)
        specs += [fast, dataclasses.replace(fast, link=slow)]
    start = time.perf_counter()
    first = base.train_rows // base.batch_size  # throughput after the first epoch (AQ-SGD's warm-up)
    assert first == epoch
    results = run_many(specs)
    for _ in range(args.repeat - 1):
        again = run_many(specs)
        results = [max(a, b, key=lambda r: r.steps_per_s_from(first)) for a, b in zip(results, again)]
    print(f"{args.repeat} x {len(specs)} multi-process runs of {args.steps} steps in "
          f"{time.perf_counter() - start:.0f} s; steps/s over steps {first}..{args.steps - 1}")

    singles = {}
    for replicas in sorted({spec.replicas for spec in specs}):
        singles[replicas] = run_single(dataclasses.replace(base, replicas=replicas))
        print(f"single process, batches of the {replicas}-replica layout: held-out loss "
              f"{singles[replicas].heldout:.4f}, {singles[replicas].steps_per_s:.1f} steps/s")
    noise = abs(run_single(dataclasses.replace(base, seed=1)).heldout - singles[1].heldout)
    print(f"noise: held-out gap between single-process runs with seeds 0 and 1: {noise:.4f}")

    print(f"\n{'layout':6} {'compression':22} {'fast st/s':>9} {'slow st/s':>9} {'slowdown':>8} {'bytes/step':>11} "
          f"{'vs raw':>7} {'held-out':>8} {'vs single':>9}")
    raw: dict[str, float] = {}
    for index, (layout, name, _) in enumerate(rows):
        fast, slow_run = results[2 * index], results[2 * index + 1]
        assert all(torch.equal(fast.state[n], slow_run.state[n]) for n in fast.state), "links changed the math"
        raw.setdefault(layout, fast.bytes_per_step)
        single = singles[fast.spec.replicas]
        print(f"{layout:6} {name:22} {fast.steps_per_s_from(first):9.1f} {slow_run.steps_per_s_from(first):9.1f} "
              f"{fast.steps_per_s_from(first) / slow_run.steps_per_s_from(first):7.2f}x {fast.bytes_per_step:11,.0f} "
              f"{fast.bytes_per_step / raw[layout]:7.3f} {fast.heldout:8.4f} {fast.heldout - single.heldout:+9.4f}")


if __name__ == "__main__":
    main()
