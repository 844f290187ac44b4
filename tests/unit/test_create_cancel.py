import boa
import pytest

from offchain.chain.suite import TaskState
from offchain.chain.suite import Terms
from tests.conftest import (
    CHECKPOINTS,
    INTERVAL,
    PAYMENT,
    SOLVER_STAKE,
    SPEC_CID,
    SPEC_HASH,
    STEPS,
    TRAIN_WINDOW,
    commitments,
    events,
    spec_hash,
)

DEFAULTS = Terms()


def _create(market, sender, *, steps=STEPS, checkpoint_interval=INTERVAL, **overrides):
    args = dict(
        spec_cid=SPEC_CID, commitments=commitments(steps, checkpoint_interval), solver_stake=SOLVER_STAKE,
        expires=boa.env.timestamp + 100, train_window=TRAIN_WINDOW, value=PAYMENT,
    )
    args.update(overrides)
    value = args.pop("value")
    with boa.env.prank(sender):
        return market.create_task(*args.values(), value=value)


def test_create_task__escrows_payment_and_holds_tax(market, actors):
    task_id = _create(market, actors.submitter)
    [log] = events(market, "TaskCreated")
    assert (log.task_id, log.submitter, log.spec_cid, log.escrow) == (1, actors.submitter, SPEC_CID, PAYMENT)
    task = market.tasks(task_id)
    tax = PAYMENT * market.published(task.terms_id).tax_ppm // 1_000_000
    assert task.state == TaskState.OPEN
    assert (task.escrow, task.tax, task.checkpoints) == (PAYMENT - tax, tax, CHECKPOINTS)
    assert task.spec_hash == log.spec_hash == SPEC_HASH
    assert market.total_escrow() == PAYMENT and market.pool() == 0
    assert boa.env.get_balance(market.address) == PAYMENT


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"value": 0}, "market: payment below the minimum"),
        ({"value": DEFAULTS.min_payment - 1}, "market: payment below the minimum"),
        ({"solver_stake": 0}, "market: solver stake below the minimum"),
        ({"solver_stake": DEFAULTS.min_solver_stake - 1}, "market: solver stake below the minimum"),
        ({"spec_cid": ""}, "market: empty spec cid"),
        ({"expires": 0}, "market: expiry in the past"),
        ({"train_window": 0}, "market: bad train window"),
        ({"train_window": 2**256 - 1}, "market: bad train window"),
        ({"checkpoint_interval": 0}, "market: bad checkpoint interval"),
        ({"steps": 257 * 2, "checkpoint_interval": 257}, "market: bad checkpoint interval"),
        ({"steps": 0}, "market: steps not a multiple of the interval"),
        ({"steps": STEPS + 1}, "market: steps not a multiple of the interval"),
        ({"steps": 10**6, "checkpoint_interval": 1}, "market: too many checkpoints"),
    ],
)
def test_create_task__bad_parameters__revert(market, actors, overrides, reason):
    if overrides.get("expires") == 0:
        overrides["expires"] = boa.env.timestamp
    with boa.reverts(reason):
        _create(market, actors.submitter, **overrides)


def test_create_task__at_the_minimums__accepted(market, actors):
    task_id = _create(market, actors.submitter, value=DEFAULTS.min_payment, solver_stake=DEFAULTS.min_solver_stake,
                      steps=512, checkpoint_interval=256)
    assert market.tasks(task_id).escrow > 0 and market.tasks(task_id).checkpoints == 3


def test_spec_schedule_mismatch__cannot_be_posted(market, actors):
    """The schedule the chain enforces is read from the committed spec: a submitter cannot post
    44 steps on chain for a spec that says 40, or k = 5 for a spec that says 4."""
    for steps, interval in [(44, 4), (40, 5)]:
        task_id = _create(market, actors.submitter, steps=steps, checkpoint_interval=interval)
        task = market.tasks(task_id)
        assert task.spec_hash == spec_hash(commitments(steps, interval))
        assert (task.checkpoint_interval, task.checkpoints) == (interval, steps // interval + 1)


def test_one_wei_task__refused(market, actors):
    """One-wei, zero-stake tasks paid no tax and taxed the verifiers for nothing."""
    with boa.reverts("market: payment below the minimum"):
        _create(market, actors.submitter, value=1, solver_stake=0)
    with boa.reverts("market: solver stake below the minimum"):
        _create(market, actors.submitter, solver_stake=0)


def test_cancel__open_task__refunds_everything(market, flow, actors):
    task_id = flow.create()
    with boa.env.prank(actors.submitter):
        market.cancel(task_id)
    assert [e.amount for e in events(market, "TaskRefunded")] == [PAYMENT]
    assert len(events(market, "TaskCancelled")) == 1
    assert market.tasks(task_id).state == TaskState.CANCELLED
    assert market.credits(actors.submitter) == PAYMENT
    assert market.total_escrow() == 0


def test_cancel__by_stranger__reverts(market, flow, actors):
    task_id = flow.create()
    with boa.env.prank(actors.stranger), boa.reverts("market: caller is not the submitter"):
        market.cancel(task_id)


def test_cancel__claimed_task__reverts(market, flow, actors):
    task_id = flow.to_state("claimed")
    with boa.env.prank(actors.submitter), boa.reverts("market: task not open"):
        market.cancel(task_id)


def test_cancel__twice__reverts(market, flow, actors):
    task_id = flow.create()
    with boa.env.prank(actors.submitter):
        market.cancel(task_id)
        with boa.reverts("market: task not open"):
            market.cancel(task_id)


def test_segment_longer_than_the_game_plays__refused(market, actors):
    """The shipped solver cannot play the dissection a segment of more than 256 steps needs, so
    such a task is refused where it is posted, not lost by the honest solver on time."""
    with boa.reverts("market: bad checkpoint interval"):
        _create(market, actors.submitter, steps=257, checkpoint_interval=257)
    task_id = _create(market, actors.submitter, steps=256, checkpoint_interval=256)
    assert market.tasks(task_id).checkpoint_interval == 256
