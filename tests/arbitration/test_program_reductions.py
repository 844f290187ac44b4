"""The dissection inside a long reduction of a training program's node
(`contracts/ProgramReductionChecker.vy`, docs/arbitration.md §4.4 and §11): on real GPT and CNN
programs, an element of a linear reduction longer than the judge's 64 terms (matmuls with and
without a bias, the convolution gradients, sums) is opened, the solver posts the exact partials
of its chunks, and the challenger proves one chunk wrong (its terms named by
`ProgramIndex.chunk_inputs`) or the claim outside the fold's bound. A wrong element loses either
way, the honest solver's element and partials stand, and every move stays below 5 M gas."""

from __future__ import annotations


import arbitration_testing as T
import boa
import pytest
from program_testing import (
    DISPUTE_GAS,
    GAS,
    MOVE_GAS,
    answer,
    ended,
    first_node,
    gas,
    open_reduction,
    post,
    setup,
    tampered,
    to_prove,
    whole_dispute,
)

from offchain.dispute import game as G
from offchain.dispute import judge as J
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.dispute import program_rules as R
from offchain.ml import cheats
from offchain.ml.train import step_trace


#: (family, op, occurrence) of nodes with elements longer than 64 terms in the test programs
LONG = [
    ("gpt", "addmm", 0),                # a linear layer: 192 products, then the bias (a bias-only last chunk)
    ("gpt", "mm", 0),                   # a weight gradient over the batch's positions
    ("gpt", "sum", 0),                  # a bias gradient: a plain sum
    ("cnn", "conv2d_grad_weight", 0),   # over batch x output pixels, padding dropping taps
    ("cnn", "conv2d_grad_input", 0),
    ("cnn", "conv2d_grad_bias", 0),
    ("gpt-positions", "sum", 2),        # the loss: log-probabilities picked by one-hot targets, summed over 96 positions
    ("gpt-positions", "mm", 10),        # the token embedding's gradient: one_hot(tokens)ᵀ @ grad
    ("gpt-positions", "mm", 3),         # a 192-wide weight gradient: B read as rows of its transpose (attrs [1])
    ("gpt-positions", "sum", 7),        # a 192-wide bias gradient: the positions moved last by a view
]


