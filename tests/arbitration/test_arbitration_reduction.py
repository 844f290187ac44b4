"""The dissection inside a reduction (docs/arbitration.md §4.4, docs/judge.md §3.7), the game's side
of it, on real training data of the MLP preset's program: an element of a linear reduction longer
than the judge's 64 terms (a matmul with its bias, a weight gradient, a bias gradient) is opened,
the solver posts exact partials over chunks of 64 terms, the challenger picks a group of chunks or
proves one chunk wrong or the claim outside the fold's bound. Cheats on the sums, the absolute
sums and the scale lose, posts out of range are refused, two levels reach the wrong chunk,
timeouts end the game as everywhere else, the model follows the chain, and every move stays far
below 5 M gas. The op-by-op cases of GPT and CNN programs are in test_program_reductions.py."""

from __future__ import annotations

import dataclasses
import functools

import arbitration_testing as T
import boa
import pytest

from offchain.dispute import game as G
from offchain.dispute import judge as J
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml.artifacts import synthetic_dataset
from offchain.ml.demo import mlp_task

MOVE_GAS = 5_000_000
DISPUTE_GAS = 10_000_000


def _long_nodes(play: T.Play, op: str) -> list:
    """The ``op`` nodes whose elements are dissected (a read longer than the judge's)."""
    data = play.step_data()
    return [n for n in play.program.nodes if n.op == op and P.is_dissected(n, P.element_reads(data, n.id, 0)[0])]


def _corrupted(play: T.Play, node_id: int, index: int, delta: float = 0.5) -> T.Play:
    trace = list(play.trace)
    bad = trace[node_id].clone().reshape(-1)
    bad[index] = bad[index] + delta
    trace[node_id] = bad.reshape(trace[node_id].shape)
    return dataclasses.replace(play, trace=trace)


def _open(suite, parties, play: T.Play, node_id: int, index: int) -> tuple[int, int]:
    """Dispute ``play`` to the proof phase and open the reduction of element ``index``."""
    task_id, dispute_id = T.play_to_prove(suite, parties, play)
    with boa.env.prank(parties.verifier):
        suite.program_reducer.open_program_reduction(*P.open_reduction_args(suite.game.address, dispute_id,
                                                                            play.step_data(), node_id, index))
    assert suite.game.disputes(dispute_id).phase == G.PARTIALS
    return task_id, dispute_id


def _post(suite, parties, play, dispute_id, chunk_values) -> list[tuple]:
    r = suite.game.reductions(dispute_id)
    args = M.post_partials_args(dispute_id, r.node, r.first, r.chunks, chunk_values)
    with boa.env.prank(parties.solver):
        suite.game.post_partials(*args)
    return args[3]


def _answer(suite, dispute_id, play, posted):
    r = suite.game.reductions(dispute_id)
    return P.answer_partials(suite.game.address, dispute_id, play.step_data(), r.node, r.index, posted, r.first,
                             r.chunks, not r.picked, r.total[2])


def _prove(suite, parties, answer) -> None:
    with boa.env.prank(parties.verifier):
        getattr(getattr(suite, answer.contract), answer.function)(*answer.args)


def _ended(suite, dispute_id, reason: int) -> None:
    [ended] = (T.events(suite.game, "DisputeEnded") or T.events(suite.program_reducer, "DisputeEnded")
               or T.events(suite.program_reducer, "DisputeEnded"))
    assert (ended.dispute_id, ended.solver_won, ended.reason) == (dispute_id, False, reason)
    assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON
    assert T.verdict(suite, dispute_id) == (False, True, 1)


def _shift(values: list, chunk: int, x: int = 0, total: int = 0, top: int = 0) -> list:
    out = list(values)
    p = out[chunk]
    out[chunk] = J.Partial(p.x + x, p.abs + total, p.top + top)
    return out


def _call(play: T.Play, node_id: int, index: int) -> J.LinearCall:
    return P.reduction_call(play.step_data(), node_id, index)


def _claim_gap(play, node_id, index) -> tuple[int, list]:
    """(claim - x in units of 2^G, honest chunk partials) of a corrupted element."""
    call = _call(play, node_id, index)
    values = call.partials()
    top = max(p.top for p in values)
    verdict = J.fold_tolerance(call.op, len(call.a), sum(p.x for p in values), sum(p.abs for p in values), top,
                               call.claimed)
    return verdict.claim - verdict.exact, values


# ------------------------------------------------------------------------------- every cheat loses


