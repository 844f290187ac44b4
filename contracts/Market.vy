# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title Market
@notice Escrow and lifecycle of ML training tasks.

        Open ─claim→ Claimed ─submit→ Submitted ─accept→ Accepted ─finalise→ Finalised
          │             │                │                  │
        cancel       expire           challenge          challenge
          ↓             ↓                ↓                  ↓
      Cancelled   Open / Refunded    Disputed ─resolve→ Accepted | Open / Refunded

        Randomness is committed before it is drawn: a claim or a proof fixes a
        block, and a later call (`draw`, anyone's) reads that block's hash,
        which nobody knew when the commitment was signed. A solver commits to
        a secret when it claims; with the entropy drawn after the claim it
        decides whether the first proof must carry a forced error. A proof
        fixes the block that draws its verifier and the verifiers' sample.
@dev    Every external function is guarded by one reentrancy lock (the pragma
        above), views included.
"""

from interfaces import IArbiter

from arbitration import structs
from market import ledger
from market import jackpot
from market import stakes
from market import terms

initializes: ledger
initializes: jackpot[ledger := ledger]
initializes: stakes[ledger := ledger, terms := terms]
initializes: terms

exports: (
    ledger.withdraw,
    ledger.credits,
    ledger.total_credits,
    jackpot.pool,
    stakes.deposit,
    stakes.unbond,
    stakes.withdraw_stake,
    stakes.accounts,
    stakes.total_staked,
    stakes.unbond_delay,
    stakes.verifiers,
    stakes.verifier_count,
    stakes.free_stake,
    terms.owner,
    terms.min_window,
    terms.pending_owner,
    terms.accept_ownership,
    terms.published,
    terms.current_terms,
    terms.publish_terms,
    terms.transfer_ownership,
)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

PPM: constant(uint256) = 1_000_000
MAX_TRAIN_WINDOW: constant(uint256) = 365 * 86_400
MAX_CHECKPOINTS: constant(uint256) = 1_000_000
# the dispute game plays segments of at most this many steps
MAX_CHECKPOINT_INTERVAL: constant(uint256) = 256
# blocks whose hash the EVM still serves
DRAW_HORIZON: constant(uint256) = 256
MAX_DRAW_PROBES: constant(uint256) = 16
MAX_CID_LENGTH: constant(uint256) = 128
# the proof a forced error may touch; a resubmitted proof never carries one
FIRST_ROUND: constant(uint256) = 0


# ╔═══════════════════════════════════════════════════════════════╗
# ║ EVENTS                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

event TaskCreated:
    task_id: indexed(uint256)
    submitter: indexed(address)
    spec_cid: String[MAX_CID_LENGTH]
    spec_hash: bytes32
    escrow: uint256
    terms_id: uint256

event TaskCancelled:
    task_id: indexed(uint256)

event TaskClaimed:
    task_id: indexed(uint256)
    solver: indexed(address)
    deadline: uint256

event ProofSubmitted:
    task_id: indexed(uint256)
    solver: indexed(address)
    proof_root: bytes32
    checkpoints: uint256
    proof_cid: String[MAX_CID_LENGTH]
    round: uint256

event EntropyDrawn:
    task_id: indexed(uint256)
    entropy: bytes32

event VerifierDrawn:
    task_id: indexed(uint256)
    verifier: indexed(address)
    deadline: uint256
    seed: bytes32

event ProofAccepted:
    task_id: indexed(uint256)
    verifier: indexed(address)
    deadline: uint256

event Challenged:
    task_id: indexed(uint256)
    challenger: indexed(address)
    segment: uint256
    dispute_id: uint256

event DisputeResolved:
    task_id: indexed(uint256)
    dispute_id: indexed(uint256)
    solver_won: bool

event ForcedErrorDeclared:
    task_id: indexed(uint256)
    dispute_id: indexed(uint256)

event ForcedErrorRevealed:
    task_id: indexed(uint256)
    exposed_by: indexed(address)
    deadline: uint256

event TaskFinalised:
    task_id: indexed(uint256)
    solver: indexed(address)
    verifier: indexed(address)
    proof_root: bytes32
    solver_payment: uint256
    verifier_fee: uint256

event TaskExpired:
    task_id: indexed(uint256)
    state: TaskState
    culprit: indexed(address)

event TaskReopened:
    task_id: indexed(uint256)

event TaskRefunded:
    task_id: indexed(uint256)
    amount: uint256


# ╔═══════════════════════════════════════════════════════════════╗
# ║ STORAGE                                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

flag TaskState:
    OPEN
    CLAIMED
    SUBMITTED
    ACCEPTED
    DISPUTED
    FINALISED
    CANCELLED
    REFUNDED

struct Task:
    state: TaskState
    submitter: address
    spec_hash: bytes32            # keccak256 of the canonical task spec
    escrow: uint256               # wei held for the solver and verifier
    tax: uint256                  # wei that moves to the jackpot at the first claim
    solver_stake: uint256         # stake a solver locks to claim
    terms_id: uint256             # terms in force at creation
    expires: uint256              # after this an unclaimed task is refunded
    train_window: uint256         # seconds from claim to the proof deadline
    checkpoint_interval: uint256  # training steps between checkpoints
    checkpoints: uint256          # checkpoints in a complete proof
    solver: address
    secret_hash: bytes32          # solver's commitment for forced errors
    entropy: bytes32              # randomness drawn at claim
    round: uint256                # 0 for the first proof, 1 after a forced error
    deadline: uint256             # end of the current phase
    proof_root: bytes32           # Merkle root of the checkpoint roots
    verifier: address
    challenger: address
    dispute_id: uint256
    draw_block: uint256           # block whose hash the pending draw reads; 0 when none is pending
    forced_declared: bool         # the solver showed, in a dispute, that this proof is a forced error

# the dispute game; fixed at deploy
arbiter: public(immutable(address))
# tasks by id, from 1
tasks: public(HashMap[uint256, Task])
# number of tasks created
task_count: public(uint256)
# wei held in escrow over all tasks
total_escrow: public(uint256)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTRUCTOR                                                   ║
# ╚═══════════════════════════════════════════════════════════════╝

@deploy
def __init__(arbiter_: address, unbond_delay: uint256, initial_terms: terms.Terms, min_window: uint256):
    """
    @param arbiter_ The dispute game, already deployed and bound to this address.
    @param min_window The shortest window any terms may ever set (seconds).
    """
    assert staticcall IArbiter(arbiter_).market() == self, "market: arbiter bound elsewhere"
    arbiter = arbiter_
    stakes.__init__(unbond_delay)
    terms.__init__(initial_terms, min_window)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ SUBMITTER                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@payable
def create_task(
    spec_cid: String[MAX_CID_LENGTH],
    commitments: structs.Commitments,
    solver_stake: uint256,
    expires: uint256,
    train_window: uint256,
) -> uint256:
    """
    @notice Post a task and escrow `msg.value` for it. The task is its
            commitments: their hash is the spec hash proofs and disputes name,
            and the schedule the chain enforces is read from them. The terms'
            tax is held with the escrow and moves to the jackpot only when a
            solver claims, so a cancelled task is refunded in full.
    @return The new task's id.
    """
    terms_id: uint256 = terms.current_terms
    steps: uint256 = commitments.steps
    checkpoint_interval: uint256 = commitments.checkpoint_interval
    # fields read one by one: loading the whole terms struct costs a storage read per field
    assert msg.value >= terms.published[terms_id].min_payment, "market: payment below the minimum"
    assert solver_stake >= terms.published[terms_id].min_solver_stake, "market: solver stake below the minimum"
    assert len(spec_cid) > 0, "market: empty spec cid"
    assert expires > block.timestamp, "market: expiry in the past"
    assert train_window > 0 and train_window <= MAX_TRAIN_WINDOW, "market: bad train window"
    assert checkpoint_interval > 0 and checkpoint_interval <= MAX_CHECKPOINT_INTERVAL, "market: bad checkpoint interval"
    assert steps > 0 and steps % checkpoint_interval == 0, "market: steps not a multiple of the interval"
    assert steps // checkpoint_interval < MAX_CHECKPOINTS, "market: too many checkpoints"

    spec_hash: bytes32 = keccak256(abi_encode(commitments))
    tax: uint256 = msg.value * terms.published[terms_id].tax_ppm // PPM
    task_id: uint256 = self.task_count + 1
    self.task_count = task_id
    # fields are written one by one: the others of a fresh id are already zero
    self.tasks[task_id].state = TaskState.OPEN
    self.tasks[task_id].submitter = msg.sender
    self.tasks[task_id].spec_hash = spec_hash
    self.tasks[task_id].escrow = msg.value - tax
    self.tasks[task_id].tax = tax
    self.tasks[task_id].solver_stake = solver_stake
    self.tasks[task_id].terms_id = terms_id
    self.tasks[task_id].expires = expires
    self.tasks[task_id].train_window = train_window
    self.tasks[task_id].checkpoint_interval = checkpoint_interval
    self.tasks[task_id].checkpoints = steps // checkpoint_interval + 1
    self.total_escrow += msg.value
    log TaskCreated(
        task_id=task_id,
        submitter=msg.sender,
        spec_cid=spec_cid,
        spec_hash=spec_hash,
        escrow=msg.value,
        terms_id=terms_id,
    )
    return task_id


@external
def cancel(task_id: uint256):
    """
    @notice Withdraw an unclaimed task; its whole escrow is credited back.
    """
    task: Task = self.tasks[task_id]
    assert task.state == TaskState.OPEN, "market: task not open"
    assert msg.sender == task.submitter, "market: caller is not the submitter"
    self.tasks[task_id].state = TaskState.CANCELLED
    self._refund(task_id, task)
    log TaskCancelled(task_id=task_id)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ SOLVER                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def claim(task_id: uint256, secret_hash: bytes32):
    """
    @notice Take an open task, locking the required stake.
    @param secret_hash keccak256 of a 32-byte secret the solver keeps until it
           finalises; it decides, with the entropy `draw` reads from this
           block's hash, whether the first proof must carry a forced error.
    """
    assert self.tasks[task_id].state == TaskState.OPEN, "market: task not open"
    assert block.timestamp <= self.tasks[task_id].expires, "market: task expired"
    assert stakes._has_role(msg.sender, stakes.ROLE_SOLVER), "market: caller is not a solver"
    assert msg.sender != self.tasks[task_id].submitter, "market: submitter cannot solve"
    stakes._lock(msg.sender, self.tasks[task_id].solver_stake)

    tax: uint256 = self.tasks[task_id].tax
    if tax > 0:
        self.total_escrow -= tax
        self.tasks[task_id].tax = 0
        jackpot._fund(tax)
    deadline: uint256 = block.timestamp + self.tasks[task_id].train_window
    self.tasks[task_id].state = TaskState.CLAIMED
    self.tasks[task_id].solver = msg.sender
    self.tasks[task_id].secret_hash = secret_hash
    self.tasks[task_id].entropy = empty(bytes32)
    self.tasks[task_id].draw_block = block.number
    self.tasks[task_id].deadline = deadline
    log TaskClaimed(task_id=task_id, solver=msg.sender, deadline=deadline)


@external
def submit(task_id: uint256, proof_root: bytes32, checkpoints: uint256, proof_cid: String[MAX_CID_LENGTH]):
    """
    @notice Commit to a proof of learning: the Merkle root over the checkpoint
            roots. The hash of this block draws its verifier (`draw`).
    """
    assert self.tasks[task_id].state == TaskState.CLAIMED, "market: task not claimed"
    assert msg.sender == self.tasks[task_id].solver, "market: caller is not the solver"
    assert block.timestamp <= self.tasks[task_id].deadline, "market: proof deadline passed"
    assert self.tasks[task_id].draw_block == 0, "market: entropy not drawn"
    assert checkpoints == self.tasks[task_id].checkpoints, "market: wrong checkpoint count"
    assert proof_root != empty(bytes32), "market: empty proof root"
    assert len(proof_cid) > 0, "market: empty proof cid"

    self.tasks[task_id].state = TaskState.SUBMITTED
    self.tasks[task_id].proof_root = proof_root
    self._await_verifier_draw(task_id)
    log ProofSubmitted(
        task_id=task_id,
        solver=msg.sender,
        proof_root=proof_root,
        checkpoints=checkpoints,
        proof_cid=proof_cid,
        round=self.tasks[task_id].round,
    )


@external
def finalise(task_id: uint256, secret: bytes32):
    """
    @notice After the whistleblower window, reveal the secret and collect the
            payment. If the secret shows the accepted proof was a forced error,
            the verifier that accepted it is released without its fee (it loses
            no stake: nothing proves the forced proof wrong) and the solver
            must submit its genuine proof within the reveal window.
    """
    assert self.tasks[task_id].state == TaskState.ACCEPTED, "market: task not accepted"
    solver: address = self.tasks[task_id].solver
    assert msg.sender == solver, "market: caller is not the solver"
    deadline: uint256 = self.tasks[task_id].deadline
    terms_id: uint256 = self.tasks[task_id].terms_id
    assert block.timestamp > deadline, "market: whistleblower window open"
    assert block.timestamp <= deadline + terms.published[terms_id].reveal_window, "market: reveal window passed"
    assert keccak256(secret) == self.tasks[task_id].secret_hash, "market: secret does not match"

    if self._forced(task_id, secret):
        task: Task = self.tasks[task_id]
        self._release_verifier(task)
        self._await_genuine_proof(task_id, task, empty(address))
        return

    verifier: address = self.tasks[task_id].verifier
    escrow: uint256 = self.tasks[task_id].escrow
    fee: uint256 = 0
    if verifier != empty(address):
        fee = escrow * terms.published[terms_id].verifier_fee_ppm // PPM
        stakes._unlock(verifier, terms.published[terms_id].verifier_bond)
        ledger._credit(verifier, fee)
    payment: uint256 = escrow - fee
    stakes._unlock(solver, self.tasks[task_id].solver_stake)
    ledger._credit(solver, payment)
    self.total_escrow -= escrow
    self.tasks[task_id].state = TaskState.FINALISED
    self.tasks[task_id].escrow = 0
    log TaskFinalised(
        task_id=task_id,
        solver=solver,
        verifier=verifier,
        proof_root=self.tasks[task_id].proof_root,
        solver_payment=payment,
        verifier_fee=fee,
    )


@external
def declare_forced_error(task_id: uint256, secret: bytes32):
    """
    @notice In a dispute, show that the challenged proof is a forced error.
            The game goes on: if the challenger proves the error, the solver
            is not slashed, the challenger is paid from the jackpot, and the
            solver submits its genuine proof. A forced error that is not
            proven (the solver lets its clock run out) is an ordinary loss.
    """
    task: Task = self.tasks[task_id]
    assert task.state == TaskState.DISPUTED, "market: task not disputed"
    assert msg.sender == task.solver, "market: caller is not the solver"
    assert keccak256(secret) == task.secret_hash, "market: secret does not match"
    assert self._forced(task_id, secret), "market: not a forced error"
    self.tasks[task_id].forced_declared = True
    log ForcedErrorDeclared(task_id=task_id, dispute_id=task.dispute_id)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ VERIFIER AND WHISTLEBLOWERS                                   ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def accept(task_id: uint256):
    """
    @notice The drawn verifier accepts the proof; whistleblowers may now
            audit it until the window closes.
    """
    assert self.tasks[task_id].state == TaskState.SUBMITTED, "market: task not submitted"
    assert msg.sender == self.tasks[task_id].verifier, "market: caller is not the verifier"
    assert block.timestamp <= self.tasks[task_id].deadline, "market: verify window passed"
    self._open_whistle_window(task_id, terms.published[self.tasks[task_id].terms_id].whistle_window)


@external
def challenge(task_id: uint256, proof_root: bytes32, segment: uint256) -> uint256:
    """
    @notice Dispute segment `segment` of the proof `proof_root` (naming the
            root keeps a reorganised or replaced proof from being challenged by
            mistake). The drawn verifier challenges with its bond before
            accepting; afterwards any whistleblower may, locking a bond.
    @return The dispute id in the arbiter.
    """
    task: Task = self.tasks[task_id]
    assert task.state in (TaskState.SUBMITTED | TaskState.ACCEPTED), "market: task not challengeable"
    assert proof_root == task.proof_root, "market: proof root mismatch"
    assert segment < task.checkpoints - 1, "market: no such segment"
    assert block.timestamp <= task.deadline, "market: challenge window passed"
    if task.state == TaskState.SUBMITTED:
        assert msg.sender == task.verifier, "market: caller is not the verifier"
    else:
        assert stakes._has_role(msg.sender, stakes.ROLE_WHISTLEBLOWER), "market: caller is not a whistleblower"
        assert msg.sender != task.solver and msg.sender != task.verifier, "market: party cannot blow the whistle"
        stakes._lock(msg.sender, terms.published[task.terms_id].challenge_bond)

    self.tasks[task_id].state = TaskState.DISPUTED
    self.tasks[task_id].challenger = msg.sender
    dispute_id: uint256 = extcall IArbiter(arbiter).open_dispute(task_id, task.solver, msg.sender, segment)
    self.tasks[task_id].dispute_id = dispute_id
    log Challenged(task_id=task_id, challenger=msg.sender, segment=segment, dispute_id=dispute_id)
    return dispute_id


# ╔═══════════════════════════════════════════════════════════════╗
# ║ ARBITER                                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def resolve(task_id: uint256, dispute_id: uint256, solver_won: bool, proven: bool):
    """
    @notice The dispute game's verdict; `proven` when the challenger won
            through a checked final proof rather than a timeout. A losing
            challenger's bond goes to the solver and the proof stands, with a
            fresh whistleblower window. A proven forced error pays the
            challenger from the jackpot and slashes nobody. Otherwise a losing
            solver is slashed to the challenger, a verifier that accepted a
            proof proven wrong is slashed to the whistleblower that proved it,
            and the task reopens or refunds.
    """
    assert msg.sender == arbiter, "market: caller is not the arbiter"
    task: Task = self.tasks[task_id]
    assert task.state == TaskState.DISPUTED, "market: task not disputed"
    assert dispute_id == task.dispute_id, "market: stale dispute"
    t: terms.Terms = terms.published[task.terms_id]
    log DisputeResolved(task_id=task_id, dispute_id=dispute_id, solver_won=solver_won)

    if solver_won:
        bond: uint256 = t.challenge_bond
        if task.challenger == task.verifier:
            bond = t.verifier_bond
            # the verifier lost its bond and earns no fee
            self.tasks[task_id].verifier = empty(address)
        self._slash_to(task.challenger, bond, task.solver, t.winner_share_ppm)
        self.tasks[task_id].challenger = empty(address)
        self._open_whistle_window(task_id, t.whistle_window)
        return

    if task.challenger == task.verifier:
        stakes._unlock(task.verifier, t.verifier_bond)
    else:
        stakes._unlock(task.challenger, t.challenge_bond)
        if proven and not task.forced_declared:
            self._forfeit_verifier(task, task.challenger)
        else:
            self._release_verifier(task)
    if proven and task.forced_declared:
        jackpot._pay(task.challenger, t.payout_ppm, t.payout_cap)
        self._await_genuine_proof(task_id, task, task.challenger)
        return
    self._slash_to(task.solver, task.solver_stake, task.challenger, t.winner_share_ppm)
    self._reopen_or_refund(task_id, task)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ ANYONE                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def draw(task_id: uint256):
    """
    @notice Read the randomness a claim or a proof committed to: the hash of
            the block that included it, known to nobody when it was signed.
            After a claim it is the forced-error entropy; after a proof it is
            the seed that draws the verifier and the verifiers' sample. Anyone
            may call, from the next block until the hash leaves the EVM's
            256-block horizon; a draw nobody made by then is the solver's
            failure (`expire`).
    """
    state: TaskState = self.tasks[task_id].state
    committed: uint256 = self.tasks[task_id].draw_block
    assert state in (TaskState.CLAIMED | TaskState.SUBMITTED) and committed != 0, "market: no draw pending"
    assert block.number > committed, "market: draw block not mined yet"
    assert block.number <= committed + DRAW_HORIZON, "market: draw horizon passed"
    self.tasks[task_id].draw_block = 0
    # what was committed in that block: the solver's secret hash, or its proof root
    salt: bytes32 = self.tasks[task_id].proof_root
    if state == TaskState.CLAIMED:
        salt = self.tasks[task_id].secret_hash
    drawn: bytes32 = keccak256(abi_encode(blockhash(committed), task_id, salt))
    if state == TaskState.CLAIMED:
        self.tasks[task_id].entropy = drawn
        log EntropyDrawn(task_id=task_id, entropy=drawn)
    else:
        self._assign_verifier(task_id, drawn)


@external
def expire(task_id: uint256):
    """
    @notice Enforce a passed deadline; anyone may call.
            Open: nobody claimed before expiry, the escrow is refunded.
            Claimed or Submitted with a draw nobody made within the blockhash
            horizon, or Claimed past the proof deadline: the solver, whose
            draw or proof it was, is slashed.
            Submitted: the verifier stayed silent, is slashed lightly and a
            new verifier is drawn; after the task's expiry, the proof goes to
            the whistleblowers unverified instead, so waiting is bounded.
            Accepted: the solver never revealed and is slashed.
    """
    task: Task = self.tasks[task_id]
    t: terms.Terms = terms.published[task.terms_id]
    culprit: address = empty(address)

    if task.state == TaskState.OPEN:
        assert block.timestamp > task.expires, "market: task not expired"
        self.tasks[task_id].state = TaskState.REFUNDED
        self._refund(task_id, task)
    elif task.state == TaskState.CLAIMED or (task.state == TaskState.SUBMITTED and task.draw_block != 0):
        missed_draw: bool = task.draw_block != 0 and block.number > task.draw_block + DRAW_HORIZON
        assert missed_draw or (task.state == TaskState.CLAIMED and block.timestamp > task.deadline), "market: proof deadline not passed"
        culprit = task.solver
        self._slash_to(task.solver, task.solver_stake, task.submitter, t.winner_share_ppm)
        self._reopen_or_refund(task_id, task)
    elif task.state == TaskState.SUBMITTED:
        assert block.timestamp > task.deadline, "market: verify window not passed"
        culprit = task.verifier
        if task.verifier != empty(address):
            stakes._unlock(task.verifier, t.verifier_bond - t.silence_slash)
            self._slash_to(task.verifier, t.silence_slash, empty(address), 0)
        if block.timestamp <= task.expires:
            self._await_verifier_draw(task_id)
        else:
            # no verification could be had within the task's life: the proof
            # stands unverified, and whistleblowers still audit it
            self.tasks[task_id].verifier = empty(address)
            self._open_whistle_window(task_id, t.whistle_window)
    elif task.state == TaskState.ACCEPTED:
        assert block.timestamp > task.deadline + t.reveal_window, "market: reveal window not passed"
        culprit = task.solver
        if task.verifier != empty(address):
            stakes._unlock(task.verifier, t.verifier_bond)
        self._slash_to(task.solver, task.solver_stake, task.submitter, t.winner_share_ppm)
        self._reopen_or_refund(task_id, task)
    else:
        raise "market: nothing to expire"
    log TaskExpired(task_id=task_id, state=task.state, culprit=culprit)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ VIEWS                                                         ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@pure
def is_forced_error(secret: bytes32, entropy: bytes32, forced_error_ppm: uint256) -> bool:
    """
    @notice Whether a proof committed with `secret` must carry a forced error.
    """
    return self._draws_forced_error(secret, entropy, forced_error_ppm)


@external
@view
def dispute_view(task_id: uint256) -> (bytes32, bytes32, uint256):
    """
    @notice What the dispute game needs of a task: (spec hash, proof root,
            checkpoint count).
    """
    return self.tasks[task_id].spec_hash, self.tasks[task_id].proof_root, self.tasks[task_id].checkpoints


@external
@view
def liabilities() -> uint256:
    """
    @notice Every wei the market owes: escrow, stakes, credits and jackpot.
            The balance is never below this; it is above only by ether forced in.
    """
    return self.total_escrow + stakes.total_staked + ledger.total_credits + jackpot.pool


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _draws_forced_error(secret: bytes32, entropy: bytes32, forced_error_ppm: uint256) -> bool:
    return convert(keccak256(concat(secret, entropy)), uint256) % PPM < forced_error_ppm


@internal
@view
def _forced(task_id: uint256, secret: bytes32) -> bool:
    if self.tasks[task_id].round != FIRST_ROUND:
        return False
    ppm: uint256 = terms.published[self.tasks[task_id].terms_id].forced_error_ppm
    return self._draws_forced_error(secret, self.tasks[task_id].entropy, ppm)


@internal
def _await_verifier_draw(task_id: uint256):
    self.tasks[task_id].verifier = empty(address)
    self.tasks[task_id].draw_block = block.number


@internal
def _assign_verifier(task_id: uint256, seed: bytes32):
    """
    @notice Draw a verifier with enough free stake, starting at a random
            position of the verifier set. With nobody available the task waits
            unassigned and `expire` commits a new draw after the window.
    """
    solver: address = self.tasks[task_id].solver
    terms_id: uint256 = self.tasks[task_id].terms_id
    bond: uint256 = terms.published[terms_id].verifier_bond
    verifier: address = empty(address)
    count: uint256 = len(stakes.verifiers)
    if count > 0:
        start: uint256 = convert(seed, uint256) % count
        for i: uint256 in range(MAX_DRAW_PROBES):
            if i == count:
                break
            candidate: address = stakes.verifiers[(start + i) % count]
            if candidate != solver and stakes._free(candidate) >= bond:
                verifier = candidate
                break
    if verifier != empty(address):
        stakes._lock(verifier, bond)
    deadline: uint256 = block.timestamp + terms.published[terms_id].verify_window
    self.tasks[task_id].verifier = verifier
    self.tasks[task_id].deadline = deadline
    log VerifierDrawn(task_id=task_id, verifier=verifier, deadline=deadline, seed=seed)


@internal
def _open_whistle_window(task_id: uint256, window: uint256):
    deadline: uint256 = block.timestamp + window
    self.tasks[task_id].state = TaskState.ACCEPTED
    self.tasks[task_id].deadline = deadline
    log ProofAccepted(task_id=task_id, verifier=self.tasks[task_id].verifier, deadline=deadline)


@internal
def _forfeit_verifier(task: Task, whistleblower: address):
    """
    @notice The verifier accepted a proof a whistleblower proved wrong: its
            bond goes to the whistleblower (winner share) and the jackpot.
    """
    if task.verifier == empty(address):
        return
    t: terms.Terms = terms.published[task.terms_id]
    self._slash_to(task.verifier, t.verifier_bond, whistleblower, t.winner_share_ppm)


@internal
def _release_verifier(task: Task):
    """
    @notice The verifier's bond is unlocked; it earns no fee for this proof.
    """
    if task.verifier != empty(address):
        stakes._unlock(task.verifier, terms.published[task.terms_id].verifier_bond)


@internal
def _await_genuine_proof(task_id: uint256, task: Task, exposed_by: address):
    deadline: uint256 = block.timestamp + terms.published[task.terms_id].reveal_window
    self.tasks[task_id].state = TaskState.CLAIMED
    self.tasks[task_id].round = FIRST_ROUND + 1
    self.tasks[task_id].deadline = deadline
    self.tasks[task_id].proof_root = empty(bytes32)
    self.tasks[task_id].verifier = empty(address)
    self.tasks[task_id].challenger = empty(address)
    self.tasks[task_id].forced_declared = False
    log ForcedErrorRevealed(task_id=task_id, exposed_by=exposed_by, deadline=deadline)


@internal
def _slash_to(account: address, amount: uint256, winner: address, winner_share_ppm: uint256):
    """
    @notice Slash `amount` of `account`'s locked stake: `winner_share_ppm` of it
            to `winner`, the rest to the jackpot. The two parts add up to the wei.
    """
    stakes._slash(account, amount)
    to_winner: uint256 = amount * winner_share_ppm // PPM
    ledger._credit(winner, to_winner)
    jackpot._fund(amount - to_winner)


@internal
def _reopen_or_refund(task_id: uint256, task: Task):
    """
    @notice After a solver failed: reopen the task for another solver while it
            has not expired, otherwise refund the submitter.
    """
    self.tasks[task_id].solver = empty(address)
    self.tasks[task_id].verifier = empty(address)
    self.tasks[task_id].challenger = empty(address)
    self.tasks[task_id].proof_root = empty(bytes32)
    self.tasks[task_id].round = FIRST_ROUND
    self.tasks[task_id].draw_block = 0
    self.tasks[task_id].forced_declared = False
    if block.timestamp <= task.expires:
        self.tasks[task_id].state = TaskState.OPEN
        log TaskReopened(task_id=task_id)
    else:
        self.tasks[task_id].state = TaskState.REFUNDED
        self._refund(task_id, task)


@internal
def _refund(task_id: uint256, task: Task):
    amount: uint256 = task.escrow + task.tax
    self.total_escrow -= amount
    self.tasks[task_id].escrow = 0
    self.tasks[task_id].tax = 0
    ledger._credit(task.submitter, amount)
    log TaskRefunded(task_id=task_id, amount=amount)
