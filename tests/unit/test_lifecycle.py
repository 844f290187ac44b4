from offchain.chain.suite import TaskState
from tests.conftest import PAYMENT, assert_solvent


def test_honest_lifecycle__pays_solver_and_verifier(market, flow, actors):
    task_id = flow.to_state("accepted")
    flow.finalise(task_id)
    t = flow.terms(task_id)
    escrow = PAYMENT - PAYMENT * t.tax_ppm // 1_000_000
    fee = escrow * t.verifier_fee_ppm // 1_000_000
    assert flow.task(task_id).state == TaskState.FINALISED
    assert market.credits(actors.solver) == escrow - fee
    assert market.credits(actors.verifier) == fee
    assert market.pool() == PAYMENT - escrow
    assert market.accounts(actors.solver).locked == 0
    assert_solvent(market)
