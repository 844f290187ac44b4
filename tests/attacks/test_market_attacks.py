"""PROTOCOL §7 attacks that apply to the market layer, one named test each."""

import boa
import pytest
from eth_abi import encode
from boa.contracts.base_evm_contract import BoaError
from eth_utils import keccak

from offchain.chain.suite import ETHER, Role, TaskState, Terms
from tests.conftest import (
    NEVER_FORCED,
    PAYMENT,
    PROOF_ROOT,
    SECRET,
    assert_solvent,
    commitments,
    events,
    latest_block_hash,
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
    assert_solvent(market, forced=5 * ETHER)


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


def _join_verifiers(market, count: int, stake: int = ETHER) -> list[str]:
    people = [boa.env.generate_address(f"verifier {i}") for i in range(count)]
    for person in people:
        boa.env.set_balance(person, stake)
        with boa.env.prank(person):
            market.deposit(Role.VERIFIER, value=stake)
    return people


def _predicted_verifier(market, task_id: int, root: bytes) -> str:
    """The best guess a solver has when it signs `submit`: every block hash it can read
    (the latest one) in place of its own block's, which nobody knows yet."""
    known = latest_block_hash()
    seed = int.from_bytes(keccak(encode(["bytes32", "uint256", "bytes32"], [known, task_id, root])), "big")
    return market.verifiers(seed % market.verifier_count())


def test_solver_grinding_proof_roots__cannot_pick_its_verifier(market, flow, actors):
    """Against 20 honest verifiers, a solver tries 64 proof roots per task and submits the one its
    own sybil verifier would draw by everything it can read. The draw uses the hash of the block
    that includes the proof, so the sybil's share stays near 1/21 (before: drawn every time)."""
    _join_verifiers(market, 19, stake=100 * ETHER)  # enough free stake for every draw
    sybil = actors.verifier
    with boa.env.prank(sybil):
        market.deposit(Role.VERIFIER, value=90 * ETHER)
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=200 * ETHER)
    drawn = 0
    for _ in range(40):
        task_id = flow.to_state("claimed")
        roots = [keccak(b"root %d %d" % (task_id, i)) for i in range(64)]
        chosen = next((r for r in roots if _predicted_verifier(market, task_id, r) == sybil), roots[0])
        flow.submit(task_id, chosen)
        drawn += market.tasks(task_id).verifier == sybil
    assert market.verifier_count() == 20
    assert drawn <= 8  # binomial(40, 1/20): mean 2; a grinder that succeeds gets 40


def test_solver_grinding_secrets__cannot_choose_the_forced_error(market, flow, actors):
    """A solver tries 64 secrets per claim for the forced-error draw it wants, using every block
    hash it can read; the entropy comes from the claim's own block, so the rate stays p."""
    market.publish_terms(NEVER_FORCED.replace(forced_error_ppm=100_000, min_payment=2 * ETHER).as_tuple())
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=200 * ETHER)
    forced = 0
    for _ in range(40):
        task_id = flow.create()
        known = latest_block_hash()
        secrets = [keccak(b"secret %d %d" % (task_id, i)) for i in range(64)]

        def predicted(secret: bytes) -> bool:
            entropy = keccak(encode(["bytes32", "uint256", "bytes32"], [known, task_id, keccak(secret)]))
            return market.is_forced_error(secret, entropy, 100_000)

        secret = next((x for x in secrets if predicted(x)), secrets[0])
        flow.claim(task_id, secret)
        forced += market.is_forced_error(secret, market.tasks(task_id).entropy, 100_000)
    assert forced <= 12  # binomial(40, 0.1): mean 4; a grinder that succeeds gets 40


def test_dust_deposits__cannot_fill_the_verifier_set(market, actors):
    """1,023 one-wei verifiers used to fill the set: a place now costs a full verifier bond."""
    bond = Terms(*market.published(market.current_terms())).verifier_bond
    dust = boa.env.generate_address("dust")
    boa.env.set_balance(dust, ETHER)
    with boa.env.prank(dust), boa.reverts("stakes: verifier stake below the verifier bond"):
        market.deposit(Role.VERIFIER, value=1)
    with boa.env.prank(dust), boa.reverts("stakes: verifier stake below the verifier bond"):
        market.deposit(Role.VERIFIER, value=bond - 1)
    assert market.verifier_count() == 0


def test_verifier_below_the_bond__leaves_the_set(market, flow, actors):
    bond = flow.terms(flow.create()).verifier_bond
    with boa.env.prank(actors.stranger):
        market.deposit(Role.VERIFIER, value=bond)
        assert market.verifier_count() == 2
        market.unbond(1)
    assert market.verifier_count() == 1 and market.verifiers(0) == actors.verifier
    with boa.env.prank(actors.stranger):
        market.deposit(0, value=1)  # back at the bond: joins again
    assert market.verifier_count() == 2


def test_slashed_verifier_below_the_bond__evicted(market, arbiter, flow, actors):
    """A verifier that loses a challenge and drops under the bond is no longer drawn."""
    poor = boa.env.generate_address("poor verifier")
    bond = flow.terms(flow.create()).verifier_bond
    boa.env.set_balance(poor, bond)
    with boa.env.prank(actors.verifier):
        market.unbond(market.free_stake(actors.verifier))
    with boa.env.prank(poor):
        market.deposit(Role.VERIFIER, value=bond)
    task_id = flow.to_state("submitted")
    assert market.tasks(task_id).verifier == poor
    dispute_id = flow.challenge(task_id, poor)
    arbiter.decide(dispute_id, True)
    assert market.accounts(poor).bonded == 0 and market.verifier_count() == 0


def test_spam_tasks__pay_every_drawn_verifier_a_fee(market, flow, actors):
    """Zero-payment tasks used to cost a drawn verifier gas or a silence slash for nothing: the
    minimum payment guarantees every verified proof a fee floor."""
    t = Terms(*market.published(market.current_terms()))
    with boa.env.prank(actors.submitter), boa.reverts("market: payment below the minimum"):
        market.create_task("cid", commitments(), t.min_solver_stake, boa.env.timestamp + 100, 3_600, value=0)
    task_id = flow.create(payment=t.min_payment, stake=t.min_solver_stake)
    flow.claim(task_id)
    flow.submit(task_id)
    flow.accept(task_id)
    flow.finalise(task_id)
    [log] = events(market, "TaskFinalised")
    floor = (t.min_payment - t.min_payment * t.tax_ppm // 1_000_000) * t.verifier_fee_ppm // 1_000_000
    assert log.verifier_fee == floor > 0
