"""Reference model of the on-chain dispute game (`contracts/Arbitration.vy` with its checkers:
`ProgramChecker`, `ProgramLinkChecker`, `ProgramReductionChecker` and `ProofChecker`): phases, turns, chess clocks,
timeouts and the outcome, move by move, with the same checks in the same order and the same revert
reasons.

The model does not verify proofs: a move carries the verdict of its payload (``payload_error``:
None for a valid payload, or the reason the chain gives for an invalid one). Everything else,
i.e. whose turn it is, what each clock reads, whether a move is too late, what a pick narrows to,
when the game ends and who wins, is decided here exactly as on chain, so a test can drive the
contract and the model side by side and compare their states after every step.

Time is integer seconds (``block.timestamp``); a side may move while ``now <= deadline`` and
``timeout`` is allowed once ``now > deadline``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

MAX_POINTS = 256
MAX_DEMAND = 512
MAX_DEMANDS = 64
CHUNK = 64                  # terms of one chunk of a dissected reduction
MAX_PARTIALS = 256          # partials one post commits
REDUCTION_MOVES = 4         # the opening, two posts and one pick of the dissection inside a reduction

NONE, REVEAL, PICK, BISECT, TRACE, PROVE, DEMAND, SOLVER_WON, CHALLENGER_WON, PARTIALS, SUM_PICK = range(11)
PHASE_NAMES = ("none", "reveal", "pick", "bisect", "trace", "prove", "demand", "solver won",
               "challenger won", "partials", "sum pick")
SOLVER_PHASES = frozenset({REVEAL, BISECT, TRACE, DEMAND, PARTIALS})

END_TIMEOUT, END_LINK, END_DATA, END_ELEMENT, END_CHUNK, END_FOLD = 1, 2, 3, 4, 5, 6

# move kind -> (phase it is allowed in, True if the solver makes it)
MOVES: dict[str, tuple[int, bool]] = {
    "reveal": (REVEAL, True),
    "pick": (PICK, False),
    "bisect": (BISECT, True),
    "trace": (TRACE, True),
    "demand": (PROVE, False),
    "post": (DEMAND, True),
    "link": (PROVE, False),
    "data": (PROVE, False),
    "element": (PROVE, False),
    "open": (PROVE, False),
    "partials": (PARTIALS, True),
    "pick_partial": (SUM_PICK, False),
    "chunk": (SUM_PICK, False),
    "fold": (SUM_PICK, False),
}
# a program task's final proofs (ProgramChecker, ProgramLinkChecker) are the same kinds: prove_leaf_link is "link" (or "data"
# for a data leaf), prove_output_link "link", prove_element "element"
FINAL = {"link": END_LINK, "data": END_DATA, "element": END_ELEMENT, "chunk": END_CHUNK, "fold": END_FOLD}


class GameError(Exception):
    """A move the chain rejects; ``reason`` is the contract's revert string."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise GameError(reason)


