"""Program tasks for the dispute tests over a program's step: real MLP, CNN, GPT and dropout
programs (tests/judge/program_runs.py) bound to tasks, one step traced honestly, the game driven to
the proof phase over a trace, and traces tampered at one element."""

from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import arbitration_testing as T
import torch

from offchain.dispute import judge as J
from offchain.dispute.game import PARTIALS
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.dispute import program_rules as R
from offchain.dispute import rows
from offchain.distributed.group import GroupTask, group_proof_root
from offchain.ml.artifacts import Dataset
from offchain.ml.capture import export_program, initial_tensors
from offchain.ml.commit import merkle_root, tensor_root
from offchain.ml.demo import DemoTask, program_task
from offchain.ml.models import GPT
from offchain.ml.program import Program, trace_roots
from offchain.ml.train import step_trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judge"))
from program_runs import FAMILIES  # noqa: E402

ROWS = 16
STEP = 0
_GPT = FAMILIES["gpt"][1]
#: the families', a four-block GPT whose 162 state tensors an output link opens in several runs, and
#: GPTs with softmax-family rows longer than 64: a vocabulary of 100 (the loss's log_softmax and its
#: gradient), 80 positions (the attention's safe_softmax and softmax_grad); and 96 positions a batch,
#: whose loss, embedding and LayerNorm weight gradients are sums over the positions, 48 wide (its
#: 192-wide MLP read as rows of transposed operands); and a byte-level GPT 128 wide, whose
#: gradient-norm sums run to 65,536 terms (a dissection two posts deep)
PROGRAMS = {**FAMILIES, "gpt-deep": (lambda: GPT(40, 12, 32, 4, 4), _GPT),
            "gpt-vocab": (lambda: GPT(100, 12, 32, 4, 1), _GPT),
            "gpt-seq": (lambda: GPT(40, 80, 32, 4, 1), replace(_GPT, batch_size=1, input_shape=(80,))),
            "gpt-positions": (lambda: GPT(40, 24, 48, 4, 1), replace(_GPT, batch_size=4, input_shape=(24,))),
            "gpt-bytes": (lambda: GPT(256, 32, 128, 4, 1), replace(_GPT, batch_size=4, input_shape=(32,)))}


@dataclass(frozen=True)
class Setup:
    """A program task (steps 2, k 1), the state before step 0 and its honest trace."""

    demo: DemoTask
    program: Program
    state: dict
    trace: tuple

    def after_root(self, trace) -> bytes:
        """The state root a solver whose trace is ``trace`` reveals after the step."""
        return merkle_root([tensor_root(trace[o]) for o in self.program.outputs])

    def data(self, trace) -> P.ProgramStep:
        demo = self.demo
        return P.ProgramStep(demo.task, self.program, list(trace), STEP,
                             [self.state[name] for name in demo.graph.param_names], demo.graph.hyper,
                             demo.dataset.x, demo.dataset.y)


@functools.cache
def setup(name: str) -> Setup:
    make, config = PROGRAMS[name]
    torch.manual_seed(0)
    model = make()
    program = export_program(model, config)
    weights = initial_tensors(model, program)
    g = torch.Generator().manual_seed(2)
    dim = config.data_dim
    if config.loss == "lm_cross_entropy":
        x = torch.randint(0, 40, (ROWS, dim), generator=g).float()
        y = torch.zeros(ROWS, dtype=torch.int64)
    else:
        x = torch.randn(ROWS, dim, generator=g)
        y = torch.randint(0, 5, (ROWS,), generator=g)
    demo = program_task(program, config.optimizer, weights, Dataset(x, y), steps=2, k=1, seed=5)
    state = demo.weights
    trace = step_trace(demo.graph, demo.task, demo.dataset, state, STEP).trace
    return Setup(demo, program, state, tuple(trace))


