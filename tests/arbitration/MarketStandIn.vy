# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title MarketStandIn
@notice Test-only stand-in for the market's side of the dispute game: the
        narrow task view and the verdict entry point of IMarket, tasks posted
        and disputes opened on request, every verdict recorded.
        Task states use the values of offchain.chain.suite.TaskState (OPEN 1,
        ACCEPTED 8, DISPUTED 16): a dispute the solver wins leaves the task
        accepted, one the challenger wins reopens it.
"""

from interfaces import IMarket

implements: IMarket

interface IGame:
    def open_dispute(task_id: uint256, solver: address, challenger: address, segment: uint256) -> uint256: nonpayable

OPEN: constant(uint256) = 1
ACCEPTED: constant(uint256) = 8
DISPUTED: constant(uint256) = 16

struct Task:
    state: uint256
    spec_hash: bytes32
    proof_root: bytes32
    checkpoints: uint256
    dispute_id: uint256

struct Verdict:
    task_id: uint256
    solver_won: bool
    proven: bool
    count: uint256              # resolve calls for this dispute

game: public(address)
tasks: public(HashMap[uint256, Task])
task_count: public(uint256)
verdicts: public(HashMap[uint256, Verdict])


@external
def bind(game_: address):
    assert self.game == empty(address), "stand-in: bound"
    self.game = game_


@external
def post(spec_hash: bytes32, proof_root: bytes32, checkpoints: uint256) -> uint256:
    task_id: uint256 = self.task_count + 1
    self.task_count = task_id
    self.tasks[task_id] = Task(state=OPEN, spec_hash=spec_hash, proof_root=proof_root, checkpoints=checkpoints, dispute_id=0)
    return task_id


@external
def challenge(task_id: uint256, solver: address, challenger: address, segment: uint256) -> uint256:
    assert self.tasks[task_id].state != DISPUTED, "stand-in: already disputed"
    dispute_id: uint256 = extcall IGame(self.game).open_dispute(task_id, solver, challenger, segment)
    self.tasks[task_id].state = DISPUTED
    self.tasks[task_id].dispute_id = dispute_id
    return dispute_id


@external
@view
def dispute_view(task_id: uint256) -> (bytes32, bytes32, uint256):
    t: Task = self.tasks[task_id]
    return t.spec_hash, t.proof_root, t.checkpoints


@external
def resolve(task_id: uint256, dispute_id: uint256, solver_won: bool, proven: bool):
    assert msg.sender == self.game, "stand-in: caller is not the game"
    assert self.tasks[task_id].state == DISPUTED and self.tasks[task_id].dispute_id == dispute_id, "stand-in: stale dispute"
    count: uint256 = self.verdicts[dispute_id].count + 1
    self.verdicts[dispute_id] = Verdict(task_id=task_id, solver_won=solver_won, proven=proven, count=count)
    if solver_won:
        self.tasks[task_id].state = ACCEPTED
    else:
        self.tasks[task_id].state = OPEN
