"""Unit tests of the narrowing moves (open, reveal, pick, bisect, trace) and resolution."""

from __future__ import annotations

import arbitration_testing as T
import boa
import pytest
from eth_utils import keccak

from offchain.chain.suite import TaskState
from offchain.dispute import game as G
from offchain.dispute import moves as M
from offchain.ml.commit import merkle_root


@pytest.fixture
def opened(suite, parties, syn):
    return T.open_synthetic(suite, parties, syn, segment=1)


def test_open__only_the_market(suite, parties):
    with boa.reverts("arbitration: caller is not the market"):
        suite.game.open_dispute(1, parties.solver, parties.verifier, 0)


def test_open__records_the_dispute_and_solver_moves(suite, parties, syn):
    task_id, dispute_id = T.open_synthetic(suite, parties, syn, segment=2)
    [log] = T.events(suite.market, "DisputeOpened")  # emitted inside the market's challenge
    assert (log.dispute_id, log.task_id, log.solver, log.challenger, log.segment) == (
        dispute_id, task_id, parties.solver, parties.verifier, 2)
    d = suite.game.disputes(dispute_id)
    assert (d.phase, d.solver_clock, d.challenger_clock, d.turn_start) == (
        G.REVEAL, T.CLOCK, T.CLOCK, boa.env.timestamp)
    assert suite.game.to_move(dispute_id) == parties.solver
    assert suite.game.deadline(dispute_id) == boa.env.timestamp + T.CLOCK
    assert suite.market.tasks(task_id).dispute_id == dispute_id


def test_open__self_dispute_and_zero_addresses_revert(suite, parties):
    """A game bound to an account (not a contract) shows what open_dispute itself refuses."""
    fake_market = boa.env.generate_address("fake market")
    game = T.game_deployer().deploy(fake_market, suite.checker.address, suite.programs.address,
                                    suite.program_links.address, suite.program_reducer.address, T.CLOCK, T.EXTENSION)
    with boa.env.prank(fake_market):
        with boa.reverts("arbitration: solver cannot challenge itself"):
            game.open_dispute(1, parties.solver, parties.solver, 0)
        with boa.reverts("arbitration: zero address"):
            game.open_dispute(1, parties.solver, "0x" + "00" * 20, 0)
        assert game.open_dispute(1, parties.solver, parties.verifier, 0) == 1


def test_constructor__rejects_bad_clocks(suite):
    deployer = T.game_deployer()
    checkers = [suite.checker.address, suite.programs.address, suite.program_links.address,
                suite.program_reducer.address]
    with boa.reverts("arbitration: bad clock"):
        deployer.deploy(suite.market.address, *checkers, 0, 1)
    with boa.reverts("arbitration: bad extension"):
        deployer.deploy(suite.market.address, *checkers, 10, 11)
    for zero in range(len(checkers)):
        with boa.reverts("arbitration: zero address"):
            deployer.deploy(suite.market.address, *[a if i != zero else "0x" + "00" * 20 for i, a in enumerate(checkers)],
                            10, 1)


def test_unknown_dispute__reverts(suite, parties):
    with boa.reverts("arbitration: no such dispute"):
        suite.game.timeout(99)
    with boa.env.prank(parties.solver), boa.reverts("arbitration: no such dispute"):
        suite.game.commit_trace(99, 0, keccak(b"t"))


# ------------------------------------------------------------------------------- reveal


def _reveal_args(syn, dispute_id, segment=1, roots=None):
    return M.reveal_segment_args(dispute_id, segment, T.syn_task(syn), roots or syn.state_roots(segment),
                                 syn.checkpoint_roots)


def test_reveal__stores_the_segment_and_passes_the_turn(suite, parties, syn, opened):
    _, dispute_id = opened
    boa.env.time_travel(seconds=100)
    args = _reveal_args(syn, dispute_id)
    with boa.env.prank(parties.solver):
        suite.game.reveal_segment(*args)
    [log] = T.events(suite.game, "StatesRevealed")
    roots = syn.state_roots(1)
    assert (log.first_step, log.span, log.states_root, list(log.state_roots)) == (
        syn.k, syn.k, merkle_root(roots), roots)
    d = suite.game.disputes(dispute_id)
    assert (d.phase, d.first_step, d.span, d.points, d.states_root) == (G.PICK, syn.k, syn.k, syn.k, merkle_root(roots))
    assert (d.state_before, d.state_after) == (roots[0], roots[-1])
    assert (d.solver_clock, d.challenger_clock, d.moves) == (T.CLOCK - 100, T.CLOCK, 1)
    assert suite.game.to_move(dispute_id) == parties.verifier


@pytest.mark.parametrize("who", ["verifier", "stranger", "submitter"])
def test_reveal__not_the_solver__reverts(suite, parties, syn, opened, who):
    _, dispute_id = opened
    with boa.env.prank(getattr(parties, who)), boa.reverts("arbitration: caller is not the solver"):
        suite.game.reveal_segment(*_reveal_args(syn, dispute_id))


