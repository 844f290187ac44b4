"""Gas and wall time of whole disputes on the digits model (the MLP preset's 64-32-10 program, batch
32, k = 10), and of the dissection inside a reduction (batch 128 and 4096: weight and bias gradients
longer than the judge's 64 terms); trace size against checkpoint size.

Run: ``.venv/bin/python bench/dispute.py``

Deploys the judges, TensorReader, the checkers and Arbitration behind the test stand-in market
(`tests/arbitration/MarketStandIn.vy`) in titanoboa's in-process EVM, trains the digits task
honestly and with a fabricated segment, and plays complete disputes with real state roots, traces
and proofs (`offchain.dispute.program_moves`). Demand fees are paid at the block's base fee (1 gwei
here) and reported in gas at that price. Gas per transaction =
21,000 + calldata (16 gas per non-zero byte, 4 per zero byte) + execution (refunds capped at a
fifth, EIP-3529). Wall time is the titanoboa time of the on-chain moves plus the off-chain work
of building them (trace re-derivation is not included: the plays are prepared before timing).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import boa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "arbitration"))

import arbitration_testing as T  # noqa: E402

from offchain.dispute import judge as J  # noqa: E402
from offchain.dispute import program_moves as P  # noqa: E402
from offchain.ml import cheats  # noqa: E402
from bench.proof_overhead import trace_sizes  # noqa: E402

LIMIT = 10_000_000
def dissected(play: T.Play, op: str):
    """The last ``op`` node whose elements are dissected (a read longer than the judge's)."""
    data = play.step_data()
    return [n for n in play.program.nodes if n.op == op and P.is_dissected(n, P.element_reads(data, n.id, 0)[0])][-1]


def forged_partials(play: T.Play, node_id: int, index: int, chunk: int = 0):
    """A solver hiding the gap between its wrong claim and the exact sum in one chunk's partial."""
    call = P.reduction_call(play.step_data(), node_id, index)
    values = call.partials()
    top = max(p.top for p in values)
    verdict = J.fold_tolerance(call.op, len(call.a), sum(p.x for p in values), sum(p.abs for p in values), top,
                               call.claimed)
    gap = verdict.claim - verdict.exact
    values[chunk] = J.Partial(values[chunk].x + gap, values[chunk].abs + abs(gap), values[chunk].top)
    return lambda *_: values


def corrupted(play: T.Play, op: str, node_id: int | None = None) -> tuple[T.Play, int, int]:
    program = play.program
    node = program.nodes[node_id] if node_id is not None else next(n for n in program.nodes if n.op == op)
    trace = list(play.trace)
    flat = trace[node.id].clone().reshape(-1)
    index = node.numel - 1
    flat[index] += 1.0
    trace[node.id] = flat.reshape(node.shape)
    return dataclasses.replace(play, trace=trace), node.id, index


def main() -> None:
    started = time.perf_counter()
    demo = T.digits_demo(steps=20, k=10, batch_size=32)
    program = demo.graph.program
    honest = cheats.honest_run(demo)
    cheat = cheats.fabricate_segments(demo, [1], mode="noise")
    print(f"digits task: {len(program.nodes)} program nodes, k = {demo.task.checkpoint_interval}, "
          f"batch {demo.task.batch_size}; training both runs: {time.perf_counter() - started:.1f} s")
    suite = T.deploy_game_suite()
    parties = T.make_parties(suite.market)

    genuine = T.genuine_play(demo, honest, 1, 4)
    cases: list[tuple[str, T.Play, object, list]] = [
        ("cheater, honest trace -> output link", T.fabricated_play(demo, cheat, 1, "honest"), None, []),
        ("cheater, forged update -> update element", T.fabricated_play(demo, cheat, 1, "forged"), None, []),
    ]
    for op in ("addmm", "relu", "log_softmax", "nll_loss_grad", "log_softmax_grad", "threshold_backward", "mm",
               "sum", "mul", "sub"):
        play, node_id, index = corrupted(genuine, op)
        cases.append((f"corrupted {op} element -> judge", play, (node_id, index), []))
    x_node = program.leaf("data_x")
    bad_x = list(genuine.trace)
    x = bad_x[x_node].clone()
    x[5] = demo.dataset.x[0]
    bad_x[x_node] = x
    cases.append(("wrong data_x row -> data proof", dataclasses.replace(genuine, trace=bad_x), None, []))
    cases.append(("honest solver, 2 demands answered, challenger times out", genuine, None,
                  [(x_node, 0, 512), (program.outputs[0], 1024, 512)]))
    # the most a challenger can demand: every distinct 512-element range of the trace, up to 64
    ranges = [(n.id, s, min(512, n.numel - s)) for n in program.nodes for s in range(0, n.numel, 512)]
    cases.append((f"honest solver, {min(64, len(ranges))} distinct demands answered, challenger times out", genuine,
                  None, ranges[:64]))

    # the dissection inside a reduction: batches of 128 and 4096 (the largest a task may have)
    partials: dict[str, object] = {}
    sizes = [("digits, batch 32", program)]
    for batch in (128, 4096):
        wide = T.digits_demo(steps=2, k=1, batch_size=batch)
        sizes.append((f"digits, batch {batch}", wide.graph.program))
        wide_play = T.genuine_play(wide, cheats.honest_run(wide), 0, 0)
        dw, db = dissected(wide_play, "mm"), dissected(wide_play, "sum")  # dW = g^T a and db: batch terms
        for node, how in ((dw, "exact partials -> fold"), (db, "exact partials -> fold"),
                          (dw, "forged partials -> chunk")):
            play, node_id, index = corrupted(wide_play, node.op, node.id)
            name = f"batch {batch}: corrupted {node.op} element ({batch} terms), {how}"
            cases.append((name, play, None, []))
            if how.startswith("forged"):
                partials[name] = forged_partials(play, node_id, index)

    # two levels: 257 chunks (a batch of 16,448, past the 4096 a task may have)
    big_play = T.past_the_cap(T.digits_demo(steps=2, k=1, batch_size=64), (64, 32, 10), 64 * 257)
    db = dissected(big_play, "sum")
    play, node_id, index = corrupted(big_play, "sum", db.id)
    name = "batch 16,448: corrupted sum element (16,448 terms), last chunk forged -> two levels, chunk"
    cases.append((name, play, None, []))
    partials[name] = forged_partials(play, node_id, index, chunk=-1)

    rows = []
    worst_total = 0
    for name, play, element, demands in cases:
        with boa.env.anchor():
            proof = None
            if element is not None:
                dispute_id = suite.game.dispute_count() + 1
                proof = P.ProgramProof("element", "prove_element",
                                       P.element_args(suite.game.address, dispute_id, play.step_data(), *element))
            t0 = time.perf_counter()
            result = T.full_dispute(suite, parties, play, proof=proof, demands=demands,
                                    partials=partials.get(name, T.honest_partials))
            wall = time.perf_counter() - t0
        if len(demands) <= 2:  # the maximal-demand game is many transactions, each far below the limit
            worst_total = max(worst_total, result["total_gas"])
        rows.append((name, result, wall))

    print()
    basefee = boa.env.evm.vm.state.execution_context.base_fee_per_gas
    print("| dispute | moves | solver gas | challenger gas | total gas | demand fees (gas) | winner | wall s |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for name, r, wall in rows:
        winner = "solver" if r["solver_won"] else "challenger"
        print(f"| {name} | {r['moves']} | {r['solver_gas']:,} | {r['challenger_gas']:,} | {r['total_gas']:,} | "
              f"{r['fees'] // basefee:,} | {winner} | {wall:.2f} |")
    print()
    print("| move | gas |")
    print("|---|---:|")
    seen: dict[str, list[int]] = {}
    for _, r, _ in rows:
        for move, gas in r["gas"].items():
            seen.setdefault(move.split(" #")[0], []).append(gas)
    for move, gases in seen.items():
        low, high = min(gases), max(gases)
        print(f"| {move} | {high:,} |" if low == high or " (" in move else f"| {move} | {low:,} – {high:,} |")
    print()
    print(f"largest whole dispute with at most 2 demands: {worst_total:,} gas (limit {LIMIT:,}): "
          f"{'OK' if worst_total < LIMIT else 'OVER'}")
    print(f"bound: max_moves(k=10) = {suite.game.max_moves(10)}, max_duration = "
          f"{suite.game.max_duration(10):,} s with clock {T.CLOCK} s, extension {T.EXTENSION} s")
    print()
    print("| program | checkpoint bytes | trace bytes | trace / checkpoint |")
    print("|---|---:|---:|---:|")
    for name, sized in sizes:
        checkpoint, trace = trace_sizes(sized)
        print(f"| {name} | {checkpoint:,} | {trace:,} | {trace / checkpoint:.2f} |")


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help; no options
    main()
