# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title Arbitration
@notice The dispute game of the market (docs/arbitration.md). A challenged
        segment j of a proof of learning is narrowed down on chain to one
        training step, then to one root inequality, one dataset row or one
        output element of one graph node, which the chain checks itself.

        open ─→ REVEAL (solver: the state roots inside segment j)
             ─→ PICK (challenger: one interval; repeated with BISECT while the
                      interval is longer than one step)
             ─→ TRACE (solver: root over every node output of that step)
             ─→ PROVE (challenger: a leaf or output link mismatch, a wrong
                       data row or an inconsistent element, through the
                       ProgramChecker; it may DEMAND elements that the solver
                       must POST (through the ProofChecker) first; an element
                       of a reduction longer than 64 terms is opened through
                       the ProgramReductionChecker)
             ─→ PARTIALS (solver: partial sums over chunks of the reduction)
             ─→ SUM_PICK (challenger: one group of chunks, back to PARTIALS,
                          or a chunk check or the fold check, which ends it)

        Chess clocks: each side has `clock` seconds for the whole game, charged
        while it is its turn; after each move the opponent has at least
        `extension` seconds left. A side whose clock has run out can no longer
        move, and `timeout` (anyone) ends the game for the other side. The
        outcome is reported to the market once, through `Market.resolve`.
@dev    Every move names the dispute and the claim it answers (segment, states
        root, step or trace root), so a reorganised or replaced claim cannot be
        answered by mistake. Only the recorded solver and challenger move; the
        winner is always one of them, whoever sends the transaction.
        Proof checking (Merkle openings of the program, the trace, tensors
        and the dataset, and the one-step judge call) lives in the stateless
        checkers, which report a verified result here with the caller.
