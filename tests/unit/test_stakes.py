import boa
import pytest

from offchain.chain.suite import ETHER, Role
from tests.conftest import events


def test_deposit__bonds_value_and_grants_roles(market, actors):
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER | Role.VERIFIER, value=2 * ETHER)
    [log] = events(market, "Deposited")
    stake = market.accounts(actors.solver)
    assert (stake.bonded, stake.locked, stake.roles) == (2 * ETHER, 0, Role.SOLVER | Role.VERIFIER)
    assert market.total_staked() == 2 * ETHER
    assert market.verifiers(0) == actors.solver and market.verifier_count() == 1
    assert (log.account, log.amount, log.roles) == (actors.solver, 2 * ETHER, 3)


def test_deposit__twice_as_verifier__listed_once(market, actors):
    with boa.env.prank(actors.verifier):
        market.deposit(Role.VERIFIER, value=ETHER)
        market.deposit(Role.VERIFIER, value=ETHER)
    assert market.verifier_count() == 1


def test_deposit__zero__reverts(market, actors):
    with boa.env.prank(actors.solver), boa.reverts("stakes: zero deposit"):
        market.deposit(Role.SOLVER)


def test_deposit__unknown_role__reverts(market, actors):
    with boa.env.prank(actors.solver), boa.reverts("stakes: unknown role"):
        market.deposit(8, value=ETHER)


def test_unbond__moves_free_stake_out_and_starts_delay(market, actors):
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=3 * ETHER)
        market.unbond(ETHER)
    [log] = events(market, "UnbondRequested")
    stake = market.accounts(actors.solver)
    assert (stake.bonded, stake.unbonding) == (2 * ETHER, ETHER)
    assert stake.ready_at == boa.env.timestamp + market.unbond_delay() == log.ready_at
    assert log.amount == ETHER


@pytest.mark.parametrize("amount", [0, 3 * ETHER + 1])
def test_unbond__zero_or_above_free__reverts(market, actors, amount):
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=3 * ETHER)
        with boa.reverts("stakes: zero amount" if amount == 0 else "stakes: amount exceeds free stake"):
            market.unbond(amount)


def test_unbond__locked_stake__cannot_leave(market, flow, actors):
    flow.claim(flow.create())
    free = market.free_stake(actors.solver)
    with boa.env.prank(actors.solver), boa.reverts("stakes: amount exceeds free stake"):
        market.unbond(free + 1)


def test_unbond__everything__leaves_verifier_set(market, actors):
    with boa.env.prank(actors.solver):
        market.deposit(Role.VERIFIER, value=ETHER)
    with boa.env.prank(actors.verifier):
        market.deposit(Role.VERIFIER, value=ETHER)
        market.unbond(ETHER)
    assert market.verifier_count() == 1 and market.verifiers(0) == actors.solver
    with boa.env.prank(actors.solver):
        market.unbond(ETHER)
    assert market.verifier_count() == 0


def test_withdraw_stake__after_delay__credits(market, actors):
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=ETHER)
        market.unbond(ETHER)
        boa.env.time_travel(seconds=market.unbond_delay())
        market.withdraw_stake()
    [log] = events(market, "StakeWithdrawn")
    assert log.amount == ETHER
    assert market.credits(actors.solver) == ETHER
    assert market.total_staked() == 0


def test_withdraw_stake__one_second_early__reverts(market, actors):
    with boa.env.prank(actors.solver):
        market.deposit(Role.SOLVER, value=ETHER)
        market.unbond(ETHER)
        boa.env.time_travel(seconds=market.unbond_delay() - 1)
        with boa.reverts("stakes: still unbonding"):
            market.withdraw_stake()


def test_withdraw_stake__nothing_unbonding__reverts(market, actors):
    with boa.env.prank(actors.solver), boa.reverts("stakes: nothing unbonding"):
        market.withdraw_stake()