def to_prove(suite, parties, s: Setup, trace, after: bytes | None = None, gas: dict | None = None, *,
             group: GroupTask | None = None, mail: list | None = None) -> int:
    """A dispute over step 0 of ``s``'s task in which the solver committed ``trace`` (and revealed
    ``after``, by default its trace's outputs): the challenger is to prove. ``gas`` collects the
    gas of each move. With ``group``, ``s``'s task is one of its participants, disputed through
    the group's task, whose proof commits ``mail``."""
    task = s.demo.task
    before = task.weights_root
    after = after or s.after_root(trace)
    market, game = suite.market, suite.game
    dispute_id = game.dispute_count() + 1
    if group is None:
        checkpoints = [before, after, bytes(32)]
        task_id = market.post(task.hash(), merkle_root(checkpoints), len(checkpoints))
        segment = 0
        reveal = ("reveal_segment", M.reveal_segment_args(dispute_id, 0, task, [before, after], checkpoints))
    else:
        rank = [t.hash() for t in group.participants].index(task.hash())
        roots = [[t.weights_root] + [bytes(32)] * (t.steps // t.checkpoint_interval) for t in group.participants]
        roots[rank][1] = after
        task_id = market.post(group.hash(), group_proof_root(roots, mail)[1], group.checkpoints)
        segment = group.segment(rank, 0)
        reveal = ("reveal_participant_segment", M.reveal_participant_segment_args(
            dispute_id, segment, group.commitments(), group.participants, [before, after], roots, merkle_root(mail)))
    moves = [(market, "challenge", parties.verifier, (task_id, parties.solver, parties.verifier, segment)),
             (game, reveal[0], parties.solver, reveal[1]),
             (game, "pick_step", parties.verifier, M.pick_step_args(dispute_id, [before, after], 0)),
             (game, "commit_trace", parties.solver, (dispute_id, STEP, merkle_root(trace_roots(trace))))]
    for contract, fn, sender, args in moves:
        used = T.tx_gas(contract, fn, sender, *args)
        if gas is not None:
            gas[fn] = used
    return dispute_id


def exact_partials(data: P.ProgramStep, node_id: int, index: int) -> list:
    """What the solver posts in a dissection: the exact partials of its own trace."""
    return P.reduction_call(data, node_id, index).partials()


def whole_dispute(suite, parties, s: Setup, trace, partials=exact_partials) -> dict[str, int]:
    """A dispute over ``trace`` played to its end as the workers play it: the challenger's search
    (`find_program_proof`), and inside a long reduction the solver's ``partials`` and the
    challenger's answers. The gas of every move, by name."""
    gas: dict[str, int] = {}
    dispute_id = to_prove(suite, parties, s, trace, gas=gas)
    game, data = suite.game, s.data(trace)
    found = P.find_program_proof(game.address, dispute_id, data, s.after_root(trace))
    assert found is not None, "nothing to prove"
    checker = getattr(suite, found.contract)
    gas[f"{found.fn} (node {found.args[5]}, {s.program.nodes[found.args[5]].op})"] = T.tx_gas(
        checker, found.fn, parties.verifier, *found.args)
    level = 0
    while game.disputes(dispute_id).phase == 9:  # PARTIALS
        level += 1
        r = game.reductions(dispute_id)
        args = M.post_partials_args(dispute_id, r.node, r.first, r.chunks, partials(data, r.node, r.index))
        gas[f"post_partials #{level} ({len(args[3])} partials)"] = T.tx_gas(game, "post_partials", parties.solver, *args)
        r = game.reductions(dispute_id)
        move = P.answer_partials(game.address, dispute_id, data, r.node, r.index, args[3], r.first, r.chunks,
                                 not r.picked, r.total[2])
        gas[f"{move.function} ({move.detail})"] = T.tx_gas(getattr(suite, move.contract), move.function, parties.verifier,
                                                           *move.args)
    assert T.verdict(suite, dispute_id) == (False, True, 1)
    return gas


def tampered(trace, node_id: int, index: int = 0, value=None) -> list:
    out = list(trace)
    t = out[node_id].clone()
    flat = t.reshape(-1)
    if value is not None:
        flat[index] = value
    elif t.dtype == torch.float32:
        flat[index] = flat[index] * 1.5 + 0.25
    elif t.dtype == torch.bool:
        flat[index] = ~flat[index]
    else:
        flat[index] = flat[index] + 1
    out[node_id] = t
    return out


def first_node(program: Program, op: str, skip: int = 0) -> int:
    return [n.id for n in program.nodes if n.op == op][skip]


# ------------------------------------------------------------------------------- inside a reduction or row

MOVE_GAS = 5_000_000
DISPUTE_GAS = 10_000_000
GAS = os.environ.get("ARB_PROGRAM_GAS")  # print the gas of each move


def gas(suite, contract, fn: str, sender: str, *args) -> int:
    """The gas of one move (below MOVE_GAS), printed with ARB_PROGRAM_GAS set."""
    used = T.tx_gas(contract, fn, sender, *args)
    if GAS:
        print(f"\n{fn}: {used:,} gas (transaction)")
    assert used < MOVE_GAS
    return used


def open_reduction(suite, parties, s: Setup, trace, node_id: int, index: int) -> int:
    """A dispute over ``trace`` with the reduction (or row) of element ``index`` opened."""
    dispute_id = to_prove(suite, parties, s, trace)
    args = P.open_reduction_args(suite.game.address, dispute_id, s.data(trace), node_id, index)
    gas(suite, suite.program_reducer, "open_program_reduction", parties.verifier, *args)
    r = suite.game.reductions(dispute_id)
    assert suite.game.disputes(dispute_id).phase == PARTIALS and (r.node, r.index) == (node_id, index)
    return dispute_id


def post(suite, parties, dispute_id: int, partials) -> list[tuple]:
    """The solver posts ``partials`` (one per chunk) grouped as the game expects: the posted tuples."""
    r = suite.game.reductions(dispute_id)
    args = M.post_partials_args(dispute_id, r.node, r.first, r.chunks, partials)
    gas(suite, suite.game, "post_partials", parties.solver, *args)
    return args[3]


def answer(suite, s: Setup, trace, dispute_id: int, posted):
    """The honest challenger's answer to the last post."""
    r = suite.game.reductions(dispute_id)
    return P.answer_partials(suite.game.address, dispute_id, s.data(trace), r.node, r.index, posted, r.first,
                             r.chunks, not r.picked, r.total[2])


def ended(suite, dispute_id: int, reason: int) -> None:
    """The challenger won, for ``reason``, on a checker's proof."""
    assert T.verdict(suite, dispute_id) == (False, True, 1)
    [last] = (T.events(suite.program_reducer, "DisputeEnded") or T.events(suite.program_reducer, "DisputeEnded"))[-1:]
    assert (last.dispute_id, last.reason) == (dispute_id, reason)


# ------------------------------------------------------------------------------- long softmax-family rows


def row_element(s, op: str) -> tuple[int, int]:
    """(node, element) of the last ``op`` node: an entry of the last row (of the last position,
    so a causal attention row holds every earlier entry) at which a tampered value stays
    meaningful: the row's pivot for the forward ops, an entry with y_j > 0 for softmax_grad."""
    data = s.data(s.trace)
    node = [n for n in s.program.nodes if n.op == op][-1]
    row = R._along(node.shape, node.numel - 1, node.attrs[0])
    reads, values = P.element_reads(data, node.id, row[-1])
    assert P.is_dissected(node, reads) and len(row) > rows.CHUNK
    if op in rows.PIVOTED:
        pivot = rows.pivot_of(max(rows.pivot_key(b, k) for k, b in enumerate(values[0]) if not R._is_neg_inf(b)),
                              len(row))
        return node.id, row[pivot[1]]
    y = values[1] if op == "softmax_grad" else values[0]
    return node.id, row[max(range(len(row)), key=lambda k: R.value(y[k]))]


def nudged(s: Setup, node_id: int, index: int) -> list:
    """The trace with element ``index`` of node ``node_id`` 2% off: wrong, yet a value the row's
    statistics could be moved to hold (``forged_row_partials``)."""
    return tampered(s.trace, node_id, index, value=s.trace[node_id].reshape(-1)[index].item() * 0.98)


def forged_row_partials(row, chunk: int) -> list:
    """The exact partials with ``chunk``'s moved so that the totals hold the wrong claim: the
    row's statistic set to what the claim implies (S for a forward row, the sum for a gradient)."""
    values = row.partials()
    whole, c = sum(values[1:], values[0]), R.value(row.claimed)
    if isinstance(row, rows.PivotedRow):
        z = R.value(row.row[row.j])
        target = (math.exp(-c) if row.op == "log_softmax" else 1 / c) * (1 << 64)  # at the pivot: e_j = 1
        assert z == R.value(row.row[rows.pivot_of(whole.top, row.n)[1]])
        gap = round(target) - whole.x
        p = values[chunk]
        values[chunk] = J.Partial(p.x + gap, p.abs + gap, p.top)
    else:
        g = R.value(row.g[row.j])
        y = R.value(row.y[row.j] if row.op == "softmax_grad" else row.y[0])
        target = g - c / y if row.op == "softmax_grad" else (g - c) / Fraction(math.exp(y))
        scale = J.reduction_scale(whole.top, row.claimed)
        gap = round(target / Fraction(2) ** scale) - whole.x
        p = values[chunk]
        values[chunk] = J.Partial(p.x + gap, p.abs + abs(gap), p.top)
    assert row.holds(sum(values[1:], values[0]))
    return values