@pytest.mark.parametrize("op", ["addmm", "mm", "sum"])
def test_reduction__wrong_element_of_a_long_reduction_loses_on_the_fold(suite, parties, op):
    """A solver whose claimed element is wrong and whose partials are the exact ones (they do not
    add up to its claim) loses on the fold, found by the honest challenger's search."""
    base = T.honest_play(name="long")
    node = _long_nodes(base, op)[-1]
    index = node.numel // 2
    play = _corrupted(base, node.id, index)
    result = T.full_dispute(suite, parties, play)
    assert not result["solver_won"] and result["proven"]
    assert "prove_fold (fold)" in result["gas"], result["gas"]
    assert f"open_program_reduction (node {node.id}, {op})" in result["gas"], result["gas"]
    assert result["phase"] == G.CHALLENGER_WON


def test_reduction__partials_that_do_not_add_up_to_the_claim_lose_on_the_fold(suite, parties):
    base = T.honest_play(name="long")
    node = _long_nodes(base, "mm")[-1]
    play = _corrupted(base, node.id, 3, delta=0.25)
    _, dispute_id = _open(suite, parties, play, node.id, 3)
    posted = _post(suite, parties, play, dispute_id, T.honest_partials(play, node.id, 3))
    answer = _answer(suite, dispute_id, play, posted)
    assert answer.kind == "fold"
    _prove(suite, parties, answer)
    _ended(suite, dispute_id, T.END_FOLD)


@pytest.mark.parametrize("op", ["addmm", "sum"])
def test_reduction__partials_made_to_add_up_lose_on_a_chunk(suite, parties, op):
    """The solver moves the gap between its wrong claim and the exact sum into one chunk's partial:
    the fold holds, that chunk does not."""
    base = T.honest_play(name="long")
    node = _long_nodes(base, op)[-1]
    index = node.numel - 1
    play = _corrupted(base, node.id, index)
    gap, values = _claim_gap(play, node.id, index)
    forged = _shift(values, 1, x=gap, total=abs(gap))
    _, dispute_id = _open(suite, parties, play, node.id, index)
    posted = _post(suite, parties, play, dispute_id, forged)
    r = suite.game.reductions(dispute_id)
    call = _call(play, node.id, index)
    assert J.check_fold(call.op, r.n, r.total[0], r.total[1], r.total[2], call.claimed)  # the fold holds
    answer = _answer(suite, dispute_id, play, posted)
    assert (answer.kind, answer.detail) == ("chunk", "chunk 1")
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: partials add up to the claim"):
        suite.program_reducer.prove_fold(*M.prove_fold_args(suite.game.address, dispute_id, posted))
    _prove(suite, parties, answer)
    _ended(suite, dispute_id, T.END_CHUNK)


def test_reduction__inflated_absolute_sum_loses_on_its_chunk(suite, parties):
    """A solver widening the fold's tolerance with an inflated absolute sum: the fold accepts its
    wrong claim, the chunk check of the inflated partial does not."""
    base = T.honest_play(name="long")
    node = _long_nodes(base, "mm")[0]
    index = 5
    play = _corrupted(base, node.id, index, delta=0.01)
    gap, values = _claim_gap(play, node.id, index)
    call = _call(play, node.id, index)
    n = len(call.a)
    inflate = abs(gap) * (1 << 24) // n + 1          # gamma_n * abs now covers the gap
    forged = _shift(values, 0, total=inflate)
    top = max(p.top for p in forged)
    assert not J.check_fold(call.op, n, sum(p.x for p in values), sum(p.abs for p in values), top, call.claimed)
    assert J.check_fold(call.op, n, sum(p.x for p in forged), sum(p.abs for p in forged), top, call.claimed)
    _, dispute_id = _open(suite, parties, play, node.id, index)
    posted = _post(suite, parties, play, dispute_id, forged)
    answer = _answer(suite, dispute_id, play, posted)
    assert (answer.kind, answer.detail) == ("chunk", "chunk 0")
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: partials add up to the claim"):
        suite.program_reducer.prove_fold(*M.prove_fold_args(suite.game.address, dispute_id, posted))
    _prove(suite, parties, answer)
    _ended(suite, dispute_id, T.END_CHUNK)


