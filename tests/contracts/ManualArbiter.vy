# pragma version 0.4.3
"""
@title ManualArbiter
@notice TEST ONLY. Stands in for the dispute game: it records disputes and
        lets its deployer declare the winner. Never deploy it beside real value.
"""

interface IMarket:
    def resolve(task_id: uint256, dispute_id: uint256, solver_won: bool, proven: bool): nonpayable

struct Dispute:
    task_id: uint256
    solver: address
    challenger: address
    segment: uint256
    open: bool

market: public(address)
judge: public(address)
disputes: public(HashMap[uint256, Dispute])
dispute_count: public(uint256)


@deploy
def __init__(market_: address):
    self.market = market_
    self.judge = msg.sender


@external
def open_dispute(task_id: uint256, solver: address, challenger: address, segment: uint256) -> uint256:
    assert msg.sender == self.market, "arbiter: caller is not the market"
    dispute_id: uint256 = self.dispute_count + 1
    self.dispute_count = dispute_id
    self.disputes[dispute_id] = Dispute(task_id=task_id, solver=solver, challenger=challenger, segment=segment, open=True)
    return dispute_id


@external
def decide(dispute_id: uint256, solver_won: bool, proven: bool = True):
    """
    @notice Declare the winner; `proven` says a challenger won by a checked
            final proof (False: by timeout).
    """
    assert msg.sender == self.judge, "arbiter: caller is not the judge"
    dispute: Dispute = self.disputes[dispute_id]
    assert dispute.open, "arbiter: dispute closed"
    self.disputes[dispute_id].open = False
    extcall IMarket(self.market).resolve(dispute.task_id, dispute_id, solver_won, proven and not solver_won)
