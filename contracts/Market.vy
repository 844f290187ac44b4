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

        A solver commits to a secret when it claims; together with entropy it
        could not know then, the secret decides whether its first proof must
        carry a forced error. It reveals the secret to finalise, or earlier to
        concede a dispute over a forced error.
@dev    Every external function is guarded by one reentrancy lock (the pragma
        above), views included.
"""

from interfaces import IArbiter

from market import ledger
from market import jackpot
from market import stakes
from market import terms

initializes: ledger
initializes: jackpot[ledger := ledger]
initializes: stakes[ledger := ledger]
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
    seed: bytes32
    round: uint256

event VerifierDrawn:
    task_id: indexed(uint256)
    verifier: indexed(address)
    deadline: uint256

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
def __init__(arbiter_: address, unbond_delay: uint256, initial_terms: terms.Terms):
    """
    @param arbiter_ The dispute game, already deployed and bound to this address.
    """
    assert staticcall IArbiter(arbiter_).market() == self, "market: arbiter bound elsewhere"
    arbiter = arbiter_
    stakes.__init__(unbond_delay)
    terms.__init__(initial_terms)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ SUBMITTER                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@payable
def create_task(
    spec_cid: String[MAX_CID_LENGTH],
    spec_hash: bytes32,
    solver_stake: uint256,
    expires: uint256,
    train_window: uint256,
    steps: uint256,
    checkpoint_interval: uint256,
) -> uint256:
    """
    @notice Post a task and escrow `msg.value` for it. The terms' tax is held
            with the escrow and moves to the jackpot only when a solver claims,
            so a cancelled task is refunded in full.
    @return The new task's id.
    """
    assert msg.value > 0, "market: no payment"
    assert len(spec_cid) > 0, "market: empty spec cid"
    assert expires > block.timestamp, "market: expiry in the past"
    assert train_window > 0 and train_window <= MAX_TRAIN_WINDOW, "market: bad train window"
    assert checkpoint_interval > 0, "market: zero checkpoint interval"
    assert steps > 0 and steps % checkpoint_interval == 0, "market: steps not a multiple of the interval"
    assert steps // checkpoint_interval < MAX_CHECKPOINTS, "market: too many checkpoints"

    terms_id: uint256 = terms.current_terms
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
           finalises; it decides, with entropy drawn now, whether the first
           proof must carry a forced error.
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
    self.tasks[task_id].entropy = self._randomness(task_id, secret_hash)
    self.tasks[task_id].deadline = deadline
    log TaskClaimed(task_id=task_id, solver=msg.sender, deadline=deadline)


@external
def submit(task_id: uint256, proof_root: bytes32, checkpoints: uint256, proof_cid: String[MAX_CID_LENGTH]):
    """
    @notice Commit to a proof of learning: the Merkle root over the checkpoint
            roots. A verifier is drawn at random from the verifier set.
    """
    assert self.tasks[task_id].state == TaskState.CLAIMED, "market: task not claimed"
    assert msg.sender == self.tasks[task_id].solver, "market: caller is not the solver"
    assert block.timestamp <= self.tasks[task_id].deadline, "market: proof deadline passed"
    assert checkpoints == self.tasks[task_id].checkpoints, "market: wrong checkpoint count"
    assert proof_root != empty(bytes32), "market: empty proof root"
    assert len(proof_cid) > 0, "market: empty proof cid"

    seed: bytes32 = self._randomness(task_id, proof_root)
    self.tasks[task_id].state = TaskState.SUBMITTED
    self.tasks[task_id].proof_root = proof_root
    log ProofSubmitted(
        task_id=task_id,
        solver=msg.sender,
        proof_root=proof_root,
        checkpoints=checkpoints,
        proof_cid=proof_cid,
        seed=seed,
        round=self.tasks[task_id].round,
    )
    self._assign_verifier(task_id, msg.sender, self.tasks[task_id].terms_id, seed)


@external
def finalise(task_id: uint256, secret: bytes32):
    """
    @notice After the whistleblower window, reveal the secret and collect the
            payment. If the secret shows the accepted proof was a forced error,
            the verifier that accepted it is slashed and the solver must submit
            its genuine proof within the reveal window.
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
        # nobody exposed the forced error: the accepting verifier forfeits to the jackpot
        task: Task = self.tasks[task_id]
        self._forfeit_verifier(task, empty(address))
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
def concede_forced_error(task_id: uint256, secret: bytes32):
    """
    @notice Answer a challenge by revealing that the proof carries a forced
            error. The dispute is aborted, the challenger is rewarded from the
            jackpot, and the solver must submit its genuine proof.
    """
    task: Task = self.tasks[task_id]
    assert task.state == TaskState.DISPUTED, "market: task not disputed"
    assert msg.sender == task.solver, "market: caller is not the solver"
    assert keccak256(secret) == task.secret_hash, "market: secret does not match"
    assert self._forced(task_id, secret), "market: not a forced error"

    t: terms.Terms = terms.published[task.terms_id]
    if task.challenger == task.verifier:
        stakes._unlock(task.verifier, t.verifier_bond)
    else:
        # a whistleblower exposed a verifier that accepted the forced error
        stakes._unlock(task.challenger, t.challenge_bond)
        self._forfeit_verifier(task, task.challenger)
    jackpot._pay(task.challenger, t.payout_ppm, t.payout_cap)
    self._await_genuine_proof(task_id, task, task.challenger)
    extcall IArbiter(arbiter).abort_dispute(task.dispute_id)


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
def resolve(task_id: uint256, dispute_id: uint256, solver_won: bool):
    """
    @notice The dispute game's verdict. A losing challenger's bond goes to the
            solver and the proof stands, with a fresh whistleblower window; a
            losing solver is slashed to the challenger (and so is a verifier
            that accepted the bad proof) and the task reopens or refunds.
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
        self._forfeit_verifier(task, task.challenger)
    self._slash_to(task.solver, task.solver_stake, task.challenger, t.winner_share_ppm)
    self._reopen_or_refund(task_id, task)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ ANYONE                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def expire(task_id: uint256):
    """
    @notice Enforce a passed deadline; anyone may call.
            Open: nobody claimed before expiry, the escrow is refunded.
            Claimed: the solver missed its deadline and is slashed.
            Submitted: the verifier stayed silent, is slashed lightly and
            replaced; after the task's expiry, the proof goes to the
            whistleblowers unverified instead, so waiting is bounded.
            Accepted: the solver never revealed and is slashed.
    """
    task: Task = self.tasks[task_id]
    t: terms.Terms = terms.published[task.terms_id]
    culprit: address = empty(address)

    if task.state == TaskState.OPEN:
        assert block.timestamp > task.expires, "market: task not expired"
        self.tasks[task_id].state = TaskState.REFUNDED
        self._refund(task_id, task)
    elif task.state == TaskState.CLAIMED:
        assert block.timestamp > task.deadline, "market: proof deadline not passed"
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
            self._assign_verifier(task_id, task.solver, task.terms_id, self._randomness(task_id, task.proof_root))
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
@view
def _randomness(task_id: uint256, salt: bytes32) -> bytes32:
    """
    @dev Unknown to the sender when it signs: prevrandao of the block that
         includes the transaction.
    """
    return keccak256(abi_encode(block.prevrandao, blockhash(block.number - 1), task_id, salt))


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
def _assign_verifier(task_id: uint256, solver: address, terms_id: uint256, seed: bytes32) -> address:
    """
    @notice Draw a verifier with enough free stake, starting at a random
            position of the verifier set. With nobody available the task waits
            unassigned and `expire` draws again after the window.
    """
    t: terms.Terms = terms.published[terms_id]
    verifier: address = empty(address)
    count: uint256 = len(stakes.verifiers)
    if count > 0:
        start: uint256 = convert(seed, uint256) % count
        for i: uint256 in range(MAX_DRAW_PROBES):
            if i == count:
                break
            candidate: address = stakes.verifiers[(start + i) % count]
            if candidate != solver and stakes._free(candidate) >= t.verifier_bond:
                verifier = candidate
                break
    if verifier != empty(address):
        stakes._lock(verifier, t.verifier_bond)
    deadline: uint256 = block.timestamp + t.verify_window
    self.tasks[task_id].verifier = verifier
    self.tasks[task_id].deadline = deadline
    log VerifierDrawn(task_id=task_id, verifier=verifier, deadline=deadline)
    return verifier


@internal
def _open_whistle_window(task_id: uint256, window: uint256):
    deadline: uint256 = block.timestamp + window
    self.tasks[task_id].state = TaskState.ACCEPTED
    self.tasks[task_id].deadline = deadline
    log ProofAccepted(task_id=task_id, verifier=self.tasks[task_id].verifier, deadline=deadline)


@internal
def _forfeit_verifier(task: Task, whistleblower: address):
    """
    @notice The verifier accepted a bad proof: its bond goes to the
            whistleblower that exposed it, or to the jackpot if nobody did.
    """
    if task.verifier == empty(address):
        return
    t: terms.Terms = terms.published[task.terms_id]
    share: uint256 = t.winner_share_ppm
    if whistleblower == empty(address):
        share = 0
    self._slash_to(task.verifier, t.verifier_bond, whistleblower, share)


@internal
def _await_genuine_proof(task_id: uint256, task: Task, exposed_by: address):
    deadline: uint256 = block.timestamp + terms.published[task.terms_id].reveal_window
    self.tasks[task_id].state = TaskState.CLAIMED
    self.tasks[task_id].round = FIRST_ROUND + 1
    self.tasks[task_id].deadline = deadline
    self.tasks[task_id].proof_root = empty(bytes32)
    self.tasks[task_id].verifier = empty(address)
    self.tasks[task_id].challenger = empty(address)
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
