import boa

from offchain.chain.suite import ETHER, Role
from tests.conftest import events


def _credit(market, account):
    with boa.env.prank(account):
        market.deposit(Role.SOLVER, value=ETHER)
        market.unbond(ETHER)
        boa.env.time_travel(seconds=market.unbond_delay())
        market.withdraw_stake()


def test_withdraw__pays_credit_and_zeroes_it(market, actors):
    _credit(market, actors.solver)
    before = boa.env.get_balance(actors.solver)
    with boa.env.prank(actors.solver):
        market.withdraw()
    [log] = events(market, "Withdrawn")
    assert boa.env.get_balance(actors.solver) == before + ETHER
    assert market.credits(actors.solver) == 0 and market.total_credits() == 0
    assert (log.account, log.recipient, log.amount) == (actors.solver, actors.solver, ETHER)


def test_withdraw__to_other_recipient(market, actors):
    _credit(market, actors.solver)
    before = boa.env.get_balance(actors.stranger)
    with boa.env.prank(actors.solver):
        market.withdraw(actors.stranger)
    assert boa.env.get_balance(actors.stranger) == before + ETHER


def test_withdraw__nothing__reverts(market, actors):
    with boa.env.prank(actors.stranger), boa.reverts("ledger: nothing to withdraw"):
        market.withdraw()


def test_withdraw__zero_recipient__reverts(market, actors):
    _credit(market, actors.solver)
    with boa.env.prank(actors.solver), boa.reverts("ledger: zero recipient"):
        market.withdraw("0x0000000000000000000000000000000000000000")
