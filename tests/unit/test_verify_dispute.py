import boa
import pytest

from offchain.chain.suite import TaskState
from tests.conftest import PROOF_ROOT, SOLVER_STAKE, assert_moved, books, check_deadline_boundaries, events

ZERO = "0x0000000000000000000000000000000000000000"


def test_accept__opens_whistleblower_window(market, flow, actors):
    task_id = flow.to_state("submitted")
    flow.accept(task_id)
    [log] = events(market, "ProofAccepted")
    task = market.tasks(task_id)
    assert task.state == TaskState.ACCEPTED
    assert log.deadline == task.deadline == boa.env.timestamp + flow.terms(task_id).whistle_window


def test_accept__not_the_verifier__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    with boa.env.prank(actors.whistleblower), boa.reverts("market: caller is not the verifier"):
        market.accept(task_id)


def test_accept__deadline_boundaries(market, flow, actors):
    check_deadline_boundaries(flow, "submitted", actors.verifier, market.accept, "market: verify window passed")


def test_challenge__by_verifier__opens_dispute(market, arbiter, flow, actors):
    task_id = flow.to_state("submitted")
    dispute_id = flow.challenge(task_id, actors.verifier, segment=3)
    [log] = events(market, "Challenged")
    assert (log.challenger, log.segment, log.dispute_id) == (actors.verifier, 3, dispute_id)
    task = market.tasks(task_id)
    assert task.state == TaskState.DISPUTED and task.challenger == actors.verifier
    recorded = arbiter.disputes(dispute_id)
    assert (recorded.task_id, recorded.solver, recorded.segment) == (task_id, actors.solver, 3)


def test_challenge__by_whistleblower_after_accept__locks_bond(market, flow, actors):
    task_id = flow.to_state("accepted")
    flow.challenge(task_id, actors.whistleblower)
    assert market.accounts(actors.whistleblower).locked == flow.terms(task_id).challenge_bond


def test_challenge__whistleblower_before_accept__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    with boa.reverts("market: caller is not the verifier"):
        flow.challenge(task_id, actors.whistleblower)


@pytest.mark.parametrize("who", ["solver", "verifier"])
def test_challenge__self_attack_by_party__reverts(market, flow, actors, who):
    from offchain.chain.suite import ETHER, Role

    account = getattr(actors, who)
    with boa.env.prank(account):
        market.deposit(Role.WHISTLEBLOWER, value=ETHER)
    task_id = flow.to_state("accepted")
    with boa.reverts("market: party cannot blow the whistle"):
        flow.challenge(task_id, account)


def test_challenge__names_wrong_root__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    with boa.env.prank(actors.verifier), boa.reverts("market: proof root mismatch"):
        market.challenge(task_id, b"\x01" * 32, 0)


def test_challenge__segment_out_of_range__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    last = market.tasks(task_id).checkpoints - 1
    with boa.env.prank(actors.verifier), boa.reverts("market: no such segment"):
        market.challenge(task_id, PROOF_ROOT, last)
    with boa.env.prank(actors.verifier), boa.reverts("market: no such segment"):
        market.challenge(task_id, PROOF_ROOT, 2**256 - 1)


def test_challenge__after_whistle_window__reverts(market, flow, actors):
    task_id = flow.to_state("accepted")
    boa.env.time_travel(seconds=flow.terms(task_id).whistle_window + 1)
    with boa.reverts("market: challenge window passed"):
        flow.challenge(task_id, actors.whistleblower)


def test_resolve__solver_wins_against_verifier__bond_to_solver(market, arbiter, flow, actors):
    task_id = flow.to_state("submitted")
    dispute_id = flow.challenge(task_id, actors.verifier)
    t = flow.terms(task_id)
    arbiter.decide(dispute_id, True)
    task = market.tasks(task_id)
    assert task.state == TaskState.ACCEPTED and task.verifier == ZERO
    assert market.credits(actors.solver) == t.verifier_bond * t.winner_share_ppm // 1_000_000
    assert market.accounts(actors.verifier).locked == 0
    assert market.accounts(actors.verifier).bonded == 10 * 10**18 - t.verifier_bond
    flow.finalise(task_id)
    assert market.tasks(task_id).state == TaskState.FINALISED


def test_resolve__challenger_wins__solver_slashed_and_task_reopens(market, arbiter, flow, actors):
    task_id = flow.to_state("accepted")
    dispute_id = flow.challenge(task_id, actors.whistleblower)
    t = flow.terms(task_id)
    before = books(market, actors)
    arbiter.decide(dispute_id, False)
    expected = (SOLVER_STAKE + t.verifier_bond) * t.winner_share_ppm // 1_000_000
    assert_moved(before, books(market, actors), whistleblower__credit=expected,
                 whistleblower__locked=-t.challenge_bond, solver__locked=-SOLVER_STAKE,
                 solver__bonded=-SOLVER_STAKE, verifier__locked=-t.verifier_bond,
                 verifier__bonded=-t.verifier_bond, pool=SOLVER_STAKE + t.verifier_bond - expected)
    assert market.tasks(task_id).state == TaskState.OPEN


def test_whistleblower_wins_by_timeout__accepting_verifier_not_slashed(market, arbiter, flow, actors):
    """A solver that lets its clock run out against an accomplice whistleblower proves nothing
    about the proof the verifier accepted: the verifier is released, only the solver pays."""
    task_id = flow.to_state("accepted")
    dispute_id = flow.challenge(task_id, actors.whistleblower)
    t = flow.terms(task_id)
    before = books(market, actors)
    arbiter.decide(dispute_id, False, False)
    to_winner = SOLVER_STAKE * t.winner_share_ppm // 1_000_000
    assert_moved(before, books(market, actors), whistleblower__credit=to_winner,
                 whistleblower__locked=-t.challenge_bond, solver__locked=-SOLVER_STAKE,
                 solver__bonded=-SOLVER_STAKE, verifier__locked=-t.verifier_bond, pool=SOLVER_STAKE - to_winner)


def test_resolve__not_arbiter__reverts(market, flow, actors):
    task_id = flow.to_state("submitted")
    dispute_id = flow.challenge(task_id, actors.verifier)
    with boa.env.prank(actors.stranger), boa.reverts("market: caller is not the arbiter"):
        market.resolve(task_id, dispute_id, True, False)


def test_resolve__stale_dispute__reverts(market, arbiter, flow, actors):
    task_id = flow.to_state("submitted")
    dispute_id = flow.challenge(task_id, actors.verifier)
    with boa.env.prank(arbiter.address), boa.reverts("market: stale dispute"):
        market.resolve(task_id, dispute_id + 1, True, False)


def test_resolve__after_resolution__reverts(market, arbiter, flow, actors):
    task_id = flow.to_state("submitted")
    dispute_id = flow.challenge(task_id, actors.verifier)
    arbiter.decide(dispute_id, True)
    with boa.env.prank(arbiter.address), boa.reverts("market: task not disputed"):
        market.resolve(task_id, dispute_id, False, True)