"""

from interfaces import IMarket
from arbitration import merkle
from arbitration import structs



# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTANTS                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

# intervals one dissection move splits the current interval into (k + 1 <= 257 roots)
MAX_POINTS: constant(uint256) = 256
MAX_ROOTS: constant(uint256) = MAX_POINTS + 1
MAX_PROOF_SIBLINGS: constant(uint256) = structs.MAX_PROOF_SIBLINGS
# data availability: elements per demand, demands per dispute
MAX_DEMAND: constant(uint256) = 512
MAX_DEMANDS: constant(uint256) = 64
MAX_CLOCK: constant(uint256) = 365 * 86_400
# demand fee: an answer to a demand of `count` elements costs at most
# ANSWER_GAS + count * ANSWER_ELEMENT_GAS gas (about 1.3x the most measured over
# leaf layouts, tests/arbitration/test_arbitration_attacks.py); the demander
# pays it at FEE_MARGIN times the base fee of the demand's block, which covers
# the answer's tip and a base fee that rises before the answer lands
ANSWER_GAS: constant(uint256) = 400_000
ANSWER_ELEMENT_GAS: constant(uint256) = 2_200
FEE_MARGIN: constant(uint256) = 2
# answered ranges are stored as start << 128 | end
RANGE_SHIFT: constant(uint256) = 128
# dissection inside a reduction: partials per post; moves it adds at most (the opening, two
# posts and one pick; its chunk or fold check takes the final proof's place)
MAX_PARTIALS: constant(uint256) = structs.MAX_PARTIALS
REDUCTION_MOVES: constant(uint256) = 4

# phases: REVEAL, BISECT, TRACE and DEMAND are the solver's turn, PICK and PROVE the challenger's
PHASE_NONE: constant(uint256) = 0
PHASE_REVEAL: constant(uint256) = 1
PHASE_PICK: constant(uint256) = 2
PHASE_BISECT: constant(uint256) = 3
PHASE_TRACE: constant(uint256) = 4
PHASE_PROVE: constant(uint256) = 5
PHASE_DEMAND: constant(uint256) = 6
PHASE_SOLVER_WON: constant(uint256) = 7
PHASE_CHALLENGER_WON: constant(uint256) = 8
# the dissection inside a reduction: PARTIALS is the solver's turn, SUM_PICK the challenger's
PHASE_PARTIALS: constant(uint256) = 9
PHASE_SUM_PICK: constant(uint256) = 10

# why a game ended (DisputeEnded.reason)
END_TIMEOUT: constant(uint256) = 1
END_LINK: constant(uint256) = 2
END_DATA: constant(uint256) = 3
END_ELEMENT: constant(uint256) = 4
END_CHUNK: constant(uint256) = 5
END_FOLD: constant(uint256) = 6


# ╔═══════════════════════════════════════════════════════════════╗
# ║ TYPES                                                         ║
# ╚═══════════════════════════════════════════════════════════════╝

struct Dispute:
    task_id: uint256
    solver: address
    challenger: address
    segment: uint256
    phase: uint256
    opened_at: uint256
    turn_start: uint256           # when the side to move got the turn
    solver_clock: uint256         # seconds the solver had left at turn_start
    challenger_clock: uint256
    moves: uint256
    spec_hash: bytes32
    first_step: uint256           # global training step at the start of the interval
    span: uint256                 # steps in the interval
    points: uint256               # intervals the last dissection revealed
    states_root: bytes32          # Merkle root of the revealed state roots
    state_before: bytes32         # state root at first_step
    state_after: bytes32          # state root at first_step + span
    trace_root: bytes32
    demands: uint256
    demand_node: uint256
    demand_start: uint256
    demand_count: uint256
    demand_numel: uint256
    demand_itemsize: uint256
    n_nodes: uint256
    demand_fee: uint256           # wei held for the open demand
    mail_root: bytes32            # a group participant's: its group's mail

struct Reduction:
    node: uint256
    index: uint256
    op: uint256
    n: uint256                    # terms
    claimed: uint256              # the solver's element (float32 bits)
    first: uint256                # first chunk of the range to post / posted
    chunks: uint256               # chunks in that range
    points: uint256               # partials of the last post
    partials_root: bytes32
    picked: bool                  # the range is a picked partial: posts must add up to `parent`
    parent: structs.Partial
    total: structs.Partial        # totals of the post over the whole reduction

struct Turn:
    phase: uint256
    task_id: uint256
    turn_start: uint256
    solver_clock: uint256
    challenger_clock: uint256
    moves: uint256

# ╔═══════════════════════════════════════════════════════════════╗
# ║ EVENTS                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

event DisputeOpened:
    dispute_id: indexed(uint256)
    task_id: indexed(uint256)
    solver: address
    challenger: address
    segment: uint256

event StatesRevealed:
    dispute_id: indexed(uint256)
    first_step: uint256
    span: uint256
    states_root: bytes32
    state_roots: DynArray[bytes32, MAX_ROOTS]

event IntervalPicked:
    dispute_id: indexed(uint256)
    first_step: uint256
    span: uint256
    state_before: bytes32
    state_after: bytes32

event TraceCommitted:
    dispute_id: indexed(uint256)
    step: uint256
    trace_root: bytes32
    trace_cid: String[128]

event ElementsDemanded:
    dispute_id: indexed(uint256)
    node: uint256
    start: uint256
    count: uint256
    fee: uint256

event ElementsPosted:
    dispute_id: indexed(uint256)
    node: uint256
    tensor_root: bytes32
    start: uint256
    values: DynArray[uint256, MAX_DEMAND]

event ReductionOpened:
    dispute_id: indexed(uint256)
    node: uint256
    index: uint256
    n: uint256
    claimed: uint256

event PartialsPosted:
    dispute_id: indexed(uint256)
    node: uint256
    first: uint256
    chunks: uint256
    partials_root: bytes32
    partials: DynArray[structs.Partial, MAX_PARTIALS]

event PartialPicked:
    dispute_id: indexed(uint256)
    index: uint256
    first: uint256
    chunks: uint256

event DisputeEnded:
    dispute_id: indexed(uint256)
    task_id: indexed(uint256)
    solver_won: bool
    reason: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256


# ╔═══════════════════════════════════════════════════════════════╗
# ║ STORAGE                                                       ║
# ╚═══════════════════════════════════════════════════════════════╝

market: public(immutable(address))
# the stateless checker of posted elements (contracts/ProofChecker.vy) whose reports this game accepts
checker: public(immutable(address))
# the stateless checkers of training-program proofs: one element (contracts/ProgramChecker.vy),
# and the trace's links to the task, the states and a group's mail (contracts/ProgramLinkChecker.vy)
programs: public(immutable(address))
program_links: public(immutable(address))
# the stateless checker of dissected reductions of program nodes (contracts/ProgramReductionChecker.vy)
program_reducer: public(immutable(address))
# seconds each side has for the whole game
clock: public(immutable(uint256))
# seconds a side has at least after its opponent moved
extension: public(immutable(uint256))

disputes: public(HashMap[uint256, Dispute])
# the dissection inside a reduction, per dispute
reductions: public(HashMap[uint256, Reduction])
dispute_count: public(uint256)
# element ranges already posted, per dispute and node (start << 128 | end)
answered: HashMap[uint256, HashMap[uint256, DynArray[uint256, MAX_DEMANDS]]]
# demand fees held for open demands, and wei owed (pull payments); the
# balance is always fees_held + the sum of credits
fees_held: public(uint256)
credits: public(HashMap[address, uint256])


# ╔═══════════════════════════════════════════════════════════════╗
# ║ CONSTRUCTOR                                                   ║
# ╚═══════════════════════════════════════════════════════════════╝

@deploy
def __init__(market_: address, checker_: address, programs_: address, program_links_: address, program_reducer_: address, clock_: uint256, extension_: uint256):
    """
    @param market_ The market this game reports to (deployed next, at a known address).
    @param checker_ The ProofChecker (posted elements).
    @param programs_ The ProgramChecker (bound to the program judge).
    @param program_links_ The ProgramLinkChecker.
    @param program_reducer_ The ProgramReductionChecker (bound to the judge and the program index map).
    @param clock_ Seconds each side has for the whole game.
    @param extension_ Seconds a side has at least after its opponent moved (<= clock_).
    """
    assert market_ != empty(address) and checker_ != empty(address) and programs_ != empty(address) and program_links_ != empty(address) and program_reducer_ != empty(address), "arbitration: zero address"
    assert clock_ > 0 and clock_ <= MAX_CLOCK, "arbitration: bad clock"
    assert extension_ > 0 and extension_ <= clock_, "arbitration: bad extension"
    market = market_
    checker = checker_
    programs = programs_
    program_links = program_links_
    program_reducer = program_reducer_
    clock = clock_
    extension = extension_


# ╔═══════════════════════════════════════════════════════════════╗
# ║ MARKET                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def open_dispute(task_id: uint256, solver: address, challenger: address, segment: uint256) -> uint256:
    """
    @notice Move 1, by the market when a challenge is filed: the solver is to move.
    @dev    Does not call back into the market (its views are locked now).
    @return The dispute id.
    """
    assert msg.sender == market, "arbitration: caller is not the market"
    assert solver != empty(address) and challenger != empty(address), "arbitration: zero address"
    assert solver != challenger, "arbitration: solver cannot challenge itself"
    dispute_id: uint256 = self.dispute_count + 1
    self.dispute_count = dispute_id
    self.disputes[dispute_id].task_id = task_id
    self.disputes[dispute_id].solver = solver
    self.disputes[dispute_id].challenger = challenger
    self.disputes[dispute_id].segment = segment
    self.disputes[dispute_id].phase = PHASE_REVEAL
    self.disputes[dispute_id].opened_at = block.timestamp
    self.disputes[dispute_id].turn_start = block.timestamp
    self.disputes[dispute_id].solver_clock = clock
    self.disputes[dispute_id].challenger_clock = clock
    log DisputeOpened(dispute_id=dispute_id, task_id=task_id, solver=solver, challenger=challenger, segment=segment)
    return dispute_id


# ╔═══════════════════════════════════════════════════════════════╗
# ║ NARROWING                                                     ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def reveal_segment(
    dispute_id: uint256,
    segment: uint256,
    commitments: structs.Commitments,
    state_roots: DynArray[bytes32, MAX_ROOTS],
    checkpoint_proof: DynArray[bytes32, MAX_PROOF_SIBLINGS],
):
    """
    @notice Move 2 (solver): `min(k, 256) + 1` state roots of the challenged
            segment j, root i at step j·k + ⌊i·k / min(k, 256)⌋ (every step
            when k <= 256). The first and last must be the committed
            checkpoints j and j + 1: `checkpoint_proof` proves the two leaves
            in the proof root. `commitments` must hash to the task's spec_hash;
            k is their checkpoint interval, and training starts from their
            initial weights: root 0 of segment 0 is `weights_root`. A group
            task's segments are revealed by `reveal_participant_segment`.
    """
    t: Turn = self._begin(dispute_id, PHASE_REVEAL, msg.sender, True)
    assert segment == self.disputes[dispute_id].segment, "arbitration: wrong segment"
    spec_hash: bytes32 = empty(bytes32)
    proof_root: bytes32 = empty(bytes32)
    checkpoints: uint256 = 0
    spec_hash, proof_root, checkpoints = staticcall IMarket(market).dispute_view(t.task_id)
    assert keccak256(abi_encode(commitments)) == spec_hash, "arbitration: commitments do not match the task"
    assert commitments.weights_root != structs.GROUP_TASK, "arbitration: a group task"
    self._reveal(dispute_id, t, spec_hash, commitments, segment, state_roots, proof_root, 0, checkpoints, checkpoint_proof)


@external
def reveal_participant_segment(
    dispute_id: uint256,
    segment: uint256,
    group: structs.Commitments,
    participants: DynArray[bytes32, structs.MAX_PARTICIPANTS],
    commitments: structs.Commitments,
    state_roots: DynArray[bytes32, MAX_ROOTS],
    checkpoint_proof: DynArray[bytes32, MAX_PROOF_SIBLINGS],
    checkpoints_root: bytes32,
    mail_root: bytes32,
):
    """
    @notice Move 2 (solver) of a group task (docs/group-tasks.md §4.3): the
            task's segment is segment j of participant p, p·(C − 1) + j in
            rank order, each participant's proof having C checkpoints. As
            `reveal_segment` on that participant's own task, `commitments`
            (hashing to participants[p]), whose checkpoints p·C + j and
            p·C + j + 1 `checkpoint_proof` proves in `checkpoints_root` over
            P·C leaves. The group's proof root is keccak256(abi.encode(
            checkpoints_root, mail_root)); the dispute judges the participant's
            step on its own commitments, its messages against `mail_root`.
    """
    t: Turn = self._begin(dispute_id, PHASE_REVEAL, msg.sender, True)
    assert segment == self.disputes[dispute_id].segment, "arbitration: wrong segment"
    spec_hash: bytes32 = empty(bytes32)
    proof_root: bytes32 = empty(bytes32)
    checkpoints: uint256 = 0
    spec_hash, proof_root, checkpoints = staticcall IMarket(market).dispute_view(t.task_id)
    assert keccak256(abi_encode(group)) == spec_hash, "arbitration: commitments do not match the task"
    assert group.weights_root == structs.GROUP_TASK and keccak256(abi_encode(participants)) == group.graph_root, "arbitration: not the group's participants"
    count: uint256 = len(participants)
    k: uint256 = commitments.checkpoint_interval
    assert k == group.checkpoint_interval and commitments.steps * count == group.steps and commitments.steps % k == 0, "arbitration: participant does not fit the group"
    per: uint256 = commitments.steps // k  # segments of one participant
    p: uint256 = segment // per
    assert keccak256(abi_encode(commitments)) == participants[p], "arbitration: commitments are not the participant's"
    assert keccak256(abi_encode(checkpoints_root, mail_root)) == proof_root, "arbitration: not the group's proof"
    self.disputes[dispute_id].mail_root = mail_root
    self._reveal(
        dispute_id, t, participants[p], commitments, segment % per, state_roots, checkpoints_root, p * (per + 1),
        count * (per + 1), checkpoint_proof
    )


@internal
def _reveal(
    dispute_id: uint256,
    t: Turn,
    spec_hash: bytes32,
    commitments: structs.Commitments,
    segment: uint256,
    state_roots: DynArray[bytes32, MAX_ROOTS],
    proof_root: bytes32,
    first_leaf: uint256,
    checkpoints: uint256,
    checkpoint_proof: DynArray[bytes32, MAX_PROOF_SIBLINGS],
):
    """The state roots of segment `segment` of the task `commitments` describe, whose checkpoints
    are leaves first_leaf, first_leaf + 1, … of `proof_root` over `checkpoints` leaves."""
    k: uint256 = commitments.checkpoint_interval
    points: uint256 = min(k, MAX_POINTS)
    assert len(state_roots) == points + 1, "arbitration: wrong number of state roots"
    assert segment != 0 or state_roots[0] == commitments.weights_root, "arbitration: first state is not the task's weights"
    assert merkle._verify(
        proof_root, [first_leaf + segment, first_leaf + segment + 1], [state_roots[0], state_roots[points]],
        checkpoint_proof, checkpoints
    ), "arbitration: endpoints are not the checkpoints"
    states_root: bytes32 = merkle._merkle_root(state_roots)
    first_step: uint256 = segment * k
    self.disputes[dispute_id].spec_hash = spec_hash
    self.disputes[dispute_id].first_step = first_step
    self.disputes[dispute_id].span = k
    self.disputes[dispute_id].points = points
    self.disputes[dispute_id].states_root = states_root
    self.disputes[dispute_id].state_before = state_roots[0]
    self.disputes[dispute_id].state_after = state_roots[points]
    self._pass(dispute_id, t, PHASE_PICK)
    log StatesRevealed(dispute_id=dispute_id, first_step=first_step, span=k, states_root=states_root, state_roots=state_roots)


@external
def pick_step(
    dispute_id: uint256,
    states_root: bytes32,
    index: uint256,
    state_before: bytes32,
    state_after: bytes32,
    proof: DynArray[bytes32, MAX_PROOF_SIBLINGS],
):
    """
    @notice Move 3 (challenger): dispute interval `index` of the revealed
            roots, the transition from root `index` to root `index + 1` (both
            proven against `states_root`, the claim this move answers). An
            interval of one step goes to the trace; a longer one (k > 256) is
            dissected again.
    """
    t: Turn = self._begin(dispute_id, PHASE_PICK, msg.sender, False)
    assert states_root == self.disputes[dispute_id].states_root, "arbitration: wrong states root"
    points: uint256 = self.disputes[dispute_id].points
    assert index < points, "arbitration: no such interval"
    assert merkle._verify(
        states_root, [index, index + 1], [state_before, state_after], proof, points + 1
    ), "arbitration: roots not in the states root"
    span: uint256 = self.disputes[dispute_id].span
    lo: uint256 = index * span // points
    hi: uint256 = (index + 1) * span // points
    first_step: uint256 = self.disputes[dispute_id].first_step + lo
    self.disputes[dispute_id].first_step = first_step
    self.disputes[dispute_id].span = hi - lo
    self.disputes[dispute_id].state_before = state_before
    self.disputes[dispute_id].state_after = state_after
    if hi - lo == 1:
        self._pass(dispute_id, t, PHASE_TRACE)
    else:
        self._pass(dispute_id, t, PHASE_BISECT)
    log IntervalPicked(dispute_id=dispute_id, first_step=first_step, span=hi - lo, state_before=state_before, state_after=state_after)


@external
def bisect(dispute_id: uint256, first_step: uint256, state_roots: DynArray[bytes32, MAX_ROOTS]):
    """
    @notice Move 3b (solver, only when k > 256): `min(span, 256) + 1` state
            roots inside the picked interval that starts at `first_step` (the
            claim answered), whose ends are the picked roots.
    """
    t: Turn = self._begin(dispute_id, PHASE_BISECT, msg.sender, True)
    assert first_step == self.disputes[dispute_id].first_step, "arbitration: wrong step"
    span: uint256 = self.disputes[dispute_id].span
    points: uint256 = min(span, MAX_POINTS)
    assert len(state_roots) == points + 1, "arbitration: wrong number of state roots"
    assert state_roots[0] == self.disputes[dispute_id].state_before and state_roots[points] == self.disputes[dispute_id].state_after, "arbitration: endpoints are not the picked roots"
    states_root: bytes32 = merkle._merkle_root(state_roots)
    self.disputes[dispute_id].points = points
    self.disputes[dispute_id].states_root = states_root
    self._pass(dispute_id, t, PHASE_PICK)
    log StatesRevealed(dispute_id=dispute_id, first_step=first_step, span=span, states_root=states_root, state_roots=state_roots)


@external
def commit_trace(dispute_id: uint256, step: uint256, trace_root: bytes32, trace_cid: String[128] = ""):
    """
    @notice Move 4 (solver): the Merkle root over the output tensor roots of
            every node of training step `step` (node id order); the solver
            publishes the trace off chain, at `trace_cid` (announced in the
            event; elements it fails to serve can be demanded on chain).
    """
    t: Turn = self._begin(dispute_id, PHASE_TRACE, msg.sender, True)
    assert step == self.disputes[dispute_id].first_step, "arbitration: wrong step"
    assert trace_root != empty(bytes32), "arbitration: empty trace root"
    self.disputes[dispute_id].trace_root = trace_root
    self._pass(dispute_id, t, PHASE_PROVE)
    log TraceCommitted(dispute_id=dispute_id, step=step, trace_root=trace_root, trace_cid=trace_cid)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ DISSECTION INSIDE A REDUCTION                                 ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def post_partials(dispute_id: uint256, node: uint256, first: uint256, partials: DynArray[structs.Partial, MAX_PARTIALS]):
    """
    @notice Move 6 (solver): partials of the range of chunks [first, first +
            chunks) of the opened reduction of node `node` (the claim answered):
            min(chunks, 256) of them, partial i covering chunks [first +
            ⌊i·chunks/points⌋, first + ⌊(i+1)·chunks/points⌋). On a picked
            range they must add up exactly to the picked partial (sums, largest
            exponent); over the whole reduction their totals are what the fold
            check compares the claim with.  The ranges of a linear reduction's
            partials are checked here; a softmax-family row's (op >= ROW_BASE)
            by its checker.
    """
    t: Turn = self._begin(dispute_id, PHASE_PARTIALS, msg.sender, True)
    r: Reduction = self.reductions[dispute_id]
    assert node == r.node and first == r.first, "arbitration: wrong range"
    points: uint256 = min(r.chunks, MAX_PARTIALS)
    assert len(partials) == points, "arbitration: wrong number of partials"
    total: structs.Partial = structs.Partial(x=0, abs_sum=0, top=structs.PARTIAL_TOP_FLOOR)
    leaves: DynArray[bytes32, merkle.MAX_ROOT_LEAVES] = []
    linear: bool = r.op < structs.ROW_BASE
    for p: structs.Partial in partials:
        assert not linear or (p.top >= structs.PARTIAL_TOP_FLOOR and p.top <= structs.PARTIAL_TOP_CEIL and p.abs_sum <= structs.MAX_PARTIAL_ABS and convert(abs(p.x), uint256) <= p.abs_sum), "arbitration: partial out of range"
        total.x += p.x
        total.abs_sum += p.abs_sum
        total.top = max(total.top, p.top)
        leaves.append(keccak256(abi_encode(p)))
    if r.picked:
        assert total.x == r.parent.x and total.abs_sum == r.parent.abs_sum and total.top == r.parent.top, "arbitration: partials do not add up to the picked one"
    else:
        assert not linear or total.abs_sum <= structs.MAX_PARTIAL_ABS, "arbitration: partial out of range"
        self.reductions[dispute_id].total = total
    root: bytes32 = merkle._merkle_root(leaves)
    self.reductions[dispute_id].points = points
    self.reductions[dispute_id].partials_root = root
    self._pass(dispute_id, t, PHASE_SUM_PICK)
    log PartialsPosted(dispute_id=dispute_id, node=node, first=first, chunks=r.chunks, partials_root=root, partials=partials)


@external
def pick_partial(
    dispute_id: uint256,
    partials_root: bytes32,
    index: uint256,
    partial: structs.Partial,
    proof: DynArray[bytes32, MAX_PROOF_SIBLINGS],
):
    """
    @notice Move 7 (challenger): dispute partial `index` of the last post (the
            claim answered: its root), when it covers more than one chunk; the
            solver must post the partials of its chunks. A partial of one chunk
            is proven wrong with `ProgramReductionChecker.prove_program_chunk`
            instead.
    """
    t: Turn = self._begin(dispute_id, PHASE_SUM_PICK, msg.sender, False)
    r: Reduction = self.reductions[dispute_id]
    assert partials_root == r.partials_root, "arbitration: wrong partials root"
    assert index < r.points, "arbitration: no such partial"
    lo: uint256 = index * r.chunks // r.points
    hi: uint256 = (index + 1) * r.chunks // r.points
    assert hi - lo > 1, "arbitration: one chunk: prove it"
    assert merkle._verify(partials_root, [index], [keccak256(abi_encode(partial))], proof, r.points), "arbitration: partial not in the partials root"
    self.reductions[dispute_id].first = r.first + lo
    self.reductions[dispute_id].chunks = hi - lo
    self.reductions[dispute_id].picked = True
    self.reductions[dispute_id].parent = partial
    self._pass(dispute_id, t, PHASE_PARTIALS)
    log PartialPicked(dispute_id=dispute_id, index=index, first=r.first + lo, chunks=hi - lo)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ PROOF CHECKER REPORTS                                         ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@payable
def record_demand(
    dispute_id: uint256,
    caller: address,
    node: uint256,
    start: uint256,
    count: uint256,
    numel: uint256,
    itemsize: uint256,
    n_nodes: uint256,
):
    """
    @notice The challenger (`caller`) demanded elements [start, start + count)
            of node `node`'s output, which the checker proved to be a node of
            the task's graph with `numel` elements of `itemsize` bytes. The
            solver must post them within its clock. The demander pays
            `demand_fee(count)` (the value it sent beyond that is credited back
            to it): held here, paid to the solver when it posts, refunded if
            the game ends first. No element is demanded twice. From the
            ProgramChecker; the answer goes through the ProofChecker
            (`post_elements`).
    """
    assert msg.sender == programs, "arbitration: caller is not the checker"
    t: Turn = self._begin(dispute_id, PHASE_PROVE, caller, False)
    demands: uint256 = self.disputes[dispute_id].demands
    assert demands < MAX_DEMANDS, "arbitration: too many demands"
    assert count > 0 and count <= MAX_DEMAND and start < numel and count <= numel - start, "arbitration: bad element range"
    end: uint256 = start + count
    for r: uint256 in self.answered[dispute_id][node]:
        assert start >= r % (1 << RANGE_SHIFT) or end <= r >> RANGE_SHIFT, "arbitration: elements already posted"
    fee: uint256 = self._demand_fee(count)
    assert msg.value >= fee, "arbitration: demand fee too low"
    self.fees_held += fee
    self.credits[caller] += msg.value - fee
    self.disputes[dispute_id].demand_fee = fee
    self.disputes[dispute_id].demands = demands + 1
    self.disputes[dispute_id].demand_node = node
    self.disputes[dispute_id].demand_start = start
    self.disputes[dispute_id].demand_count = count
    self.disputes[dispute_id].demand_numel = numel
    self.disputes[dispute_id].demand_itemsize = itemsize
    self.disputes[dispute_id].n_nodes = n_nodes
    self._pass(dispute_id, t, PHASE_DEMAND)
    log ElementsDemanded(dispute_id=dispute_id, node=node, start=start, count=count, fee=fee)


@external
def record_post(dispute_id: uint256, caller: address, tensor_root: bytes32, values: DynArray[uint256, MAX_DEMAND]):
    """
    @notice The solver (`caller`) posted the demanded elements, which the
            checker proved against the committed trace; they are emitted for
            the challenger, whose turn it is again. The demand fee is the
            solver's.
    """
    assert msg.sender == checker, "arbitration: caller is not the checker"
    t: Turn = self._begin(dispute_id, PHASE_DEMAND, caller, True)
    node: uint256 = self.disputes[dispute_id].demand_node
    start: uint256 = self.disputes[dispute_id].demand_start
    self.answered[dispute_id][node].append((start << RANGE_SHIFT) | (start + self.disputes[dispute_id].demand_count))
    fee: uint256 = self.disputes[dispute_id].demand_fee
    self.disputes[dispute_id].demand_fee = 0
    self.fees_held -= fee
    self.credits[caller] += fee
    self._pass(dispute_id, t, PHASE_PROVE)
    log ElementsPosted(dispute_id=dispute_id, node=node, tensor_root=tensor_root, start=start, values=values)


@external
def conclude(dispute_id: uint256, caller: address, reason: uint256):
    """
    @notice The challenger (`caller`) proved the trace inconsistent (a link
            mismatch or a wrong data row, from the ProgramLinkChecker; an
            element the judge rejects, from the ProgramChecker): the recorded
            challenger wins.
    """
    assert msg.sender == programs or msg.sender == program_links, "arbitration: caller is not the checker"
    if msg.sender == programs:
        assert reason == END_ELEMENT, "arbitration: bad reason"
    else:
        assert reason == END_LINK or reason == END_DATA, "arbitration: bad reason"
    t: Turn = self._begin(dispute_id, PHASE_PROVE, caller, False)
    self._finish(dispute_id, t.task_id, False, reason)


@external
def record_reduction(dispute_id: uint256, caller: address, node: uint256, index: uint256, op: uint256, n: uint256, claimed: uint256):
    """
    @notice The challenger (`caller`) disputes element `index` of node `node`
            (a linear reduction of n > 64 terms, the element `claimed`, summed
            as the judge's `op`), which a reduction checker proved against the
            committed trace: the solver must post the partials of its chunks.
    """
    assert msg.sender == program_reducer, "arbitration: caller is not the checker"
    t: Turn = self._begin(dispute_id, PHASE_PROVE, caller, False)
    assert n > structs.CHUNK and n <= structs.MAX_LONG_REDUCTION, "arbitration: bad reduction length"
    self.reductions[dispute_id] = Reduction(
        node=node, index=index, op=op, n=n, claimed=claimed, first=0,
        chunks=(n + structs.CHUNK - 1) // structs.CHUNK, points=0, partials_root=empty(bytes32),
        picked=False, parent=empty(structs.Partial), total=empty(structs.Partial),
    )
    self._pass(dispute_id, t, PHASE_PARTIALS)
    log ReductionOpened(dispute_id=dispute_id, node=node, index=index, n=n, claimed=claimed)


@external
def conclude_reduction(dispute_id: uint256, caller: address, reason: uint256):
    """
    @notice The challenger (`caller`) proved a one-chunk partial wrong, or the
            claim outside the bound of the partials' totals: it wins.
    """
    assert msg.sender == program_reducer, "arbitration: caller is not the checker"
    assert reason == END_CHUNK or reason == END_FOLD, "arbitration: bad reason"
    t: Turn = self._begin(dispute_id, PHASE_SUM_PICK, caller, False)
    self._finish(dispute_id, t.task_id, False, reason)


@external
def withdraw():
    """
    @notice Send the caller the wei it is owed (demand fees it earned or got back).
    """
    amount: uint256 = self.credits[msg.sender]
    assert amount > 0, "arbitration: nothing to withdraw"
    self.credits[msg.sender] = 0
    log Withdrawn(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ ANYONE                                                        ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
def timeout(dispute_id: uint256):
    """
    @notice End a game whose side to move has run out of clock: the other side
            wins. Anyone may call.
    """
    phase: uint256 = self.disputes[dispute_id].phase
    assert phase != PHASE_NONE, "arbitration: no such dispute"
    assert not self._over(phase), "arbitration: dispute closed"
    assert block.timestamp > self._deadline(dispute_id, phase), "arbitration: clock not expired"
    # the side to move loses
    self._finish(dispute_id, self.disputes[dispute_id].task_id, not self._solver_to_move(phase), END_TIMEOUT)


# ╔═══════════════════════════════════════════════════════════════╗
# ║ VIEWS                                                         ║
# ╚═══════════════════════════════════════════════════════════════╝

@external
@view
def context(dispute_id: uint256, caller: address, phase: uint256) -> structs.Context:
    """
    @notice For the checkers: reverts unless it is `caller`'s turn to make
            a `phase` move (same checks and order as every move), then returns
            the claims a proof answers.
    """
    self._begin(dispute_id, phase, caller, phase == PHASE_DEMAND)
    d: Dispute = self.disputes[dispute_id]
    return structs.Context(
        task_id=d.task_id,
        spec_hash=d.spec_hash,
        step=d.first_step,
        state_before=d.state_before,
        state_after=d.state_after,
        trace_root=d.trace_root,
        demand_node=d.demand_node,
        demand_start=d.demand_start,
        demand_count=d.demand_count,
        demand_numel=d.demand_numel,
        demand_itemsize=d.demand_itemsize,
        n_nodes=d.n_nodes,
        mail_root=d.mail_root,
    )


@external
@view
def reduction_context(dispute_id: uint256, caller: address, phase: uint256) -> structs.ReductionContext:
    """
    @notice For the ProgramReductionChecker: reverts unless it is the challenger
            `caller`'s turn to make a `phase` move, then returns the dissection.
    """
    self._begin(dispute_id, phase, caller, False)
    r: Reduction = self.reductions[dispute_id]
    return structs.ReductionContext(
        spec_hash=self.disputes[dispute_id].spec_hash,
        trace_root=self.disputes[dispute_id].trace_root,
        node=r.node,
        index=r.index,
        op=r.op,
        n=r.n,
        claimed=r.claimed,
        first=r.first,
        chunks=r.chunks,
        points=r.points,
        partials_root=r.partials_root,
        whole=not r.picked,
        total=r.total,
    )


@external
@view
def deadline(dispute_id: uint256) -> uint256:
    """
    @notice Last second at which the side to move may still move (0 once over).
    """
    return self._deadline(dispute_id, self.disputes[dispute_id].phase)


@external
@view
def to_move(dispute_id: uint256) -> address:
    """
    @notice The party whose turn it is (zero once the game is over).
    """
    phase: uint256 = self.disputes[dispute_id].phase
    if phase == PHASE_NONE or self._over(phase):
        return empty(address)
    if self._solver_to_move(phase):
        return self.disputes[dispute_id].solver
    return self.disputes[dispute_id].challenger


@external
@view
def demand_fee(count: uint256) -> uint256:
    """
    @notice Wei a demand of `count` elements costs at this block's base fee.
    """
    return self._demand_fee(count)


@external
@pure
def max_moves(k: uint256) -> uint256:
    """
    @notice Most moves a game over a segment of k steps can take: the reveal,
            one pick per dissection level and a bisect before every level but
            the first, the trace, MAX_DEMANDS demand/post pairs, the dissection
            inside a reduction (opening, two posts, one pick) and a final proof.
    """
    return self._max_moves(k)


@external
@view
def max_duration(k: uint256) -> uint256:
    """
    @notice Seconds after `open_dispute` by which every game over a segment of
            k steps has ended or can be ended by `timeout`: each side spends at
            most its clock plus one extension per move of its opponent, and
            `timeout` is allowed one second after the last deadline.
    """
    return 2 * clock + self._max_moves(k) * extension + 1


# ╔═══════════════════════════════════════════════════════════════╗
# ║ INTERNAL                                                      ║
# ╚═══════════════════════════════════════════════════════════════╝

@internal
@pure
def _solver_to_move(phase: uint256) -> bool:
    return phase == PHASE_REVEAL or phase == PHASE_BISECT or phase == PHASE_TRACE or phase == PHASE_DEMAND or phase == PHASE_PARTIALS


@internal
@pure
def _over(phase: uint256) -> bool:
    return phase == PHASE_SOLVER_WON or phase == PHASE_CHALLENGER_WON


@internal
@view
def _deadline(dispute_id: uint256, phase: uint256) -> uint256:
    if phase == PHASE_NONE or self._over(phase):
        return 0
    if self._solver_to_move(phase):
        return self.disputes[dispute_id].turn_start + self.disputes[dispute_id].solver_clock
    return self.disputes[dispute_id].turn_start + self.disputes[dispute_id].challenger_clock


@internal
@view
def _demand_fee(count: uint256) -> uint256:
    return (ANSWER_GAS + count * ANSWER_ELEMENT_GAS) * block.basefee * FEE_MARGIN


@internal
def _refund_demand(dispute_id: uint256):
    """
    @notice A game that ends with a demand unanswered returns its fee to the demander.
    """
    fee: uint256 = self.disputes[dispute_id].demand_fee
    if fee > 0:
        self.disputes[dispute_id].demand_fee = 0
        self.fees_held -= fee
        self.credits[self.disputes[dispute_id].challenger] += fee


@internal
@pure
def _max_moves(k: uint256) -> uint256:
    # picks needed to narrow k steps to one
    span: uint256 = max(k, 1)
    levels: uint256 = 0
    for i: uint256 in range(32):
        levels += 1
        span = (span + MAX_POINTS - 1) // MAX_POINTS
        if span <= 1:
            break
    return 1 + levels + (levels - 1) + 1 + 2 * MAX_DEMANDS + REDUCTION_MOVES + 1


@internal
@view
def _begin(dispute_id: uint256, phase: uint256, caller: address, solver_side: bool) -> Turn:
    """
    @notice The checks of every move, in this order: the game is live, it is
            this move's phase, the caller is the side to move, and that side's
            clock has not run out (a move at the deadline itself is in time).
    """
    current: uint256 = self.disputes[dispute_id].phase
    assert current != PHASE_NONE, "arbitration: no such dispute"
    assert not self._over(current), "arbitration: dispute closed"
    assert current == phase, "arbitration: wrong phase"
    if solver_side:
        assert caller == self.disputes[dispute_id].solver, "arbitration: caller is not the solver"
    else:
        assert caller == self.disputes[dispute_id].challenger, "arbitration: caller is not the challenger"
    t: Turn = Turn(
        phase=current,
        task_id=self.disputes[dispute_id].task_id,
        turn_start=self.disputes[dispute_id].turn_start,
        solver_clock=self.disputes[dispute_id].solver_clock,
        challenger_clock=self.disputes[dispute_id].challenger_clock,
        moves=self.disputes[dispute_id].moves,
    )
    remaining: uint256 = t.challenger_clock
    if solver_side:
        remaining = t.solver_clock
    assert block.timestamp <= t.turn_start + remaining, "arbitration: clock expired"
    return t


@internal
def _pass(dispute_id: uint256, t: Turn, next_phase: uint256):
    """
    @notice Charge the mover the time its turn took, grant the opponent at
            least `extension` seconds, hand over the turn.
    """
    elapsed: uint256 = block.timestamp - t.turn_start
    if self._solver_to_move(t.phase):
        self.disputes[dispute_id].solver_clock = t.solver_clock - elapsed
        self.disputes[dispute_id].challenger_clock = max(t.challenger_clock, extension)
    else:
        self.disputes[dispute_id].challenger_clock = t.challenger_clock - elapsed
        self.disputes[dispute_id].solver_clock = max(t.solver_clock, extension)
    self.disputes[dispute_id].turn_start = block.timestamp
    self.disputes[dispute_id].phase = next_phase
    self.disputes[dispute_id].moves = t.moves + 1


@internal
def _finish(dispute_id: uint256, task_id: uint256, solver_won: bool, reason: uint256):
    """
    @notice The one place a game ends: state first, then one call to the
            market. `proven`: the challenger won through a checked final proof.
    """
    self._refund_demand(dispute_id)
    if solver_won:
        self.disputes[dispute_id].phase = PHASE_SOLVER_WON
    else:
        self.disputes[dispute_id].phase = PHASE_CHALLENGER_WON
    log DisputeEnded(dispute_id=dispute_id, task_id=task_id, solver_won=solver_won, reason=reason)
    extcall IMarket(market).resolve(task_id, dispute_id, solver_won, reason != END_TIMEOUT)