def test_reduction__understated_top_loses_on_a_chunk(suite, parties):
    """A coarser or finer scale than the committed exponents allow: the partial whose largest
    exponent is misstated fails its chunk check, whatever the scale."""
    base = T.honest_play(name="long")
    node = _long_nodes(base, "sum")[-1]
    play = _corrupted(base, node.id, 0)
    _, values = _claim_gap(play, node.id, 0)
    best = max(range(len(values)), key=lambda c: values[c].top)
    forged = _shift(values, best, top=-1)
    _, dispute_id = _open(suite, parties, play, node.id, 0)
    posted = _post(suite, parties, play, dispute_id, forged)
    answer = _answer(suite, dispute_id, play, posted)
    assert answer.kind == "chunk"
    _prove(suite, parties, answer)
    _ended(suite, dispute_id, T.END_CHUNK)


def test_reduction__posts_out_of_range_revert(suite, parties):
    base = T.honest_play(name="long")
    node = _long_nodes(base, "addmm")[0]
    _, dispute_id = _open(suite, parties, base, node.id, 0)
    values = T.honest_partials(base, node.id, 0)
    r = suite.game.reductions(dispute_id)
    good = M.post_partials_args(dispute_id, node.id, 0, r.chunks, values)
    with boa.env.prank(parties.solver):
        with boa.reverts("arbitration: wrong range"):
            suite.game.post_partials(dispute_id, node.id, 1, good[3])
        with boa.reverts("arbitration: wrong number of partials"):
            suite.game.post_partials(dispute_id, node.id, 0, good[3][:-1])
        for bad in ((1, 0, 0), (0, J.MAX_PARTIAL_ABS + 1, 0), (0, 0, -41), (0, 0, 209)):
            with boa.reverts("arbitration: partial out of range"):
                suite.game.post_partials(dispute_id, node.id, 0, [bad] + list(good[3][1:]))
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: caller is not the solver"):
        suite.game.post_partials(*good)


# ------------------------------------------------------------------------------- two levels


@functools.cache
def _wide_batch_play() -> T.Play:
    """The MLP preset 8-8-3 with batch 64·257 = 16,448: its bias gradients sum 257 chunks, more
    than one post commits (256), so the partial covering the last two chunks is picked and posted
    again. Tasks cap the batch at 4096; this task is built past that cap (its fields set
    directly) to exercise the second level the game supports up to 2^22 terms."""
    small = mlp_task(8, (8,), 3, synthetic_dataset(64, 8, 3, seed=11), steps=2, k=1, batch_size=64, lr=0.2, seed=7)
    return T.past_the_cap(small, (8, 8, 3), 64 * 257)


def _bias_gradient(play: T.Play):
    """The last bias gradient: a sum over the batch."""
    return _long_nodes(play, "sum")[-1]


def test_reduction__two_levels_reach_the_wrong_chunk(suite, parties):
    base = _wide_batch_play()
    node = _bias_gradient(base)
    assert len(_call(base, node.id, 2).a) == 64 * 257
    play = _corrupted(base, node.id, 2)
    gap, values = _claim_gap(play, node.id, 2)
    forged = _shift(values, 256, x=gap, total=abs(gap))     # the gap hidden in the very last chunk
    gas = {}
    _, dispute_id = _open(suite, parties, play, node.id, 2)
    posted = _post(suite, parties, play, dispute_id, forged)
    assert len(posted) == 256
    answer = _answer(suite, dispute_id, play, posted)
    assert (answer.kind, answer.detail) == ("pick", "chunks 255..256")
    # a one-chunk partial cannot be picked, and the fold holds for the forged totals
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: one chunk: prove it"):
            suite.game.pick_partial(*M.pick_partial_args(dispute_id, posted, 0))
        with boa.reverts("arbitration: partials add up to the claim"):
            suite.program_reducer.prove_fold(*M.prove_fold_args(suite.game.address, dispute_id, posted))
    gas["pick_partial"] = T.tx_gas(suite.game, "pick_partial", parties.verifier, *answer.args)
    r = suite.game.reductions(dispute_id)
    assert (r.first, r.chunks, r.picked) == (255, 2, True)
    # the second post must add up to the picked partial exactly
    with boa.env.prank(parties.solver), boa.reverts("arbitration: partials do not add up to the picked one"):
        suite.game.post_partials(*M.post_partials_args(dispute_id, node.id, 255, 2, values))
    posted = _post(suite, parties, play, dispute_id, forged)
    answer = _answer(suite, dispute_id, play, posted)
    assert (answer.kind, answer.detail) == ("chunk", "chunk 256")
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: the fold is checked on the whole reduction"):
            suite.program_reducer.prove_fold(*M.prove_fold_args(suite.game.address, dispute_id, posted))
    _prove(suite, parties, answer)
    _ended(suite, dispute_id, T.END_CHUNK)


