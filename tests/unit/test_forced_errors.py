"""Forced errors: the solver's secret, with entropy drawn at claim, obliges a wrong first proof."""

import boa
import pytest
from eth_utils import keccak

from offchain.chain.suite import ETHER, TaskState
from tests.conftest import ALWAYS_FORCED, SECRET, SOLVER_STAKE, events

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def terms():
    return ALWAYS_FORCED


def _fund_jackpot(flow, tasks: int = 2) -> None:
    for _ in range(tasks):
        flow.claim(flow.create())


def test_is_forced_error__matches_python_reference(market):
    for i in range(50):
        secret, entropy = keccak(b"s%d" % i), keccak(b"e%d" % i)
        draw = int.from_bytes(keccak(secret + entropy), "big") % 1_000_000
        for ppm in (0, 1, draw, draw + 1, 1_000_000):
            assert market.is_forced_error(secret, entropy, ppm) == (draw < ppm)


def test_finalise__forced_error_nobody_exposed__verifier_forfeits_and_solver_resubmits(market, flow, actors):
    task_id = flow.to_state("accepted")
    t = flow.terms(task_id)
    pool = market.pool()
    flow.finalise(task_id)
    [log] = events(market, "ForcedErrorRevealed")
    assert log.exposed_by == ZERO
    task = market.tasks(task_id)
    assert task.state == TaskState.CLAIMED and task.round == 1
    assert market.pool() == pool + t.verifier_bond
    assert market.accounts(actors.solver).locked == SOLVER_STAKE  # the solver is not slashed
    # the genuine proof goes through a fresh verification and is paid normally
    with boa.env.prank(actors.verifier):
        market.deposit(2, value=ETHER)
    flow.submit(task_id, keccak(b"genuine"))
    flow.accept(task_id)
    flow.finalise(task_id)
    assert market.tasks(task_id).state == TaskState.FINALISED
    assert market.credits(actors.solver) > 0


def test_concede__verifier_caught_forced_error__paid_from_jackpot(market, arbiter, flow, actors):
    _fund_jackpot(flow)
    task_id = flow.to_state("submitted")
    t = flow.terms(task_id)
    dispute_id = flow.challenge(task_id, actors.verifier)
    pool = market.pool()
    solver_locked = market.accounts(actors.solver).locked
    with boa.env.prank(actors.solver):
        market.concede_forced_error(task_id, SECRET)
    [log] = events(market, "ForcedErrorRevealed")
    assert log.exposed_by == actors.verifier
    reward = min(pool * t.payout_ppm // 1_000_000, t.payout_cap)
    assert reward > 0
    assert market.credits(actors.verifier) == reward and market.pool() == pool - reward
    assert market.accounts(actors.verifier).locked == 0
    assert market.accounts(actors.solver).locked == solver_locked  # not slashed
    assert not arbiter.disputes(dispute_id).open
    assert market.tasks(task_id).state == TaskState.CLAIMED


def test_concede__whistleblower_exposes_accepting_verifier(market, flow, actors):
    _fund_jackpot(flow)
    task_id = flow.to_state("accepted")
    t = flow.terms(task_id)
    flow.challenge(task_id, actors.whistleblower)
    pool = market.pool()
    with boa.env.prank(actors.solver):
        market.concede_forced_error(task_id, SECRET)
    to_whistleblower = t.verifier_bond * t.winner_share_ppm // 1_000_000
    pool_after_slash = pool + t.verifier_bond - to_whistleblower
    reward = min(pool_after_slash * t.payout_ppm // 1_000_000, t.payout_cap)
    assert market.credits(actors.whistleblower) == to_whistleblower + reward
    assert market.accounts(actors.verifier).bonded == 10 * ETHER - t.verifier_bond
    assert market.accounts(actors.whistleblower).locked == 0
    assert market.pool() == pool_after_slash - reward


def test_concede__wrong_secret__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    flow.challenge(task_id, actors.verifier)
    with boa.env.prank(actors.solver), boa.reverts("market: secret does not match"):
        market.concede_forced_error(task_id, b"\x09" * 32)


def test_concede__by_stranger__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    flow.challenge(task_id, actors.verifier)
    with boa.env.prank(actors.stranger), boa.reverts("market: caller is not the solver"):
        market.concede_forced_error(task_id, SECRET)


def test_concede__resubmitted_proof__is_never_forced(market, arbiter, flow, actors):
    task_id = flow.to_state("submitted")
    flow.challenge(task_id, actors.verifier)
    with boa.env.prank(actors.solver):
        market.concede_forced_error(task_id, SECRET)
    flow.submit(task_id, keccak(b"genuine"))
    flow.challenge(task_id, actors.verifier)
    with boa.env.prank(actors.solver), boa.reverts("market: not a forced error"):
        market.concede_forced_error(task_id, SECRET)


def test_concede__not_disputed__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    with boa.env.prank(actors.solver), boa.reverts("market: task not disputed"):
        market.concede_forced_error(task_id, SECRET)
