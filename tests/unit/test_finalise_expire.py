import boa

from offchain.chain.suite import ETHER, TaskState
from tests.conftest import PAYMENT, SECRET, SOLVER_STAKE, assert_moved, books, events


ZERO = "0x0000000000000000000000000000000000000000"


def test_finalise__wrong_secret__reverts(market, flow, actors):
    task_id = flow.to_state("accepted")
    boa.env.time_travel(seconds=flow.terms(task_id).whistle_window + 1)
    with boa.env.prank(actors.solver), boa.reverts("market: secret does not match"):
        market.finalise(task_id, b"\x02" * 32)


def test_finalise__window_boundaries(market, flow, actors):
    """Refused while the whistleblower window is open (deadline included), then allowed."""
    for offset, reason in [(-1, "market: whistleblower window open"), (0, "market: whistleblower window open"), (1, None)]:
        task_id = flow.to_state("accepted")
        boa.env.time_travel(seconds=market.tasks(task_id).deadline - boa.env.timestamp + offset)
        with boa.env.prank(actors.solver):
            if reason:
                with boa.reverts(reason):
                    market.finalise(task_id, SECRET)
            else:
                market.finalise(task_id, SECRET)
                [log] = events(market, "TaskFinalised")
                assert log.solver == actors.solver


def test_finalise__after_reveal_window__reverts(market, flow, actors):
    task_id = flow.to_state("accepted")
    t = flow.terms(task_id)
    boa.env.time_travel(seconds=t.whistle_window + t.reveal_window + 1)
    with boa.env.prank(actors.solver), boa.reverts("market: reveal window passed"):
        market.finalise(task_id, SECRET)


def test_finalise__twice__pays_once(market, flow, actors):
    task_id = flow.to_state("accepted")
    flow.finalise(task_id)
    credit = market.credits(actors.solver)
    with boa.env.prank(actors.solver), boa.reverts("market: task not accepted"):
        market.finalise(task_id, SECRET)
    assert market.credits(actors.solver) == credit


def test_expire__open_task_after_expiry__refunds(market, flow, actors):
    task_id = flow.create(expires_in=100)
    with boa.env.prank(actors.stranger):
        with boa.reverts("market: task not expired"):
            market.expire(task_id)
        boa.env.time_travel(seconds=101)
        market.expire(task_id)
    assert market.tasks(task_id).state == TaskState.REFUNDED
    assert market.credits(actors.submitter) == PAYMENT


def test_expire__solver_missed_deadline__slashed_and_reopened(market, flow, actors):
    task_id = flow.to_state("claimed")
    t = flow.terms(task_id)
    boa.env.time_travel(seconds=market.tasks(task_id).deadline - boa.env.timestamp)
    with boa.env.prank(actors.stranger), boa.reverts("market: proof deadline not passed"):
        market.expire(task_id)
    boa.env.time_travel(seconds=1)
    with boa.env.prank(actors.stranger):
        market.expire(task_id)
    [log] = events(market, "TaskExpired")
    assert log.culprit == actors.solver
    assert market.tasks(task_id).state == TaskState.OPEN
    assert market.accounts(actors.solver).bonded == 10 * ETHER - SOLVER_STAKE
    assert market.credits(actors.submitter) == SOLVER_STAKE * t.winner_share_ppm // 1_000_000


def test_expire__solver_missed_deadline_after_expiry__refunds(market, flow, actors):
    task_id = flow.create(expires_in=100)
    flow.claim(task_id)
    boa.env.time_travel(seconds=market.tasks(task_id).deadline - boa.env.timestamp + 1)
    market.expire(task_id)
    task = market.tasks(task_id)
    assert task.state == TaskState.REFUNDED and task.escrow == 0
    slash_share = SOLVER_STAKE * flow.terms(task_id).winner_share_ppm // 1_000_000
    assert market.credits(actors.submitter) == slash_share + PAYMENT - PAYMENT * flow.terms(task_id).tax_ppm // 1_000_000


def test_expire__silent_verifier__slashed_lightly_and_redrawn(market, flow, actors):
    task_id = flow.to_state("submitted")
    t = flow.terms(task_id)
    before = books(market, actors)
    boa.env.time_travel(seconds=t.verify_window + 1)
    market.expire(task_id)
    assert_moved(before, books(market, actors), verifier__bonded=-t.silence_slash,
                 verifier__locked=-t.verifier_bond, pool=t.silence_slash)
    # a new draw is committed to this block: the caller of expire cannot pick the next verifier
    task = market.tasks(task_id)
    assert task.state == TaskState.SUBMITTED and task.verifier == ZERO
    assert task.draw_block == boa.env.evm.patch.block_number
    flow.draw(task_id)
    [drawn] = events(market, "VerifierDrawn")
    # the only verifier is drawn again, with a fresh bond and window
    assert drawn.verifier == actors.verifier
    assert market.accounts(actors.verifier).locked == t.verifier_bond


def test_expire__solver_never_reveals__slashed(market, flow, actors):
    task_id = flow.to_state("accepted")
    t = flow.terms(task_id)
    boa.env.time_travel(seconds=t.whistle_window + t.reveal_window)
    with boa.reverts("market: reveal window not passed"):
        market.expire(task_id)
    boa.env.time_travel(seconds=1)
    before = books(market, actors)
    market.expire(task_id)
    to_submitter = SOLVER_STAKE * t.winner_share_ppm // 1_000_000
    assert_moved(before, books(market, actors), solver__bonded=-SOLVER_STAKE, solver__locked=-SOLVER_STAKE,
                 submitter__credit=to_submitter, pool=SOLVER_STAKE - to_submitter,
                 verifier__locked=-t.verifier_bond)
    assert market.tasks(task_id).state == TaskState.OPEN


def test_expire__terminal_or_unknown_task__reverts(market, flow, actors):
    task_id = flow.to_state("accepted")
    flow.finalise(task_id)
    for tid in (task_id, 999):
        with boa.reverts("market: nothing to expire"):
            market.expire(tid)
