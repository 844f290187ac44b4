# pragma version 0.4.3
"""
@notice TEST ONLY. A submitter whose every incoming transfer reverts.
"""

struct Commitments:
    spec_bytes_hash: bytes32
    graph_root: bytes32
    dataset_root: bytes32
    dataset_rows: uint256
    weights_root: bytes32
    seed: uint256
    batch_size: uint256
    steps: uint256
    checkpoint_interval: uint256

interface Market:
    def create_task(spec_cid: String[128], commitments: Commitments, solver_stake: uint256, expires: uint256, train_window: uint256) -> uint256: payable
    def cancel(task_id: uint256): nonpayable
    def withdraw(recipient: address): nonpayable

market: public(address)


@deploy
def __init__(market_: address):
    self.market = market_


@external
@payable
def create(expires: uint256) -> uint256:
    return extcall Market(self.market).create_task("cid", Commitments(spec_bytes_hash=empty(bytes32), graph_root=empty(bytes32), dataset_root=empty(bytes32), dataset_rows=1, weights_root=empty(bytes32), seed=0, batch_size=1, steps=10, checkpoint_interval=10), 10**18, expires, 3600, value=msg.value)


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
