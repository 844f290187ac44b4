"""Forced errors: the solver's secret, with entropy drawn after the claim, obliges a wrong first
proof. Only a forced error proven in the dispute game is rewarded, and nobody loses stake over one:
a verifier is never slashed for accepting a forced error, since the chain cannot tell it apart from
a genuine proof that a solver merely says was forced."""

import boa
import pytest
from eth_utils import keccak

from offchain.chain.suite import TaskState
from tests.conftest import ALWAYS_FORCED, SECRET, SOLVER_STAKE, assert_moved, books, events

ZERO = "0x0000000000000000000000000000000000000000"
PPM = 1_000_000


@pytest.fixture
def terms():
    return ALWAYS_FORCED


def _fund_jackpot(flow, tasks: int = 2) -> None:
    for _ in range(tasks):
        flow.claim(flow.create())


def _declare(market, task_id, secret=SECRET, sender=None):
    with boa.env.prank(sender or market.tasks(task_id).solver):
        market.declare_forced_error(task_id, secret)


def test_is_forced_error__matches_python_reference(market):
    for i in range(50):
        secret, entropy = keccak(b"s%d" % i), keccak(b"e%d" % i)
        draw = int.from_bytes(keccak(secret + entropy), "big") % 1_000_000
        for ppm in (0, 1, draw, draw + 1, 1_000_000):
            assert market.is_forced_error(secret, entropy, ppm) == (draw < ppm)


def test_honest_verifier_accepts_genuine_proof_solver_calls_forced__verifier_not_slashed(market, flow, actors):
    """A solver that draws "forced" but submits its genuine proof cannot get the honest verifier
    that accepted it slashed: the verifier is released without its fee, no stake moves."""
    task_id = flow.to_state("accepted")
    before = books(market, actors)
    t = flow.terms(task_id)
    flow.finalise(task_id)
    [log] = events(market, "ForcedErrorRevealed")
    assert log.exposed_by == ZERO
    assert_moved(before, books(market, actors), verifier__locked=-t.verifier_bond)
    task = market.tasks(task_id)
    assert task.state == TaskState.CLAIMED and task.round == 1 and task.verifier == ZERO
    # the genuine proof goes through a fresh verification and is paid normally, fee included
    flow.submit(task_id, keccak(b"genuine"))
    flow.accept(task_id)
    before = books(market, actors)
    flow.finalise(task_id)
    fee = task.escrow * t.verifier_fee_ppm // PPM
    assert_moved(before, books(market, actors), escrow=-task.escrow, solver__credit=task.escrow - fee,
                 verifier__credit=fee, solver__locked=-SOLVER_STAKE, verifier__locked=-t.verifier_bond)
    assert market.tasks(task_id).state == TaskState.FINALISED


def test_accomplice_whistleblower_on_genuine_forced_proof__coalition_loses(market, arbiter, flow, actors):
    """Solver draws "forced", submits its genuine proof; an accomplice whistleblower challenges and
    the solver declares the forced error. A genuine proof cannot be proven wrong, so the game ends
    by the solver's timeout: no jackpot payout, the verifier keeps its stake, the solver is slashed."""
    _fund_jackpot(flow)
    task_id = flow.to_state("accepted")
    t = flow.terms(task_id)
    dispute_id = flow.challenge(task_id, actors.whistleblower)
    _declare(market, task_id)
    [declared] = events(market, "ForcedErrorDeclared")
    assert declared.dispute_id == dispute_id and market.tasks(task_id).forced_declared
    before = books(market, actors)
    arbiter.decide(dispute_id, False, False)  # challenger wins by timeout: nothing proven
    to_whistleblower = SOLVER_STAKE * t.winner_share_ppm // PPM
    assert_moved(before, books(market, actors), verifier__locked=-t.verifier_bond,
                 whistleblower__locked=-t.challenge_bond, whistleblower__credit=to_whistleblower,
                 solver__bonded=-SOLVER_STAKE, solver__locked=-SOLVER_STAKE, pool=SOLVER_STAKE - to_whistleblower)
    assert market.tasks(task_id).state == TaskState.OPEN


