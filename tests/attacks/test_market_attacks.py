"""PROTOCOL §7 attacks that apply to the market layer, one named test each."""

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError
from eth_utils import keccak

from offchain.chain.suite import ETHER, Role, TaskState
from tests.conftest import (
    NEVER_FORCED,
    PAYMENT,
    PROOF_ROOT,
    SECRET,
    assert_solvent,
    commitments,
    events,
    load_test_contract,
)

MAX_UINT = 2**256 - 1


def _innermost(frame):
    while frame.children:
        frame = frame.children[-1]
    return frame


def test_reentrancy_through_withdraw__is_blocked(market, flow, actors):
    """The market holds others' money; the attacker re-enters `withdraw` once from its receive
    hook. The inner call dies on the lock itself (an empty revert at the function's entry, before
    any statement), not on the zeroed credit, and nothing moves."""
    flow.create()  # another submitter's escrow, which a second payout would take
    attacker = load_test_contract("ReentrantReceiver").deploy(market.address)
    boa.env.set_balance(attacker.address, 0)
    task_id = attacker.create(boa.env.timestamp + 100, value=PAYMENT)
    attacker.cancel(task_id)
    held = boa.env.get_balance(market.address)
    with pytest.raises(BoaError) as failure:
        attacker.cash_out(1)
    inner = _innermost(failure.value.call_trace)
    assert type(inner.source.node).__name__ == "FunctionDef" and inner.source.node.name == "withdraw"
    assert failure.value.stack_trace[-1].vm_error.args == (b"",)
    assert market.credits(attacker.address) == PAYMENT
    assert boa.env.get_balance(attacker.address) == 0 and boa.env.get_balance(market.address) == held
    assert_solvent(market)


@pytest.mark.parametrize("mode", [2, 3], ids=["view", "deposit"])
def test_reentrancy_through_views_and_other_entry_points__is_blocked(market, actors, mode):
    attacker = load_test_contract("ReentrantReceiver").deploy(market.address)
    task_id = attacker.create(boa.env.timestamp + 100, value=PAYMENT)
    attacker.cancel(task_id)
    with boa.reverts():
        attacker.cash_out(mode)
    assert market.credits(attacker.address) == PAYMENT
    assert market.total_staked() == 0


def test_reverting_receiver__blocks_only_itself(market, flow, actors):
    stubborn = load_test_contract("RevertingReceiver").deploy(market.address)
    task_id = stubborn.create(boa.env.timestamp + 100, value=PAYMENT)
    stubborn.cancel(task_id)
    with boa.reverts():
        stubborn.withdraw_to(stubborn.address)
    assert market.credits(stubborn.address) == PAYMENT
    # everyone else is paid as usual
    honest = flow.to_state("accepted")
    flow.finalise(honest)
    with boa.env.prank(actors.solver):
        market.withdraw()
    assert market.credits(actors.solver) == 0
    # and the stubborn contract can still take its money elsewhere
    stubborn.withdraw_to(actors.stranger)
    assert market.credits(stubborn.address) == 0
    assert_solvent(market)


def test_forced_ether_by_selfdestruct__breaks_no_accounting(market, flow, actors):
    task_id = flow.to_state("accepted")
    boa.env.set_balance(actors.stranger, 5 * ETHER)
    with boa.env.prank(actors.stranger):
        load_test_contract("ForceSender").deploy(market.address, value=5 * ETHER)
    assert boa.env.get_balance(market.address) == market.liabilities() + 5 * ETHER
    flow.finalise(task_id)
    for who in (actors.solver, actors.verifier):
        with boa.env.prank(who):
            market.withdraw()
    assert_solvent(market)


def test_tx_origin__is_never_used():
    from offchain.chain.suite import CONTRACTS

    sources = "".join(p.read_text() for p in CONTRACTS.rglob("*.vy*"))
    assert "tx.origin" not in sources