def long_element(s, op: str, skip: int) -> tuple[int, int]:
    """(node, element) of the ``skip``-th node of ``op`` with a dissected element (its middle one
    if it is, else the first that is)."""
    data = s.data(s.trace)
    nodes = [n for n in s.program.nodes if n.op == op]
    for node in nodes[skip:]:
        for index in (node.numel // 2, *range(node.numel)):
            reads, _ = P.element_reads(data, node.id, index)
            if P.is_dissected(node, reads):
                return node.id, index
    raise AssertionError(f"no long {op} element")


def honest(s, trace, node_id: int, index: int) -> list:
    """The partials a solver posts: the exact ones of its own trace, for its own claim."""
    return P.reduction_call(s.data(trace), node_id, index).partials()


# ------------------------------------------------------------------------------- the honest solver


@pytest.mark.parametrize("family, op, skip", LONG, ids=[f"{f}-{o}" for f, o, _ in LONG])
def test_program_reduction__the_honest_element_and_partials_stand(suite, parties, family, op, skip):
    s = setup(family)
    node_id, index = long_element(s, op, skip)
    call = P.reduction_call(s.data(s.trace), node_id, index)
    assert len(call[1]) > J.MAX_REDUCTION and J.check_long(*call)
    dispute_id = open_reduction(suite, parties, s, s.trace, node_id, index)
    posted = post(suite, parties, dispute_id, honest(s, s.trace, node_id, index))
    assert answer(suite, s, s.trace, dispute_id, posted) is None
    game = suite.game.address
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: partials add up to the claim"):
            suite.program_reducer.prove_fold(*M.prove_fold_args(game, dispute_id, posted))
        for leaf in range(len(posted)):  # every chunk's partial is its exact one
            with boa.reverts("arbitration: partial is correct"):
                suite.program_reducer.prove_program_chunk(
                    *P.chunk_args(game, dispute_id, s.data(s.trace), node_id, index, posted, leaf, 0, len(posted)))


# ------------------------------------------------------------------------------- a wrong element loses


@pytest.mark.parametrize("family, op, skip", LONG, ids=[f"{f}-{o}" for f, o, _ in LONG])
def test_program_reduction__a_wrong_element_is_found_and_loses_on_the_fold(suite, parties, family, op, skip):
    """The honest challenger's search opens the reduction of the wrong element; the solver's
    exact partials do not add up to its claim."""
    s = setup(family)
    node_id, index = long_element(s, op, skip)
    bad = tampered(s.trace, node_id, index)
    assert not J.check_long(*P.reduction_call(s.data(bad), node_id, index))
    dispute_id = to_prove(suite, parties, s, bad)
    found = P.find_program_proof(suite.game.address, dispute_id, s.data(bad), s.after_root(bad))
    assert (found.kind, found.contract, found.fn) == ("reduction", "program_reducer", "open_program_reduction")
    assert found.args[5:7] == (node_id, index)
    gas(suite, suite.program_reducer, "open_program_reduction", parties.verifier, *found.args)
    posted = post(suite, parties, dispute_id, honest(s, bad, node_id, index))
    move = answer(suite, s, bad, dispute_id, posted)
    assert (move.kind, move.function, move.contract) == ("fold", "prove_fold", "program_reducer")
    gas(suite, suite.program_reducer, "prove_fold", parties.verifier, *move.args)
    ended(suite, dispute_id, T.END_FOLD)


def _forged(s, trace, node_id: int, index: int, chunk: int) -> list:
    """Exact partials with the gap between the wrong claim and their sum moved into ``chunk``:
    the fold holds, that chunk does not."""
    op, a, b, claimed = P.reduction_call(s.data(trace), node_id, index)
    values = J.reduction_partials(op, a, b, claimed)
    top = max(p.top for p in values)
    verdict = J.fold_tolerance(op, len(a), sum(p.x for p in values), sum(p.abs for p in values), top, claimed)
    gap = verdict.claim - verdict.exact
    p = values[chunk]
    values[chunk] = J.Partial(p.x + gap, p.abs + abs(gap), p.top)
    assert J.check_fold(op, len(a), sum(p.x for p in values), sum(p.abs for p in values), top, claimed)
    return values


@pytest.mark.parametrize("family, op, skip", LONG, ids=[f"{f}-{o}" for f, o, _ in LONG])
def test_program_reduction__partials_made_to_add_up_lose_on_their_chunk(suite, parties, family, op, skip):
    s = setup(family)
    node_id, index = long_element(s, op, skip)
    bad = tampered(s.trace, node_id, index)
    last = -(-len(P.reduction_call(s.data(bad), node_id, index)[1]) // J.MAX_REDUCTION) - 1
    dispute_id = open_reduction(suite, parties, s, bad, node_id, index)
    posted = post(suite, parties, dispute_id, _forged(s, bad, node_id, index, last))
    move = answer(suite, s, bad, dispute_id, posted)
    assert (move.kind, move.detail, move.function, move.contract) == (
        "chunk", f"chunk {last}", "prove_program_chunk", "program_reducer")
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: partials add up to the claim"):
        suite.program_reducer.prove_fold(*M.prove_fold_args(suite.game.address, dispute_id, posted))
    gas(suite, suite.program_reducer, "prove_program_chunk", parties.verifier, *move.args)
    ended(suite, dispute_id, T.END_CHUNK)


def test_program_reduction__a_bias_only_chunk_is_read_and_judged(suite, parties):
    """An addmm of 192 products and a bias has 193 terms: its last chunk is the bias alone (as
    bias * 1.0), read through the index map's bias read."""
    s = setup("gpt")
    node_id, index = long_element(s, "addmm", 0)
    node = s.program.nodes[node_id]
    ins = [s.program.nodes[i] for i in node.inputs]
    n, reads = R.chunk_inputs(node, ins, index, 192)
    assert n == 193 and [len(idx) for _, idx in reads] == [0, 0, 1]
    bad = tampered(s.trace, node_id, index)
    dispute_id = open_reduction(suite, parties, s, bad, node_id, index)
    posted = post(suite, parties, dispute_id, _forged(s, bad, node_id, index, 3))
    move = answer(suite, s, bad, dispute_id, posted)
    assert (move.kind, move.detail) == ("chunk", "chunk 3")
    with boa.env.prank(parties.verifier):
        suite.program_reducer.prove_program_chunk(*move.args)
    ended(suite, dispute_id, T.END_CHUNK)


# ------------------------------------------------------------------------------- malformed moves


def test_program_reduction__short_and_unjudged_reductions_and_wrong_reads_revert(suite, parties):
    s = setup("gpt")
    node_id, index = long_element(s, "mm", 0)
    dispute_id = to_prove(suite, parties, s, s.trace)
    game, data = suite.game.address, s.data(s.trace)
    short = next(n for n in s.program.nodes if n.op == "addmm" and not P.is_dissected(n, P.element_reads(data, n.id, 0)[0]))
    pointwise = first_node(s.program, "mul")
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: reduction fits the judge"):
            suite.program_reducer.open_program_reduction(*P.open_reduction_args(game, dispute_id, data, short.id, 0))
        with boa.reverts("rule: not a dissectable reduction"):
            suite.program_reducer.open_program_reduction(*P.open_reduction_args(game, dispute_id, data, pointwise, 0))
        forged = list(P.open_reduction_args(game, dispute_id, data, node_id, index))
        forged[4] = (bytes(32), *forged[4][1:])
        with boa.reverts("arbitration: program does not match the task"):
            suite.program_reducer.open_program_reduction(*forged)
        suite.program_reducer.open_program_reduction(*P.open_reduction_args(game, dispute_id, data, node_id, index))
    posted = post(suite, parties, dispute_id, honest(s, s.trace, node_id, index))
    args = list(P.chunk_args(game, dispute_id, data, node_id, index, posted, 0, 0, len(posted)))
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: wrong number of reads"):
            suite.program_reducer.prove_program_chunk(*args[:-1], args[-1][:-1])
        with boa.reverts("arbitration: tensor opening invalid"):
            suite.program_reducer.prove_program_chunk(*args[:-1], args[-1][::-1])


def test_program_reduction__only_the_game_own_checkers_report(suite, parties):
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: caller is not the checker"):
            suite.game.record_reduction(1, parties.verifier, 0, 0, J.OP_MATMUL, 100, 0)
        with boa.reverts("arbitration: caller is not the checker"):
            suite.game.conclude_reduction(1, parties.verifier, T.END_CHUNK)


# ------------------------------------------------------------------------------- whole disputes


@pytest.mark.parametrize("family", ["gpt", "cnn"])
def test_program_reduction__the_element_cheat_loses_a_whole_dispute_under_10M_gas(suite, parties, family):
    """The element cheat (its wrong element in the longest matmul-like node, its trace as it
    trained) against the workers' moves, from the challenge to the fold proof: every move under
    5 M gas, the whole dispute under 10 M."""
    s = setup(family)
    run = cheats.corrupt_element(s.demo, segment=0)
    trace = step_trace(cheats.corrupted(s.demo, run.corruption).graph, s.demo.task, s.demo.dataset,
                       run.result.checkpoints[0].params, 0).trace
    gas = whole_dispute(suite, parties, s, trace)
    if GAS:
        print("".join(f"\n{name}: {used:,}" for name, used in gas.items()) + f"\ntotal: {sum(gas.values()):,}")
    assert any(name.startswith("open_program_reduction") for name in gas) and "prove_fold (fold)" in gas
    assert max(gas.values()) < MOVE_GAS and sum(gas.values()) < DISPUTE_GAS


# ------------------------------------------------------------------------------- the workers' players


class _Market:
    """Just enough of `offchain.chain.client.Market` for `DisputePlayer.move`, on titanoboa; the
    game's events are kept from every transaction (`LOGS`) for `events.X().get_logs()`."""

    LOGS: list = []

    def __init__(self, suite, address):
        self.suite, self.account = suite, type("Account", (), {"address": address})()
        logs = self.LOGS

        class Filter:
            def __init__(self, name):
                self.name = name

            def get_logs(self, from_block=0, argument_filters=None):
                return [{"args": {"partials": log.partials}} for log in logs if type(log).__name__ == self.name]

        events = type("Events", (), {"__getattr__": lambda _, name: lambda: Filter(name)})()
        self.arbiter = type("Game", (), {"address": suite.game.address, "events": events})()
        self.checker, self.reducer = suite.checker, suite.program_reducer
        self.programs, self.program_links, self.program_reducer = suite.programs, suite.program_links, suite.program_reducer
        self.deployment = type("Deployment", (), {"block": 0})()

    def read(self, contract, name, *args):
        value = getattr(self.suite.game, name)(*args)
        return value._asdict() if hasattr(value, "_asdict") else value

    def transact(self, name, *args, contract):
        target = self.suite.game if contract is self.arbiter else contract
        with boa.env.prank(self.account.address):
            getattr(target, name)(*args)
        self.LOGS.extend(target.get_logs())


def _players(suite, parties, s, trace):
    """The workers' solver and challenger over ``s``'s task, the solver having committed ``trace``
    (read without a content store) and both reading checkpoint 0 as ``s``'s state."""
    from offchain.dispute.player import Defence, Prosecution, TaskSteps

    class Steps(TaskSteps):
        def checkpoint(self, index):
            return s.state

    class Played:
        def committed_trace(self, dispute_id, d):
            return list(trace)

    class Solver(Played, Defence):
        pass

    class Challenger(Played, Prosecution):
        pass

    _Market.LOGS = []
    steps = Steps(None, s.demo, None)
    return (Solver(_Market(suite, parties.solver), None, steps), Challenger(_Market(suite, parties.verifier), None, steps))


def _state(suite, dispute_id) -> dict:
    return suite.game.disputes(dispute_id)._asdict()


@pytest.mark.parametrize("family, op, skip", [LONG[0], LONG[4]], ids=["gpt-addmm", "cnn-conv2d_grad_input"])
def test_program_reduction__players_dissect_a_wrong_element(suite, parties, family, op, skip):
    """The workers' players make every move of the dissection: the challenger finds the wrong
    element and opens its reduction, the solver posts its exact partials, the challenger proves
    its answer wrong; the solver loses."""
    s = setup(family)
    node_id, index = long_element(s, op, skip)
    trace = tampered(s.trace, node_id, index)
    dispute_id = to_prove(suite, parties, s, trace)
    solver, challenger = _players(suite, parties, s, trace)
    said = [challenger.move(dispute_id, _state(suite, dispute_id))]
    assert said[0] == f"opened the reduction of node {node_id} element {index}"
    while suite.game.disputes(dispute_id).phase not in (G.SOLVER_WON, G.CHALLENGER_WON) and len(said) < 12:
        mover = solver if suite.game.to_move(dispute_id) == parties.solver else challenger
        said.append(mover.move(dispute_id, _state(suite, dispute_id)))
    assert said[1].startswith("posted ") and f"of node {node_id} element {index}" in said[1], said
    assert said[-1].startswith("proved"), said
    assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON


def test_program_reduction__players_defend_an_honest_element(suite, parties):
    s = setup("gpt")
    node_id, index = long_element(s, "addmm", 0)
    dispute_id = open_reduction(suite, parties, s, s.trace, node_id, index)
    solver, challenger = _players(suite, parties, s, s.trace)
    assert solver.move(dispute_id, _state(suite, dispute_id)).startswith("posted")
    assert challenger.move(dispute_id, _state(suite, dispute_id)) == challenger.NOTHING_TO_PROVE
    assert suite.game.disputes(dispute_id).phase == G.SUM_PICK