def test_forced_error_proven_by_verifier__paid_from_jackpot_nobody_slashed(market, arbiter, flow, actors):
    _fund_jackpot(flow)
    task_id = flow.to_state("submitted")
    t = flow.terms(task_id)
    dispute_id = flow.challenge(task_id, actors.verifier)
    _declare(market, task_id)
    before = books(market, actors)
    arbiter.decide(dispute_id, False, True)
    reward = min(before["pool"] * t.payout_ppm // PPM, t.payout_cap)
    assert reward > 0
    assert_moved(before, books(market, actors), verifier__locked=-t.verifier_bond, verifier__credit=reward,
                 pool=-reward)
    task = market.tasks(task_id)
    assert task.state == TaskState.CLAIMED and task.round == 1 and not task.forced_declared


def test_forced_error_proven_by_whistleblower__paid_verifier_released(market, arbiter, flow, actors):
    _fund_jackpot(flow)
    task_id = flow.to_state("accepted")
    t = flow.terms(task_id)
    dispute_id = flow.challenge(task_id, actors.whistleblower)
    _declare(market, task_id)
    before = books(market, actors)
    arbiter.decide(dispute_id, False, True)
    reward = min(before["pool"] * t.payout_ppm // PPM, t.payout_cap)
    assert_moved(before, books(market, actors), verifier__locked=-t.verifier_bond,
                 whistleblower__locked=-t.challenge_bond, whistleblower__credit=reward, pool=-reward)
    assert market.tasks(task_id).state == TaskState.CLAIMED


def test_forced_error_not_declared__proven_loss_is_an_ordinary_loss(market, arbiter, flow, actors):
    task_id = flow.to_state("accepted")
    t = flow.terms(task_id)
    dispute_id = flow.challenge(task_id, actors.whistleblower)
    before = books(market, actors)
    arbiter.decide(dispute_id, False, True)
    to_winner = t.winner_share_ppm * (SOLVER_STAKE + t.verifier_bond) // PPM
    assert_moved(before, books(market, actors), whistleblower__locked=-t.challenge_bond,
                 whistleblower__credit=to_winner, verifier__locked=-t.verifier_bond,
                 verifier__bonded=-t.verifier_bond, solver__locked=-SOLVER_STAKE, solver__bonded=-SOLVER_STAKE,
                 pool=SOLVER_STAKE + t.verifier_bond - to_winner)


def test_declare__wrong_secret__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    flow.challenge(task_id, actors.verifier)
    with boa.reverts("market: secret does not match"):
        _declare(market, task_id, b"\x09" * 32)


def test_declare__by_stranger__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    flow.challenge(task_id, actors.verifier)
    with boa.reverts("market: caller is not the solver"):
        _declare(market, task_id, sender=actors.stranger)


def test_declare__resubmitted_proof__is_never_forced(market, arbiter, flow, actors):
    task_id = flow.to_state("submitted")
    dispute_id = flow.challenge(task_id, actors.verifier)
    _declare(market, task_id)
    arbiter.decide(dispute_id, False, True)
    flow.submit(task_id, keccak(b"genuine"))
    flow.challenge(task_id, actors.verifier)
    with boa.reverts("market: not a forced error"):
        _declare(market, task_id)


def test_declare__not_disputed__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    with boa.reverts("market: task not disputed"):
        _declare(market, task_id)


def test_group_forced_error__participant_and_step_are_drawn_from_the_secret():
    """A group's forced error goes where the claim's secret says: any participant at any step, the
    same for the same secret, so no verifier can check only where forced errors are put."""
    from offchain.workers.solver import forced_tamper
    from tests.e2e.test_group_e2e import SPEC

    drawn = {(t.rank, t.step) for t in (forced_tamper(SPEC, i.to_bytes(32, "big")) for i in range(200))}
    assert drawn == {(rank, step) for rank in range(SPEC.world) for step in range(SPEC.steps)}
    assert forced_tamper(SPEC, SECRET) == forced_tamper(SPEC, SECRET)