def test_parameter_change_mid_task__does_not_reach_it(market, flow, actors):
    task_id = flow.to_state("submitted")
    before = market.published(market.tasks(task_id).terms_id)
    market.publish_terms(NEVER_FORCED.replace(verify_window=60, verifier_fee_ppm=200_000).as_tuple())
    boa.env.time_travel(seconds=61)
    flow.accept(task_id)  # still inside the original window
    flow.finalise(task_id)
    [log] = events(market, "TaskFinalised")
    escrow = PAYMENT - PAYMENT * before.tax_ppm // 1_000_000
    assert log.verifier_fee == escrow * before.verifier_fee_ppm // 1_000_000
    assert market.tasks(task_id).state == TaskState.FINALISED


@pytest.mark.parametrize("field", ["expires", "train_window", "solver_stake", "payment"])
def test_max_uint_amounts__revert_cleanly_or_stay_consistent(market, flow, actors, field):
    args = dict(solver_stake=ETHER, expires=boa.env.timestamp + 100, train_window=3_600)

    def create(value=PAYMENT):
        return market.create_task("cid", commitments(), args["solver_stake"], args["expires"], args["train_window"],
                                  value=value)

    if field == "payment":
        # more wei than exist: the tax arithmetic overflows and the checked math reverts, moving nothing
        boa.env.set_balance(actors.submitter, 2**255)
        with boa.env.prank(actors.submitter), boa.reverts():
            create(2**255)
        assert boa.env.get_balance(actors.submitter) == 2**255 and market.task_count() == 0
        return
    args[field] = MAX_UINT
    with boa.env.prank(actors.submitter):
        if field == "train_window":
            with boa.reverts("market: bad train window"):
                create()
            return
        task_id = create()
    if field == "solver_stake":
        with boa.env.prank(actors.solver), boa.reverts("stakes: insufficient free stake"):
            market.claim(task_id, keccak(SECRET))
    else:  # expires = 2**256-1: the task can still be claimed and finished
        flow.claim(task_id)
        flow.submit(task_id)
        flow.accept(task_id)
        flow.finalise(task_id)
        assert market.tasks(task_id).state == TaskState.FINALISED
    assert_solvent(market)


def test_chess_clock_gaming_at_deadline__late_verifier_cannot_accept(market, flow, actors):
    """A verifier waiting for the last second gets exactly its window, not a second more."""
    task_id = flow.to_state("submitted")
    boa.env.time_travel(seconds=market.tasks(task_id).deadline - boa.env.timestamp + 1)
    with boa.env.prank(actors.verifier), boa.reverts("market: verify window passed"):
        market.accept(task_id)
    with boa.env.prank(actors.verifier), boa.reverts("market: challenge window passed"):
        market.challenge(task_id, PROOF_ROOT, 0)


def test_move_retargeted_to_another_proof__reverts(market, flow, actors):
    """A challenge names the proof root it answers; a replaced proof is not hit by it."""
    task_id = flow.to_state("submitted")
    with boa.env.prank(actors.verifier), boa.reverts("market: proof root mismatch"):
        market.challenge(task_id, keccak(b"another proof"), 0)


def test_moves_after_resolution__revert(market, arbiter, flow, actors):
    task_id = flow.to_state("accepted")
    dispute_id = flow.challenge(task_id, actors.whistleblower)
    arbiter.decide(dispute_id, False)
    with boa.reverts("arbiter: dispute closed"):
        arbiter.decide(dispute_id, True)
    with boa.env.prank(actors.solver), boa.reverts("market: task not disputed"):
        market.declare_forced_error(task_id, SECRET)
    with boa.env.prank(actors.solver), boa.reverts("market: task not claimed"):
        market.submit(task_id, PROOF_ROOT, 11, "cid")


def test_solver_cannot_pick_its_verifier(market, flow, actors):
    """With several verifiers, the draw spreads over them whatever the solver submits."""
    others = [boa.env.generate_address(f"v{i}") for i in range(4)]
    for v in others:
        boa.env.set_balance(v, 10 * ETHER)
        with boa.env.prank(v):
            market.deposit(Role.VERIFIER, value=5 * ETHER)
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=100 * ETHER)
    drawn = set()
    for i in range(12):
        task_id = flow.to_state("claimed")
        flow.submit(task_id, keccak(b"root%d" % i))
        drawn.add(market.tasks(task_id).verifier)
    assert len(drawn) >= 3
