"""The multi-machine scheduler on DT-FM's network scenarios: cost of one training step.

For each scenario (64 devices, GPT-3 XL as 8 pipeline stages × 8 data-parallel replicas),
prints the step cost (s) of: a random placement (mean of --random draws), the in-order
placement, DT-FM's search (GCMA on its communication objective), and ours (see
offchain/distributed/scheduler.py), each baseline's ratio to ours, and the search times
(ours includes DT-FM's search, which it starts from). Run:

    .venv/bin/python bench/scheduler.py            # DT-FM ran 100 + 4900 candidates: --trials 4900
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from offchain.distributed import (  # noqa: E402
    SCENARIOS, Workload, dtfm_search, in_order_schedule, random_schedule, schedule,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--trials", type=int, default=1000, help="GCMA offspring per search")
    parser.add_argument("--random", type=int, default=10, help="random placements averaged")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--activation-compression", type=float, default=1.0)
    parser.add_argument("--gradient-compression", type=float, default=1.0)
    parser.add_argument("--sync-every", type=int, default=1)
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="default: all")
    args = parser.parse_args()

    workload = Workload.gpt3_xl(activation_compression=args.activation_compression,
                                gradient_compression=args.gradient_compression, sync_every=args.sync_every)
    print(f"GPT-3 XL, {workload.stages} stages × {workload.replicas} replicas, "
          f"{workload.micro_batches} micro-batches; "
          f"activations ÷{args.activation_compression:g}, gradients ÷{args.gradient_compression:g}, "
          f"sync every {args.sync_every}; GCMA {args.population} + {args.trials}, seed {args.seed}")
    header = (f"{'scenario':<24} {'random':>8} {'in-order':>9} {'DT-FM':>8} {'ours':>8} "
              f"{'rand/ours':>9} {'order/ours':>10} {'DT-FM/ours':>10} {'DT-FM s':>8} {'ours s':>7}")
    print(header)
    print("-" * len(header))
    for name in args.scenario or list(SCENARIOS):
        network = SCENARIOS[name]()
        rng = np.random.default_rng(args.seed)
        rand = float(np.mean([random_schedule(network, workload, rng).cost.total for _ in range(args.random)]))
        order = in_order_schedule(network, workload).cost.total
        dtfm = dtfm_search(network, workload, seed=args.seed, population=args.population, trials=args.trials)
        ours = schedule(network, workload, seed=args.seed, population=args.population, trials=args.trials,
                        baseline=dtfm)
        best = ours.schedule.cost.total
        print(f"{name:<24} {rand:8.2f} {order:9.2f} {dtfm.schedule.cost.total:8.2f} {best:8.2f} "
              f"{rand / best:9.2f} {order / best:10.2f} {dtfm.schedule.cost.total / best:10.3f} "
              f"{dtfm.seconds:8.1f} {ours.seconds:7.1f}", flush=True)


if __name__ == "__main__":
    main()
