# pragma version 0.4.3
"""
@notice TEST ONLY. A submitter whose every incoming transfer reverts.
"""

interface Market:
    def create_task(spec_cid: String[128], spec_hash: bytes32, solver_stake: uint256, expires: uint256, train_window: uint256, steps: uint256, checkpoint_interval: uint256) -> uint256: payable
    def cancel(task_id: uint256): nonpayable
    def withdraw(recipient: address): nonpayable

market: public(address)


@deploy
def __init__(market_: address):
    self.market = market_


@external
@payable
def create(expires: uint256) -> uint256:
    return extcall Market(self.market).create_task("cid", empty(bytes32), 0, expires, 3600, 10, 10, value=msg.value)


@external
def cancel(task_id: uint256):
    extcall Market(self.market).cancel(task_id)


@external
def withdraw_to(recipient: address):
    extcall Market(self.market).withdraw(recipient)


@external
@payable
def __default__():
    raise "no thanks"