def test_reduction__two_level_dispute_gas(suite, parties):
    """Every move of a two-level dissection (256 partials posted) stays below 5 M gas, the whole
    dispute below 10 M."""
    base = _wide_batch_play()
    node = _bias_gradient(base)
    play = _corrupted(base, node.id, 2)
    gap, values = _claim_gap(play, node.id, 2)

    def forged(play, node_id, index):
        return _shift(values, 256, x=gap, total=abs(gap))

    result = T.full_dispute(suite, parties, play, partials=forged)
    gas = result["gas"]
    assert not result["solver_won"] and "prove_program_chunk (chunk 256)" in gas, gas
    assert sum(k.startswith("post_partials") for k in gas) == 2 and "pick_partial (chunks 255..256)" in gas
    assert max(gas.values()) < MOVE_GAS and result["total_gas"] < DISPUTE_GAS, gas


# ------------------------------------------------------------------------------- the honest solver cannot be beaten


@pytest.mark.parametrize("op", ["addmm", "sum"])
def test_reduction__honest_solver_passes_every_chunk_and_the_fold(suite, parties, op):
    play = T.honest_play(name="long")
    node = _long_nodes(play, op)[-1]
    index = node.numel - 1
    task_id, dispute_id = _open(suite, parties, play, node.id, index)
    posted = _post(suite, parties, play, dispute_id, T.honest_partials(play, node.id, index))
    assert _answer(suite, dispute_id, play, posted) is None
    game = suite.game.address
    with boa.env.prank(parties.verifier):
        with boa.reverts("arbitration: partials add up to the claim"):
            suite.program_reducer.prove_fold(*M.prove_fold_args(game, dispute_id, posted))
        r = suite.game.reductions(dispute_id)
        for leaf in range(r.points):
            with boa.reverts("arbitration: partial is correct"):
                suite.program_reducer.prove_program_chunk(*P.chunk_args(game, dispute_id, play.step_data(), node.id,
                                                                        index, posted, leaf, r.first, r.chunks))
    boa.env.time_travel(seconds=suite.game.deadline(dispute_id) - boa.env.timestamp + 1)
    suite.game.timeout(dispute_id)
    assert suite.game.disputes(dispute_id).phase == G.SOLVER_WON
    assert T.verdict(suite, dispute_id) == (True, False, 1)


# ------------------------------------------------------------------------------- clocks


def test_reduction__solver_that_does_not_post_loses_on_time(suite, parties):
    play = T.honest_play(name="long")
    node = _long_nodes(play, "addmm")[0]
    _, dispute_id = _open(suite, parties, play, node.id, 0)
    game = suite.game
    assert game.to_move(dispute_id) == parties.solver
    deadline = game.deadline(dispute_id)
    boa.env.time_travel(seconds=deadline - boa.env.timestamp)
    with boa.reverts("arbitration: clock not expired"):
        game.timeout(dispute_id)
    boa.env.time_travel(seconds=1)
    r = game.reductions(dispute_id)
    with boa.env.prank(parties.solver), boa.reverts("arbitration: clock expired"):
        game.post_partials(*M.post_partials_args(dispute_id, node.id, 0, r.chunks, T.honest_partials(play, node.id, 0)))
    game.timeout(dispute_id)
    [ended] = T.events(game, "DisputeEnded")
    assert (ended.solver_won, ended.reason) == (False, T.END_TIMEOUT)
    assert T.verdict(suite, dispute_id) == (False, False, 1)


def test_reduction__post_at_the_deadline_and_challenger_timeout(suite, parties):
    play = T.honest_play(name="long")
    node = _long_nodes(play, "sum")[-1]
    _, dispute_id = _open(suite, parties, play, node.id, 1)
    game = suite.game
    boa.env.time_travel(seconds=game.deadline(dispute_id) - boa.env.timestamp)
    posted = _post(suite, parties, play, dispute_id, T.honest_partials(play, node.id, 1))  # at the deadline: in time
    d = game.disputes(dispute_id)
    assert d.phase == G.SUM_PICK and d.solver_clock == 0 and d.challenger_clock >= T.EXTENSION
    assert game.to_move(dispute_id) == parties.verifier
    boa.env.time_travel(seconds=game.deadline(dispute_id) - boa.env.timestamp + 1)
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: clock expired"):
        suite.program_reducer.prove_fold(*M.prove_fold_args(game.address, dispute_id, posted))
    game.timeout(dispute_id)
    assert game.disputes(dispute_id).phase == G.SOLVER_WON
    assert T.verdict(suite, dispute_id) == (True, False, 1)


