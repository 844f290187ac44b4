"""Chess clocks: charging, deadline boundaries (−1 / 0 / +1), extension, timeout by anyone, bound."""

from __future__ import annotations

import arbitration_testing as T
import boa
import pytest

from offchain.chain.suite import TaskState
from offchain.dispute import game as G
from offchain.dispute import moves as M


def _reveal(suite, parties, syn, dispute_id):
    args = M.reveal_segment_args(dispute_id, 1, T.syn_task(syn), syn.state_roots(1), syn.checkpoint_roots)
    with boa.env.prank(parties.solver):
        suite.game.reveal_segment(*args)
    return [syn.state_roots(1)[p] for p in M.dissection_points(syn.k)]


def _travel_to(t: int) -> None:
    boa.env.time_travel(seconds=t - boa.env.timestamp)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_solver_move__at_its_deadline_boundaries(suite, parties, syn, offset):
    _, dispute_id = T.open_synthetic(suite, parties, syn)
    deadline = suite.game.deadline(dispute_id)
    _travel_to(deadline + offset)
    args = M.reveal_segment_args(dispute_id, 1, T.syn_task(syn), syn.state_roots(1), syn.checkpoint_roots)
    if offset <= 0:
        with boa.env.prank(parties.solver):
            suite.game.reveal_segment(*args)
        d = suite.game.disputes(dispute_id)
        assert d.solver_clock == -offset and d.phase == G.PICK
        # the challenger still has its whole clock
        assert d.challenger_clock == T.CLOCK
    else:
        with boa.env.prank(parties.solver), boa.reverts("arbitration: clock expired"):
            suite.game.reveal_segment(*args)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_timeout__only_after_the_deadline(suite, parties, syn, offset):
    task_id, dispute_id = T.open_synthetic(suite, parties, syn)
    _travel_to(suite.game.deadline(dispute_id) + offset)
    if offset <= 0:
        with boa.reverts("arbitration: clock not expired"):
            suite.game.timeout(dispute_id)
    else:
        with boa.env.prank(parties.stranger):  # anyone may call it
            suite.game.timeout(dispute_id)
        assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON
        assert suite.market.tasks(task_id).state == TaskState.OPEN


def test_timeout__silent_challenger_loses(suite, parties, syn):
    task_id, dispute_id = T.open_synthetic(suite, parties, syn)
    _reveal(suite, parties, syn, dispute_id)
    _travel_to(suite.game.deadline(dispute_id) + 1)
    suite.game.timeout(dispute_id)
    [ended] = T.events(suite.game, "DisputeEnded")
    assert ended.solver_won and ended.reason == G.END_TIMEOUT
    assert suite.market.tasks(task_id).state == TaskState.ACCEPTED


def test_clock__charges_only_the_side_to_move(suite, parties, syn):
    _, dispute_id = T.open_synthetic(suite, parties, syn)
    boa.env.time_travel(seconds=700)
    revealed = _reveal(suite, parties, syn, dispute_id)
    boa.env.time_travel(seconds=250)
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, 2))
    d = suite.game.disputes(dispute_id)
    assert (d.solver_clock, d.challenger_clock) == (T.CLOCK - 700, T.CLOCK - 250)
    assert suite.game.deadline(dispute_id) == boa.env.timestamp + T.CLOCK - 700


def test_extension__a_last_second_move_leaves_the_opponent_time(suite, parties, syn):
    """The solver reveals at its very deadline; the challenger then burns all but 10 s of its clock;
    when the solver answers, the challenger is raised to `extension` seconds, not left with 10."""
    _, dispute_id = T.open_synthetic(suite, parties, syn)
    _travel_to(suite.game.deadline(dispute_id))
    revealed = _reveal(suite, parties, syn, dispute_id)
    d = suite.game.disputes(dispute_id)
    assert d.solver_clock == 0
    _travel_to(suite.game.deadline(dispute_id) - 10)
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, 0))
    d = suite.game.disputes(dispute_id)
    # the solver had 0 s left: it gets the extension to answer
    assert (d.solver_clock, d.challenger_clock) == (T.EXTENSION, 10)
    boa.env.time_travel(seconds=T.EXTENSION)
    with boa.env.prank(parties.solver):
        suite.game.commit_trace(dispute_id, syn.k, b"\x01" * 32)
    d = suite.game.disputes(dispute_id)
    assert (d.solver_clock, d.challenger_clock) == (0, T.EXTENSION)
    assert suite.game.deadline(dispute_id) == boa.env.timestamp + T.EXTENSION


def test_bound__views_match_the_model(suite):
    for k in (1, 4, 256, 257, 300, 65_536, 65_537, 10**6):
        assert suite.game.max_moves(k) == G.max_moves(k)
        assert suite.game.max_duration(k) == G.max_duration(k, T.CLOCK, T.EXTENSION)
    # reveal, pick, no bisect, trace, demand/post pairs, the dissection inside a reduction
    # (opening, two posts, one pick), the final proof
    assert G.max_moves(8) == 1 + 1 + 0 + 1 + 2 * G.MAX_DEMANDS + 4 + 1


def test_bound__the_slowest_game_still_ends_in_time(suite, parties, syn):
    """Both sides always move at their last second; the challenger demands as often as allowed.
    The game can be timed out no later than max_duration after it opened."""
    _, dispute_id = T.open_synthetic(suite, parties, syn)
    opened = suite.game.disputes(dispute_id).opened_at
    bound = opened + suite.game.max_duration(syn.k)
    _travel_to(suite.game.deadline(dispute_id))
    revealed = _reveal(suite, parties, syn, dispute_id)
    _travel_to(suite.game.deadline(dispute_id))
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, 0))
    _travel_to(suite.game.deadline(dispute_id))
    with boa.env.prank(parties.solver):
        suite.game.commit_trace(dispute_id, syn.k, b"\x01" * 32)
    # demands and posts, and the dissection inside a reduction, need real proofs: the slowest
    # possible remainder is bounded the same way
    remaining_moves = 2 * G.MAX_DEMANDS + G.REDUCTION_MOVES + 1
    latest = suite.game.deadline(dispute_id) + remaining_moves * T.EXTENSION + 1
    assert latest <= bound
    _travel_to(suite.game.deadline(dispute_id) + 1)
    suite.game.timeout(dispute_id)
    assert boa.env.timestamp <= bound
