import boa
from eth_abi import encode
from eth_utils import keccak

from offchain.chain.suite import ETHER, Role, TaskState
from tests.conftest import (
    CHECKPOINTS,
    PAYMENT,
    PROOF_CID,
    PROOF_ROOT,
    SECRET,
    SOLVER_STAKE,
    check_deadline_boundaries,
    events,
    next_block,
)

ZERO = "0x0000000000000000000000000000000000000000"


def test_claim__locks_stake_and_moves_tax_to_jackpot(market, flow, actors):
    task_id = flow.create()
    tax = market.tasks(task_id).tax
    flow.claim(task_id, draw=False)
    [log] = events(market, "TaskClaimed")
    task = market.tasks(task_id)
    assert (log.task_id, log.solver, log.deadline) == (task_id, actors.solver, task.deadline)
    assert task.state == TaskState.CLAIMED and task.solver == actors.solver
    assert task.secret_hash == keccak(SECRET) and task.entropy == b"\0" * 32
    assert task.draw_block == boa.env.evm.patch.block_number
    assert task.deadline == boa.env.timestamp + task.train_window
    assert market.accounts(actors.solver).locked == SOLVER_STAKE
    assert market.pool() == tax and task.tax == 0
    assert market.total_escrow() == PAYMENT - tax


def test_claim__not_a_solver__reverts(market, flow, actors):
    task_id = flow.create()
    with boa.env.prank(actors.verifier), boa.reverts("market: caller is not a solver"):
        market.claim(task_id, keccak(SECRET))


def test_claim__submitter_solving_own_task__reverts(market, flow, actors):
    with boa.env.prank(actors.submitter):
        market.deposit(Role.SOLVER, value=10 * ETHER)
    task_id = flow.create()
    with boa.env.prank(actors.submitter), boa.reverts("market: submitter cannot solve"):
        market.claim(task_id, keccak(SECRET))


def test_claim__insufficient_stake__reverts(market, flow, actors):
    task_id = flow.create()
    with boa.env.prank(actors.solver):
        market.unbond(market.free_stake(actors.solver) - SOLVER_STAKE + 1)
        with boa.reverts("stakes: insufficient free stake"):
            market.claim(task_id, keccak(SECRET))


def test_claim__after_expiry__reverts(market, flow, actors):
    task_id = flow.create(expires_in=10)
    boa.env.time_travel(seconds=11)
    with boa.env.prank(actors.solver), boa.reverts("market: task expired"):
        market.claim(task_id, keccak(SECRET))


def test_claim__claimed_task__reverts(market, flow, actors):
    task_id = flow.to_state("claimed")
    with boa.env.prank(actors.solver), boa.reverts("market: task not open"):
        market.claim(task_id, keccak(SECRET))


def test_submit__records_root_and_draws_verifier(market, flow, actors):
    task_id = flow.to_state("claimed")
    flow.submit(task_id, draw=False)
    [proof] = events(market, "ProofSubmitted")
    task = market.tasks(task_id)
    assert (proof.proof_root, proof.checkpoints, proof.proof_cid, proof.round) == (PROOF_ROOT, CHECKPOINTS, PROOF_CID, 0)
    assert task.state == TaskState.SUBMITTED and task.proof_root == PROOF_ROOT
    assert task.verifier == ZERO and task.draw_block == boa.env.evm.patch.block_number
    flow.draw(task_id)
    [drawn] = events(market, "VerifierDrawn")
    task = market.tasks(task_id)
    assert task.verifier == drawn.verifier == actors.verifier
    assert drawn.seed != b"\0" * 32 and task.draw_block == 0
    assert market.accounts(actors.verifier).locked == market.published(task.terms_id).verifier_bond


def test_submit__never_draws_the_solver(market, flow, actors):
    with boa.env.prank(actors.solver):
        market.deposit(Role.VERIFIER, value=ETHER)
    for _ in range(3):
        task_id = flow.to_state("submitted")
        assert market.tasks(task_id).verifier == actors.verifier


def test_submit__no_verifier_available__waits_unassigned(market, flow, actors):
    with boa.env.prank(actors.verifier):
        market.unbond(market.free_stake(actors.verifier))
    task_id = flow.to_state("submitted")
    assert market.tasks(task_id).verifier == ZERO


def test_submit__by_stranger__reverts(market, flow, actors):
    task_id = flow.to_state("claimed")
    with boa.env.prank(actors.stranger), boa.reverts("market: caller is not the solver"):
        market.submit(task_id, PROOF_ROOT, CHECKPOINTS, PROOF_CID)