def test_reduction__bound_counts_the_dissection():
    model = G.Game(T.CLOCK, T.EXTENSION)
    assert G.max_moves(10) == 1 + 1 + 0 + 1 + 2 * G.MAX_DEMANDS + G.REDUCTION_MOVES + 1
    game = T.deploy_game_suite().game
    assert game.max_moves(10) == G.max_moves(10) and game.max_duration(10) == G.max_duration(10, T.CLOCK,
                                                                                             T.EXTENSION)
    assert model.clock == T.CLOCK


# ------------------------------------------------------------------------------- gas


def test_reduction__gas_per_move(suite, parties):
    """The long demo's dissection (one post of two partials): every move well below 5 M gas."""
    base = T.honest_play(name="long")
    node = _long_nodes(base, "mm")[0]   # a weight gradient: strided columns
    play = _corrupted(base, node.id, node.numel - 1)
    gap, values = _claim_gap(play, node.id, node.numel - 1)
    result = T.full_dispute(suite, parties, play, partials=lambda *_: _shift(values, 0, x=gap, total=abs(gap)))
    gas = result["gas"]
    assert "prove_program_chunk (chunk 0)" in gas and any(k.startswith("post_partials #1") for k in gas), gas
    assert max(gas.values()) < MOVE_GAS and result["total_gas"] < DISPUTE_GAS, gas


# ------------------------------------------------------------------------------- the reference model


def test_reduction__model_follows_the_chain_through_two_levels(suite, parties):
    """`offchain.dispute.game` plays the dissection side by side with the chain (phases, clocks,
    moves, refusals) through open, post, pick, post and a chunk proof, each move at a different
    time."""
    base = _wide_batch_play()
    node = _bias_gradient(base)
    play = _corrupted(base, node.id, 2)
    gap, values = _claim_gap(play, node.id, 2)
    forged = _shift(values, 256, x=gap, total=abs(gap))
    game = suite.game
    _, dispute_id = T.play_to_prove(suite, parties, play)
    d = game.disputes(dispute_id)
    model = G.Game(T.CLOCK, T.EXTENSION)
    model.disputes[dispute_id] = G.Dispute(d.task_id, parties.solver, parties.verifier, d.segment, d.phase, d.opened_at,
                                           d.turn_start, d.solver_clock, d.challenger_clock, d.moves)

    def same():
        chain, m = game.disputes(dispute_id), model.disputes[dispute_id]
        assert (chain.phase, chain.turn_start, chain.solver_clock, chain.challenger_clock, chain.moves) == (
            m.phase, m.turn_start, m.solver_clock, m.challenger_clock, m.moves)
        assert game.deadline(dispute_id) == m.deadline

    def step(seconds, sender, kind, call, **kwargs):
        boa.env.time_travel(seconds=seconds)
        model.move(boa.env.timestamp, dispute_id, kind, sender, **kwargs)
        with boa.env.prank(sender):
            call()
        same()

    data = play.step_data()
    step(100, parties.verifier, "open",
         lambda: suite.program_reducer.open_program_reduction(*P.open_reduction_args(game.address, dispute_id, data,
                                                                                     node.id, 2)),
         n=len(_call(play, node.id, 2).a))
    args = M.post_partials_args(dispute_id, node.id, 0, 257, forged)
    step(T.CLOCK - 50, parties.solver, "partials", lambda: game.post_partials(*args))
    with pytest.raises(G.GameError, match="one chunk: prove it"):
        model.move(boa.env.timestamp, dispute_id, "pick_partial", parties.verifier, index=0)
    step(7, parties.verifier, "pick_partial", lambda: game.pick_partial(*M.pick_partial_args(dispute_id, args[3], 255)),
         index=255)
    second = M.post_partials_args(dispute_id, node.id, 255, 2, forged)
    step(T.EXTENSION, parties.solver, "partials", lambda: game.post_partials(*second))
    with pytest.raises(G.GameError, match="the fold is checked on the whole reduction"):
        model.move(boa.env.timestamp, dispute_id, "fold", parties.verifier)
    answer = _answer(suite, dispute_id, play, second[3])
    step(1, parties.verifier, "chunk", lambda: suite.program_reducer.prove_program_chunk(*answer.args))
    assert model.disputes[dispute_id].reason == T.END_CHUNK