def test_reveal__wrong_segment__reverts(suite, parties, syn, opened):
    _, dispute_id = opened
    with boa.env.prank(parties.solver), boa.reverts("arbitration: wrong segment"):
        suite.game.reveal_segment(*_reveal_args(syn, dispute_id, segment=2))


def test_reveal__commitments_of_another_task__revert(suite, parties, syn, opened):
    _, dispute_id = opened
    args = list(_reveal_args(syn, dispute_id))
    args[2] = (*args[2][:-1], syn.k + 1)
    with boa.env.prank(parties.solver), boa.reverts("arbitration: commitments do not match the task"):
        suite.game.reveal_segment(*args)


@pytest.mark.parametrize("count", [0, 1, 8, 10])
def test_reveal__wrong_number_of_roots__reverts(suite, parties, syn, opened, count):
    _, dispute_id = opened
    args = list(_reveal_args(syn, dispute_id))
    roots = syn.state_roots(1)
    args[3] = (roots * 2)[:count]
    with boa.env.prank(parties.solver), boa.reverts("arbitration: wrong number of state roots"):
        suite.game.reveal_segment(*args)


@pytest.mark.parametrize("end", ["first", "last"])
def test_reveal__endpoints_not_the_checkpoints__revert(suite, parties, syn, opened, end):
    _, dispute_id = opened
    roots = syn.state_roots(1)
    roots[0 if end == "first" else -1] = keccak(b"forged")
    with boa.env.prank(parties.solver), boa.reverts("arbitration: endpoints are not the checkpoints"):
        suite.game.reveal_segment(*_reveal_args(syn, dispute_id, roots=roots))


def test_reveal__twice__reverts_wrong_phase(suite, parties, syn, opened):
    _, dispute_id = opened
    with boa.env.prank(parties.solver):
        suite.game.reveal_segment(*_reveal_args(syn, dispute_id))
        with boa.reverts("arbitration: wrong phase"):
            suite.game.reveal_segment(*_reveal_args(syn, dispute_id))


# ------------------------------------------------------------------------------- pick


def test_pick__one_step_goes_to_the_trace(suite, parties, syn, opened):
    _, dispute_id = opened
    revealed = T.reveal_synthetic(suite, parties, syn, dispute_id)
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, 5))
    [log] = T.events(suite.game, "IntervalPicked")
    assert (log.first_step, log.span, log.state_before, log.state_after) == (syn.k + 5, 1, revealed[5], revealed[6])
    d = suite.game.disputes(dispute_id)
    assert (d.phase, d.first_step, d.span, d.state_before, d.state_after) == (
        G.TRACE, syn.k + 5, 1, revealed[5], revealed[6])


def test_pick__not_the_challenger__reverts(suite, parties, syn, opened):
    _, dispute_id = opened
    revealed = T.reveal_synthetic(suite, parties, syn, dispute_id)
    for who in (parties.solver, parties.stranger, parties.whistleblower):
        with boa.env.prank(who), boa.reverts("arbitration: caller is not the challenger"):
            suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, 0))


def test_pick__names_another_states_root__reverts(suite, parties, syn, opened):
    _, dispute_id = opened
    revealed = T.reveal_synthetic(suite, parties, syn, dispute_id)
    args = list(M.pick_step_args(dispute_id, revealed, 0))
    args[1] = keccak(b"reorged")
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: wrong states root"):
        suite.game.pick_step(*args)


def test_pick__out_of_range_or_unproven__reverts(suite, parties, syn, opened):
    _, dispute_id = opened
    revealed = T.reveal_synthetic(suite, parties, syn, dispute_id)
    args = list(M.pick_step_args(dispute_id, revealed, 7))
    with boa.env.prank(parties.verifier):
        bad = list(args)
        bad[2] = 8
        with boa.reverts("arbitration: no such interval"):
            suite.game.pick_step(*bad)
        bad = list(args)
        bad[3] = keccak(b"not revealed")
        with boa.reverts("arbitration: roots not in the states root"):
            suite.game.pick_step(*bad)
        bad = list(args)
        bad[2] = 6  # the proof of interval 7 for interval 6
        with boa.reverts("arbitration: roots not in the states root"):
            suite.game.pick_step(*bad)


# ------------------------------------------------------------------------------- bisect (k > 256)