def test_submit__wrong_count__reverts(market, flow, actors):
    task_id = flow.to_state("claimed")
    with boa.env.prank(actors.solver), boa.reverts("market: wrong checkpoint count"):
        market.submit(task_id, PROOF_ROOT, CHECKPOINTS - 1, PROOF_CID)


def test_submit__empty_root_or_cid__reverts(market, flow, actors):
    task_id = flow.to_state("claimed")
    with boa.env.prank(actors.solver):
        with boa.reverts("market: empty proof root"):
            market.submit(task_id, b"\0" * 32, CHECKPOINTS, PROOF_CID)
        with boa.reverts("market: empty proof cid"):
            market.submit(task_id, PROOF_ROOT, CHECKPOINTS, "")


def test_submit__deadline_boundaries(market, flow, actors):
    check_deadline_boundaries(flow, "claimed", actors.solver,
                              lambda tid: market.submit(tid, PROOF_ROOT, CHECKPOINTS, PROOF_CID),
                              "market: proof deadline passed")


def test_draw__same_block__reverts(market, flow, actors):
    task_id = flow.create()
    flow.claim(task_id, draw=False)
    with boa.env.prank(actors.stranger), boa.reverts("market: draw block not mined yet"):
        market.draw(task_id)


def test_draw__reads_the_hash_of_the_claim_block(market, flow, actors):
    """The entropy is keccak(blockhash(claim block), task, secret hash): fixed by a block nobody
    knew when the claim was signed, and the same whoever draws and whenever within the horizon."""
    task_id = flow.create()
    flow.claim(task_id, draw=False)
    claim_block = market.tasks(task_id).draw_block
    for _ in range(10):
        next_block()
    with boa.env.prank(actors.stranger):
        market.draw(task_id)
    [drawn] = events(market, "EntropyDrawn")
    block_hash = boa.env.evm.vm.state.get_ancestor_hash(claim_block)
    expected = keccak(encode(["bytes32", "uint256", "bytes32"], [block_hash, task_id, keccak(SECRET)]))
    assert drawn.entropy == market.tasks(task_id).entropy == expected
    with boa.env.prank(actors.stranger), boa.reverts("market: no draw pending"):
        market.draw(task_id)


def test_submit__before_the_entropy_draw__reverts(market, flow, actors):
    task_id = flow.create()
    flow.claim(task_id, draw=False)
    with boa.env.prank(actors.solver), boa.reverts("market: entropy not drawn"):
        market.submit(task_id, PROOF_ROOT, CHECKPOINTS, PROOF_CID)


def test_draw__past_the_horizon__solver_slashed_not_redrawn(market, flow, actors):
    """A solver that dislikes the drawn entropy cannot wait out the horizon for another roll."""
    task_id = flow.create()
    flow.claim(task_id, draw=False)
    committed = market.tasks(task_id).draw_block
    boa.env.evm.patch.block_number = committed + 256
    with boa.env.prank(actors.stranger), boa.reverts("market: proof deadline not passed"):
        market.expire(task_id)
    boa.env.evm.patch.block_number = committed + 257
    with boa.env.prank(actors.stranger), boa.reverts("market: draw horizon passed"):
        market.draw(task_id)
    bonded = market.accounts(actors.solver).bonded
    with boa.env.prank(actors.stranger):
        market.expire(task_id)
    assert market.accounts(actors.solver).bonded == bonded - SOLVER_STAKE
    assert market.tasks(task_id).state == TaskState.OPEN


def test_verifier_draw__past_the_horizon__solver_slashed_not_redrawn(market, flow, actors):
    task_id = flow.to_state("claimed")
    flow.submit(task_id, draw=False)
    boa.env.evm.patch.block_number = market.tasks(task_id).draw_block + 257
    with boa.env.prank(actors.stranger), boa.reverts("market: draw horizon passed"):
        market.draw(task_id)
    with boa.env.prank(actors.stranger):
        market.expire(task_id)
    assert market.accounts(actors.solver).locked == 0
    assert market.tasks(task_id).state == TaskState.OPEN


def test_draw__horizon_boundaries(market, flow, actors):
    """The last block that still serves the committed hash may draw; the next may not."""
    for offset, allowed in [(255, True), (256, True), (257, False)]:
        task_id = flow.create()
        flow.claim(task_id, draw=False)
        committed = market.tasks(task_id).draw_block
        for _ in range(offset):
            next_block()
        with boa.env.prank(actors.stranger):
            if allowed:
                market.draw(task_id)
                assert market.tasks(task_id).entropy != b"\0" * 32
            else:
                with boa.reverts("market: draw horizon passed"):
                    market.draw(task_id)
        assert boa.env.evm.patch.block_number == committed + offset