def levels(k: int) -> int:
    """Picks needed to narrow a segment of ``k`` steps to one step."""
    span, count = max(k, 1), 0
    while True:
        count += 1
        span = -(-span // MAX_POINTS)
        if span <= 1:
            return count


def max_moves(k: int) -> int:
    """Most moves one game over k steps can take (Arbitration.max_moves)."""
    picks = levels(k)
    return 1 + picks + (picks - 1) + 1 + 2 * MAX_DEMANDS + REDUCTION_MOVES + 1


def max_duration(k: int, clock: int, extension: int) -> int:
    """Seconds after opening by which every game has ended or can be timed out (Arbitration.max_duration)."""
    return 2 * clock + max_moves(k) * extension + 1


@dataclass
class Dispute:
    task_id: int
    solver: str
    challenger: str
    segment: int
    phase: int
    opened_at: int
    turn_start: int
    solver_clock: int
    challenger_clock: int
    moves: int = 0
    k: int = 0
    first_step: int = 0
    span: int = 0
    points: int = 0
    demands: int = 0
    reason: int = 0
    pending: tuple[int, int, int] | None = None             # the open demand: (node, start, end)
    answered: list[tuple[int, int, int]] = field(default_factory=list)
    chunks: int = 0                                          # dissected reduction: chunks in the range
    partials: int = 0                                        # partials of the last post
    picked: bool = False                                     # the range is a picked partial

    @property
    def over(self) -> bool:
        return self.phase in (SOLVER_WON, CHALLENGER_WON)

    @property
    def solver_to_move(self) -> bool:
        return self.phase in SOLVER_PHASES

    @property
    def deadline(self) -> int:
        if self.phase == NONE or self.over:
            return 0
        return self.turn_start + (self.solver_clock if self.solver_to_move else self.challenger_clock)

    @property
    def to_move(self) -> str | None:
        if self.phase == NONE or self.over:
            return None
        return self.solver if self.solver_to_move else self.challenger

    @property
    def solver_won(self) -> bool | None:
        return {SOLVER_WON: True, CHALLENGER_WON: False}.get(self.phase)


@dataclass
class Game:
    """All disputes of one game contract."""

    clock: int
    extension: int
    disputes: dict[int, Dispute] = field(default_factory=dict)
    resolutions: list[tuple[int, int, bool]] = field(default_factory=list)  # (task, dispute, solver_won)

    # -- market -------------------------------------------------------------------------------

    def open(self, now: int, task_id: int, solver: str, challenger: str, segment: int) -> int:
        _require(solver != challenger, "arbitration: solver cannot challenge itself")
        dispute_id = len(self.disputes) + 1
        self.disputes[dispute_id] = Dispute(task_id, solver, challenger, segment, REVEAL, now, now,
                                            self.clock, self.clock)
        return dispute_id

    # -- moves --------------------------------------------------------------------------------

    def check(self, now: int, dispute_id: int, kind: str, sender: str) -> Dispute:
        """The checks every move makes, in the contract's order."""
        phase, solver_side = MOVES[kind]
        d = self._get(dispute_id)
        _require(d.phase == phase, "arbitration: wrong phase")
        if solver_side:
            _require(sender == d.solver, "arbitration: caller is not the solver")
        else:
            _require(sender == d.challenger, "arbitration: caller is not the challenger")
        _require(now <= d.deadline, "arbitration: clock expired")
        return d

    def move(self, now: int, dispute_id: int, kind: str, sender: str, *, claim_error: str | None = None,
             payload_error: str | None = None, k: int | None = None, index: int | None = None,
             count: int | None = None, node: int | None = None, start: int | None = None,
             fee_paid: bool = True, n: int | None = None, per: int | None = None) -> Dispute:
        """Apply one move, or raise :class:`GameError` with the chain's revert reason.

        ``claim_error``: the move names the wrong claim (segment, states root, step, trace root);
        ``payload_error``: its proof is invalid or shows no inconsistency. ``k`` (reveal): the
        task's checkpoint interval, ``per`` (reveal of a group task): the segments of one
        participant, whose task the dispute judges from step ``(segment % per) · k``; ``index`` (pick): the interval picked; ``count`` (demand): the
        number of elements demanded (range errors are payload errors), ``node`` / ``start`` its
        range when known (a range overlapping a posted one is refused), ``fee_paid`` whether the
        value sent covers `demand_fee(count)`. ``n`` (open): terms of the opened reduction;
        ``index`` (pick_partial): the partial picked.
        """
        d = self.check(now, dispute_id, kind, sender)
        if claim_error is not None:
            raise GameError(claim_error)
        if kind == "fold":
            _require(not d.picked, "arbitration: the fold is checked on the whole reduction")
        if payload_error is not None:
            raise GameError(payload_error)
        if kind == "reveal":
            assert k is not None
            own = d.segment if per is None else d.segment % per
            d.k, d.first_step, d.span, d.points = k, own * k, k, min(k, MAX_POINTS)
            return self._pass(now, d, PICK)
        if kind == "pick":
            assert index is not None
            _require(index < d.points, "arbitration: no such interval")
            lo, hi = index * d.span // d.points, (index + 1) * d.span // d.points
            d.first_step += lo
            d.span = hi - lo
            return self._pass(now, d, TRACE if d.span == 1 else BISECT)
        if kind == "bisect":
            d.points = min(d.span, MAX_POINTS)
            return self._pass(now, d, PICK)
        if kind == "trace":
            return self._pass(now, d, PROVE)
        if kind == "demand":
            _require(d.demands < MAX_DEMANDS, "arbitration: too many demands")
            _require(count is not None and 0 < count <= MAX_DEMAND, "arbitration: bad element range")
            assert count is not None
            if node is not None and start is not None:
                _require(all(n != node or start >= end or start + count <= begin for n, begin, end in d.answered),
                         "arbitration: elements already posted")
            _require(fee_paid, "arbitration: demand fee too low")
            d.pending = None if node is None or start is None else (node, start, start + count)
            d.demands += 1
            return self._pass(now, d, DEMAND)
        if kind == "post":
            if d.pending is not None:
                d.answered.append(d.pending)
                d.pending = None
            return self._pass(now, d, PROVE)
        if kind == "open":
            assert n is not None
            d.chunks, d.partials, d.picked = -(-n // CHUNK), 0, False
            return self._pass(now, d, PARTIALS)
        if kind == "partials":
            d.partials = min(d.chunks, MAX_PARTIALS)
            return self._pass(now, d, SUM_PICK)
        if kind == "pick_partial":
            assert index is not None
            _require(index < d.partials, "arbitration: no such partial")
            lo, hi = index * d.chunks // d.partials, (index + 1) * d.chunks // d.partials
            _require(hi - lo > 1, "arbitration: one chunk: prove it")
            d.chunks, d.picked = hi - lo, True
            return self._pass(now, d, PARTIALS)

        # a final proof: the recorded challenger wins
        self._finish(d, False, FINAL[kind])
        return d

    def timeout(self, now: int, dispute_id: int) -> Dispute:
        d = self._get(dispute_id)
        _require(now > d.deadline, "arbitration: clock not expired")
        self._finish(d, not d.solver_to_move, END_TIMEOUT)
        return d

    # -- internals ----------------------------------------------------------------------------

    def _get(self, dispute_id: int) -> Dispute:
        d = self.disputes.get(dispute_id)
        _require(d is not None, "arbitration: no such dispute")
        assert d is not None
        _require(not d.over, "arbitration: dispute closed")
        return d

    def _pass(self, now: int, d: Dispute, next_phase: int) -> Dispute:
        elapsed = now - d.turn_start
        if d.solver_to_move:
            d.solver_clock -= elapsed
            d.challenger_clock = max(d.challenger_clock, self.extension)
        else:
            d.challenger_clock -= elapsed
            d.solver_clock = max(d.solver_clock, self.extension)
        d.turn_start = now
        d.phase = next_phase
        d.moves += 1
        return d

    def _finish(self, d: Dispute, solver_won: bool, reason: int) -> None:
        d.phase = SOLVER_WON if solver_won else CHALLENGER_WON
        d.reason = reason
        dispute_id = next(i for i, x in self.disputes.items() if x is d)
        self.resolutions.append((d.task_id, dispute_id, solver_won))

    def snapshot(self, dispute_id: int) -> Dispute:
        return replace(self.disputes[dispute_id])


__all__ = [
    "BISECT",
    "CHALLENGER_WON",
    "DEMAND",
    "END_DATA",
    "END_ELEMENT",
    "END_LINK",
    "END_TIMEOUT",
    "END_CHUNK",
    "END_FOLD",
    "PARTIALS",
    "SUM_PICK",
    "FINAL",
    "MAX_DEMAND",
    "MAX_DEMANDS",
    "MAX_POINTS",
    "MOVES",
    "NONE",
    "PHASE_NAMES",
    "PICK",
    "PROVE",
    "REVEAL",
    "SOLVER_PHASES",
    "SOLVER_WON",
    "TRACE",
    "Dispute",
    "Game",
    "GameError",
    "levels",
    "max_duration",
    "max_moves",
]