def test_bisect__long_segments_are_dissected_again(suite, parties):
    syn = T.synthetic(k=300, segments=2)
    _, dispute_id = T.open_synthetic(suite, parties, syn, segment=1)
    revealed = T.reveal_synthetic(suite, parties, syn, dispute_id)
    points = M.dissection_points(300)
    assert len(revealed) == 257 and suite.game.disputes(dispute_id).points == 256
    # interval i covers [⌊300 i / 256⌋, ⌊300 (i+1) / 256⌋): find one of two steps
    index = next(i for i in range(256) if points[i + 1] - points[i] == 2)
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, index))
    d = suite.game.disputes(dispute_id)
    first = 300 + points[index]
    assert (d.phase, d.first_step, d.span) == (G.BISECT, first, 2)
    assert suite.game.to_move(dispute_id) == parties.solver
    full = syn.state_roots(1)
    interval = full[points[index]:points[index + 1] + 1]
    with boa.env.prank(parties.solver):
        with boa.reverts("arbitration: wrong step"):
            suite.game.bisect(*M.bisect_args(dispute_id, first + 1, interval))
        with boa.reverts("arbitration: endpoints are not the picked roots"):
            suite.game.bisect(dispute_id, first, [interval[0], interval[1], keccak(b"x")])
        with boa.reverts("arbitration: wrong number of state roots"):
            suite.game.bisect(dispute_id, first, interval[:2])
        suite.game.bisect(*M.bisect_args(dispute_id, first, interval))
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, interval, 1))
    d = suite.game.disputes(dispute_id)
    assert (d.phase, d.first_step, d.span, d.state_before, d.state_after) == (
        G.TRACE, first + 1, 1, interval[1], interval[2])
    # reveal, two picks, one bisect, trace, demands, the dissection inside a reduction, final proof
    assert suite.game.max_moves(300) == G.max_moves(300) == 1 + 2 + 1 + 1 + 128 + 4 + 1


# ------------------------------------------------------------------------------- trace


def test_trace__names_the_step_and_opens_the_proof_phase(suite, parties, syn, opened):
    _, dispute_id = opened
    revealed = T.reveal_synthetic(suite, parties, syn, dispute_id)
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, 3))
    step = syn.k + 3
    with boa.env.prank(parties.solver):
        with boa.reverts("arbitration: wrong step"):
            suite.game.commit_trace(dispute_id, step + 1, keccak(b"trace"))
        with boa.reverts("arbitration: empty trace root"):
            suite.game.commit_trace(dispute_id, step, bytes(32))
        suite.game.commit_trace(dispute_id, step, keccak(b"trace"))
    [log] = T.events(suite.game, "TraceCommitted")
    assert (log.step, log.trace_root) == (step, keccak(b"trace"))
    d = suite.game.disputes(dispute_id)
    assert (d.phase, d.trace_root, d.moves) == (G.PROVE, keccak(b"trace"), 3)
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: wrong phase"):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, 3))


# ------------------------------------------------------------------------------- reports only from the checker


def test_checker_reports__only_from_the_checker(suite, parties, syn, opened):
    _, dispute_id = opened
    with boa.reverts("arbitration: caller is not the checker"):
        suite.game.conclude(dispute_id, parties.verifier, G.END_ELEMENT)
    with boa.reverts("arbitration: caller is not the checker"):
        suite.game.record_demand(dispute_id, parties.verifier, 0, 0, 1, 1, 4, 1)
    with boa.reverts("arbitration: caller is not the checker"):
        suite.game.record_post(dispute_id, parties.solver, bytes(32), [])


# ------------------------------------------------------------------------------- resolution


def test_timeout__resolves_the_market_once_and_closes_the_game(suite, parties, syn, opened):
    task_id, dispute_id = opened
    boa.env.time_travel(seconds=T.CLOCK + 1)
    with boa.env.prank(parties.stranger):
        suite.game.timeout(dispute_id)
    [ended] = T.events(suite.game, "DisputeEnded")
    assert (ended.dispute_id, ended.task_id, ended.solver_won, ended.reason) == (dispute_id, task_id, False, G.END_TIMEOUT)
    assert T.verdict(suite, dispute_id) == (False, False, 1)  # won on time: not proven
    assert suite.market.tasks(task_id).state == TaskState.OPEN
    assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON
    assert suite.game.to_move(dispute_id) == "0x" + "00" * 20 and suite.game.deadline(dispute_id) == 0
    with boa.reverts("arbitration: dispute closed"):
        suite.game.timeout(dispute_id)
    with boa.env.prank(parties.solver), boa.reverts("arbitration: dispute closed"):
        suite.game.reveal_segment(*_reveal_args(syn, dispute_id))


def test_several_challengers__disputes_are_independent(suite, parties, syn):
    """A frivolous verifier loses; a later whistleblower gets a fresh game with fresh clocks, and
    each dispute reports its own verdict exactly once."""
    task_id, first = T.open_synthetic(suite, parties, syn, segment=0)
    T.reveal_synthetic(suite, parties, syn, first, segment=0)
    boa.env.time_travel(seconds=T.CLOCK + 1)
    suite.game.timeout(first)  # the challenger stayed silent
    assert suite.game.disputes(first).phase == G.SOLVER_WON
    assert T.verdict(suite, first) == (True, False, 1)
    assert suite.market.tasks(task_id).state == TaskState.ACCEPTED
    second = suite.market.challenge(task_id, parties.solver, parties.whistleblower, 2)
    assert second == first + 1
    d = suite.game.disputes(second)
    assert (d.phase, d.challenger, d.segment, d.solver_clock, d.challenger_clock) == (
        G.REVEAL, parties.whistleblower, 2, T.CLOCK, T.CLOCK)
    assert suite.game.disputes(first).phase == G.SOLVER_WON
