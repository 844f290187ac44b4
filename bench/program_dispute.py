"""Gas of whole disputes over a training program's step: the element cheat on the GPT and CNN test
programs (tests/judge/program_runs.py), its wrong element in the longest matmul-like node (a
reduction longer than the judge's 64 terms, so the game goes inside it), in the attention softmax
and in a LayerNorm row; a wrong entry of a softmax-family row longer than 64 (GPTs with a
vocabulary of 100 and 80 positions); sums over many positions and wide operands, and a byte-level
GPT's 65,536-term gradient-norm sum; and the worst case of a dissection, a solver that forges its
partials so the fold holds and the challenger must prove a chunk.

Run: ``.venv/bin/python bench/program_dispute.py``

Deploys the game suite behind the test stand-in market (`tests/arbitration/MarketStandIn.vy`) in
titanoboa's in-process EVM and plays each dispute from the challenge to the final proof with the
workers' moves (`program_moves.find_program_proof`, `answer_partials`). Gas per transaction =
21,000 + calldata (16 / 4 per byte) + execution (refunds capped at a fifth, EIP-3529).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "arbitration"), str(ROOT / "tests" / "judge")]

import arbitration_testing as T  # noqa: E402
from program_testing import (  # noqa: E402
    exact_partials,
    forged_row_partials,
    nudged,
    row_element,
    setup,
    tampered,
    whole_dispute,
)

from offchain.dispute import judge as J  # noqa: E402
from offchain.dispute import program_moves as P  # noqa: E402
from offchain.ml import cheats  # noqa: E402
from offchain.ml.train import step_trace  # noqa: E402

MOVE_LIMIT, DISPUTE_LIMIT = 5_000_000, 10_000_000


def cheater_trace(family: str, op: str | None) -> tuple:
    s = setup(family)
    run = cheats.corrupt_element(s.demo, segment=0, op=op)
    trace = step_trace(cheats.corrupted(s.demo, run.corruption).graph, s.demo.task, s.demo.dataset,
                       run.result.checkpoints[0].params, 0).trace
    return s, trace


def forged_partials(data, node_id: int, index: int) -> list:
    """Exact partials with the gap between the solver's wrong claim and their sum moved into the
    last chunk: the fold holds, that chunk does not."""
    op, a, b, claimed = P.reduction_call(data, node_id, index)
    values = exact_partials(data, node_id, index)
    total = J.fold_tolerance(op, len(a), sum(p.x for p in values), sum(p.abs for p in values),
                             max(p.top for p in values), claimed)
    gap = total.claim - total.exact
    values[-1] = J.Partial(values[-1].x + gap, values[-1].abs + abs(gap), values[-1].top)
    return values


def forged_last_chunk(data, node_id: int, index: int) -> list:
    """A row's exact partials with its statistic moved into the last chunk so the fold holds."""
    row = P.reduction_call(data, node_id, index)
    return forged_row_partials(row, -(-row.n // 64) - 1)


def longest(s, op: str) -> tuple[int, int, int]:
    """(terms, node, element) of the longest dissected reduction among the ``op`` nodes."""
    data, best = s.data(s.trace), (0, -1, -1)
    for node in (n for n in s.program.nodes if n.op == op):
        index = node.numel // 2
        reads, _ = P.element_reads(data, node.id, index)
        if P.is_dissected(node, reads):
            best = max(best, (max(len(idx) for _, idx in reads), node.id, index))
    return best


def main() -> None:
    suite = T.deploy_game_suite()
    parties = T.make_parties(suite.market)
    rows = []
    for family, op, forge in [("gpt", None, False), ("gpt", None, True), ("gpt", "safe_softmax", False),
                              ("gpt", "layer_norm", False), ("cnn", None, False), ("cnn", None, True)]:
        s, trace = cheater_trace(family, op)
        gas = whole_dispute(suite, parties, s, trace, forged_partials if forge else exact_partials)
        rows.append((family, op or "longest matmul", "forged partials" if forge else "exact partials", gas))
    # long softmax-family rows (a vocabulary of 100, 80 positions): one entry 2% off
    for family, op in [("gpt-vocab", "log_softmax"), ("gpt-vocab", "log_softmax_grad"), ("gpt-seq", "safe_softmax"),
                       ("gpt-seq", "softmax_grad")]:
        s = setup(family)
        trace = nudged(s, *row_element(s, op))
        for forge in (False, True):
            gas = whole_dispute(suite, parties, s, trace, forged_last_chunk if forge else exact_partials)
            rows.append((family, f"{op} row", "forged partials" if forge else "exact partials", gas))
    # sums over many positions and wide operands (programs.md §2), and the longest reduction of a
    # byte-level GPT: its gradient norm's 65,536 squares, two posts deep
    for family, op in [("gpt-positions", "mm"), ("gpt-positions", "sum"), ("gpt-bytes", "sum")]:
        s = setup(family)
        terms, node_id, index = longest(s, op)
        trace = tampered(s.trace, node_id, index)
        for forge in (False, True):
            gas = whole_dispute(suite, parties, s, trace, forged_partials if forge else exact_partials)
            rows.append((family, f"{op} of {terms:,} terms", "forged partials" if forge else "exact partials", gas))
    print(f"{'family':<13} {'wrong element in':<24} {'solver posts':<16} {'moves':>5} {'largest move':>56} "
          f"{'total gas':>11}")
    for family, where, posts, gas in rows:
        name, largest = max(gas.items(), key=lambda kv: kv[1])
        total = sum(gas.values())
        print(f"{family:<13} {where:<24} {posts:<16} {len(gas):>5} {f'{name} {largest:,}':>56} {total:>11,}")
        assert largest < MOVE_LIMIT and total < DISPUTE_LIMIT, (family, where, posts)
    print(f"every move under {MOVE_LIMIT:,} gas, every dispute under {DISPUTE_LIMIT:,}")


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help; no options
    main()
