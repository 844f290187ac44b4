"""Detection rate of the default verification policy vs the fraction of steps replayed.

Three parts, all printed:

1. SIMULATED (>= 1000 cheats per kind): segments are modelled abstractly.  The honest per-segment
   update norms come from a real 200-segment digits run; each simulated cheater marks some
   segments bad and sets their published norms as its strategy would (stall -> 0, noise -> like
   the previous update, forced error -> unchanged); the REAL ``select_segments`` / policy code
   then picks segments from a fresh verifier seed; the cheat counts as detected iff a bad segment
   is picked.  The modelling assumption "a replayed bad segment always exceeds the threshold" is
   checked in part 2.  The exact hypergeometric miss probability is printed alongside.
2. REAL: actual cheating runs on the 200-segment digits task, verified end to end by ``verify``
   (real replays, profiled threshold), plus the smallest bad-segment distance / threshold margin.
3. Stake arithmetic: cheating EV = (1 - d) * P_saved - d * S, with P_saved = f * P.

Run:  .venv/bin/python bench/detection.py   (add --real-trials 0 to skip part 2)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from offchain.ml import (  # noqa: E402
    DEFAULT_POLICY,
    VerificationPolicy,
    cheats,  # noqa: E402
    digits_task,
    keccak256,
    profile_threshold,
    replay_segment,
    select_segments,
    state_distance,
    train,
    verify,
)


def miss_probability(n: int, bad: int, policy: VerificationPolicy, bad_avoids_top: bool = True) -> float:
    """Exact P(no bad segment selected) when bad segments are never top-norm (worst case)."""
    q_top, q_random = policy.counts(n)
    pool = n - q_top if bad_avoids_top else n
    if bad > pool:
        return 0.0
    return math.comb(pool - bad, q_random) / math.comb(pool, q_random)


def simulate(kind: str, norms: list[float], fraction: float, policy: VerificationPolicy, trials: int,
             rng: np.random.Generator) -> float:
    n = len(norms)
    q_top, q_random = policy.counts(n)
    detected = 0
    for trial in range(trials):
        published = list(norms)
        if kind in ("skip-1-of-2", "wrong-data"):
            bad = set(range(n))
            published = [v * rng.uniform(0.5, 1.5) for v in norms]
        elif kind == "forced-error":
            bad = {int(np.argmax(norms))}
        else:
            count = max(1, math.ceil(fraction * n))
            bad = set(int(j) for j in rng.choice(n, size=count, replace=False))
            for j in bad:
                if kind.startswith("fabricate-stall"):
                    published[j] = 0.0
                else:  # noise mimicking the previous honest update
                    published[j] = norms[j - 1] if j else norms[0]
        seed = int.from_bytes(keccak256(f"{kind}/{fraction}/{trial}".encode()), "big")
        chosen = select_segments(published, q_top, q_random, seed)
        detected += bool(bad.intersection(chosen))
    return detected / trials


def part_simulated(norms: list[float], trials: int) -> None:
    n = len(norms)
    q_top, q_random = DEFAULT_POLICY.counts(n)
    replayed = (q_top + q_random) / n
    print(f"\n=== 1. SIMULATED: {n} segments (norms from a real digits run), {trials} cheats per kind ===")
    print(f"default policy: top-{q_top} by update norm + {q_random} random = {replayed:.1%} of steps replayed")
    kinds = [
        ("skip-1-of-2", 0.0), ("wrong-data", 0.0), ("forced-error", 0.0),
        ("fabricate-stall 1 segment", 1 / n), ("fabricate-noise 1 segment", 1 / n),
        ("fabricate-stall 5%", 0.05), ("fabricate-stall 10%", 0.10), ("fabricate-noise 10%", 0.10),
        ("fabricate-stall 20%", 0.20),
    ]
    rng = np.random.Generator(np.random.PCG64(2024))
    print(f"{'cheat kind':<28} {'detected':>9} {'exact (worst case)':>19}")
    for kind, fraction in kinds:
        rate = simulate(kind, norms, fraction, DEFAULT_POLICY, trials, rng)
        if kind in ("skip-1-of-2", "wrong-data"):
            exact = 1.0
        elif kind == "forced-error":
            exact = 1.0 if q_top >= 1 else float("nan")
        else:
            exact = 1 - miss_probability(n, max(1, math.ceil(fraction * n)), DEFAULT_POLICY)
        print(f"{kind:<28} {rate:>9.2%} {exact:>19.2%}")

    print("\ndetection of 'fabricate-stall' vs fraction of steps replayed "
          f"(simulated, {trials} cheats per cell; top share {DEFAULT_POLICY.top_share:.0%} of the budget)")
    fractions = [1 / n, 0.01, 0.05, 0.10, 0.20]
    header = "".join(f"{('1 seg' if f == 1 / n else f'{f:.0%}'):>9}" for f in fractions)
    print(f"{'replayed':>9}{header}")
    for replay_fraction in (0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.50):
        policy = VerificationPolicy(replay_fraction=replay_fraction, top_share=DEFAULT_POLICY.top_share)
        row = "".join(
            f"{simulate('fabricate-stall', norms, f, policy, trials, rng):>9.1%}" for f in fractions
        )
        print(f"{replay_fraction:>9.0%}{row}")
    d10 = 1 - miss_probability(n, math.ceil(0.10 * n), DEFAULT_POLICY)
    status = "MEETS" if d10 >= 0.99 and replayed <= 0.25 else "MISSES"
    print(f"\ntarget (>= 99% of solvers fabricating >= 10% of {n} segments, <= 25% replayed): "
          f"exact worst case {d10:.3%} with {replayed:.0%} replayed -> {status}")


def part_real(trials: int) -> None:
    demo = digits_task(steps=2000, k=10)
    n = demo.task.num_segments
    print(f"\n=== 2. REAL: digits, {demo.task.steps} steps, k={demo.task.checkpoint_interval}, {n} segments, "
          f"{trials} cheating runs per kind verified end to end ===")
    start = time.perf_counter()
    threshold = profile_threshold(demo.graph, demo.task, demo.spec, demo.dataset, demo.weights)
    print(f"profiled threshold {threshold.value:.2e} (largest honest distance {threshold.max_observed:.2e}, "
          f"safety x{threshold.safety_factor:g}, floor applied: {threshold.value > threshold.safety_factor * threshold.max_observed})")
    makers = {
        "honest (false positives)": lambda t: cheats.honest_run(demo),
        "skip-1-of-2": lambda t: cheats.skip_steps(demo, 2),
        "wrong-data (other seed)": lambda t: cheats.wrong_data(demo, "seed"),
        "fabricate-stall 10%": lambda t: cheats.fabricate_fraction(demo, 0.10, "stall", seed=t),
        "fabricate-noise 10%": lambda t: cheats.fabricate_fraction(demo, 0.10, "noise", seed=t),
        "forced-error": lambda t: cheats.forced_error(demo, seed=t),
    }
    print(f"{'kind':<26} {'flagged':>8} {'replayed*':>9} {'min bad dist / threshold':>25}")
    cache = {}
    for kind, make in makers.items():
        flagged = 0
        replayed = 0
        margins = []
        for trial in range(trials):
            key = (kind, trial if "fabricate" in kind or kind == "forced-error" else 0)
            if key not in cache:
                run = make(trial)
                cache[key] = (run, run.checkpoint_blobs(demo))
            run, blobs = cache[key]
            seed = int.from_bytes(keccak256(f"real/{kind}/{trial}".encode()), "big")
            verdict = verify(demo.task, demo.spec, demo.dataset, run.proof, blobs, threshold.value, seed,
                             graph=demo.graph)
            flagged += not verdict.accept
            replayed = max(replayed, verdict.replayed_steps)
            for j in sorted(run.bad_segments)[:3]:
                end = replay_segment(demo.graph, demo.task, demo.dataset, run.result.checkpoints[j].params, j)
                margins.append(state_distance(end, run.result.checkpoints[j + 1].params) / threshold.value)
        margin = f"{min(margins):.3g}" if margins else "-"
        print(f"{kind:<26} {flagged:>4}/{trials:<3} {replayed / demo.task.steps:>9.1%} {margin:>25}")
    print("* most steps replayed by one verification (it stops at the first failing segment)")
    print(f"(part 2 took {time.perf_counter() - start:.1f} s)")


def part_stake(n: int) -> None:
    print("\n=== 3. STAKE ARITHMETIC (default policy, worst case: bad segments never top-norm) ===")
    print("cheating EV = (1 - d) * P_saved - d * S,  P_saved = f * P  (compute skipped, priced at the payment)")
    print(f"{'f fabricated':>13} {'d':>8} {'EV at S=P':>11} {'EV at S=0.5P':>13} {'S/P needed':>11}")
    worst = 0.0
    for bad in sorted({1, 2, 5, 10, 20, 40, 100, n}):
        if bad > n:
            continue
        f = bad / n
        d = 1 - miss_probability(n, bad, DEFAULT_POLICY)
        needed = (1 - d) * f / d
        worst = max(worst, needed)
        print(f"{f:>13.3f} {d:>8.4f} {(1 - d) * f - d * 1.0:>+11.4f}P {(1 - d) * f - d * 0.5:>+12.4f}P {needed:>11.4f}")
    overall = 0.0
    for segments in range(1, 1001):
        for bad in range(1, segments + 1):
            d = 1 - miss_probability(segments, bad, DEFAULT_POLICY)
            if d == 0:
                overall = float("inf")
                continue
            overall = max(overall, (1 - d) * (bad / segments) / d)
    verdict = "S >= P (stake at least the payment)" if overall < 1 else f"S > {overall:.4f} P"
    print(f"on this {n}-segment task any stake S > {worst:.4f} P makes cheating unprofitable.")
    print(f"worst case over every task size 1..1000 segments and every number of fabricated segments: "
          f"S/P needed = {overall:.4f} (small tasks, where only a couple of segments are replayed), "
          f"so {verdict} makes cheating unprofitable for every task; a caught cheater also forfeits P.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000, help="simulated cheats per kind (>= 200)")
    parser.add_argument("--real-trials", type=int, default=8, help="real cheating runs per kind")
    args = parser.parse_args()
    demo = digits_task(steps=2000, k=10)
    honest = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, keep_params=False)
    part_simulated(honest.update_norms, max(args.trials, 200))
    if args.real_trials > 0:
        part_real(args.real_trials)
    part_stake(len(honest.update_norms))


if __name__ == "__main__":
    main()
