"""A dispute as a person reads it: the phase, whose move and how long they have, what is argued."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from offchain.dispute.game import (
    BISECT,
    CHALLENGER_WON,
    DEMAND,
    END_CHUNK,
    END_DATA,
    END_ELEMENT,
    END_FOLD,
    END_LINK,
    END_TIMEOUT,
    PARTIALS,
    PHASE_NAMES,
    PICK,
    PROVE,
    REVEAL,
    SOLVER_PHASES,
    SOLVER_WON,
    SUM_PICK,
    TRACE,
)

ENDED = (SOLVER_WON, CHALLENGER_WON)
# what the side to move must do
DUTIES = {
    REVEAL: "reveal the state roots of the disputed segment",
    PICK: "pick the interval of steps it disagrees with",
    BISECT: "reveal the state roots inside the picked interval",
    TRACE: "commit the trace of the picked step",
    PROVE: "prove one link, data row or node element of the step wrong",
    DEMAND: "post the elements the challenger paid to see",
    PARTIALS: "post the partial sums of the argued reduction",
    SUM_PICK: "pick a partial sum, or prove a chunk or the fold wrong",
}
ENDINGS = {END_TIMEOUT: "the other side's clock ran out", END_LINK: "a link proven wrong",
           END_DATA: "a data row proven wrong", END_ELEMENT: "a node element proven wrong",
           END_CHUNK: "a chunk of a reduction proven wrong", END_FOLD: "a reduction's fold proven outside its bound"}


@dataclass(frozen=True)
class DisputeStatus:
    dispute_id: int
    segment: int
    phase: int
    moves: int
    to_move: str | None           # "solver" or "challenger"; None once ended
    mover: str | None             # its address
    clock_left: int               # seconds the side to move has left
    other_clock: int              # seconds the other side has
    first_step: int
    span: int
    trace_committed: bool
    node: int | None              # the node a demand or a reduction is about
    solver_won: bool | None       # once ended
    reason: str = ""

    def lines(self) -> list[str]:
        head = f"dispute {self.dispute_id} over segment {self.segment}, {self.moves} moves"
        if self.solver_won is not None:
            winner = "the solver" if self.solver_won else "the challenger"
            return [f"{head}: ended, {winner} won ({self.reason})"]
        side, other = self.to_move, "challenger" if self.to_move == "solver" else "solver"
        out = [f"{head}: {PHASE_NAMES[self.phase]}, the {side} {self.mover} must {DUTIES[self.phase]}; "
               f"{self.clock_left} s left on its clock "
               f"(the {other} has {self.other_clock} s)"]
        if self.span:
            argued = (f"step {self.first_step}" if self.span == 1
                      else f"steps {self.first_step}..{self.first_step + self.span - 1}")
            out.append(f"argued: {argued}" + (", its trace committed" if self.trace_committed else "")
                       + (f", node {self.node}" if self.node is not None else ""))
        return out


def dispute_status(market: Any, dispute_id: int, now: int) -> DisputeStatus:
    """The dispute's state on chain at time `now` (`market`: a `Market` on an `Arbitration` game)."""
    game = market.arbiter
    d = market.read(game, "disputes", dispute_id)
    node = end_reason = None
    if d["phase"] in (PARTIALS, SUM_PICK):
        node = market.read(game, "reductions", dispute_id)["node"]
    if d["phase"] in ENDED:
        ended = game.events.DisputeEnded().get_logs(from_block=market.deployment.block,
                                                    argument_filters={"dispute_id": dispute_id})
        end_reason = ended[-1]["args"]["reason"] if ended else None
    return status_of(dispute_id, d, now, node, end_reason)


def status_of(dispute_id: int, d: dict[str, Any], now: int, reduction_node: int | None = None,
              end_reason: int | None = None) -> DisputeStatus:
    """`Arbitration.disputes(dispute_id)` as the fields `d`, read at time `now`, with the node its
    reduction argues (PARTIALS, SUM_PICK) and why it ended (`DisputeEnded.reason`), where known."""
    phase = d["phase"]
    solver_won = phase == SOLVER_WON if phase in ENDED else None
    to_move = None if phase in ENDED else "solver" if phase in SOLVER_PHASES else "challenger"
    clocks = {"solver": d["solver_clock"], "challenger": d["challenger_clock"]}
    left = max(clocks[to_move] - max(now - d["turn_start"], 0), 0) if to_move else 0
    other = clocks["challenger" if to_move == "solver" else "solver"] if to_move else 0
    node = d["demand_node"] if phase == DEMAND else reduction_node if phase in (PARTIALS, SUM_PICK) else None
    return DisputeStatus(dispute_id, d["segment"], phase, d["moves"], to_move, d[to_move] if to_move else None,
                         left, other, d["first_step"], d["span"], bytes(d["trace_root"]) != bytes(32), node,
                         solver_won, ENDINGS.get(end_reason, "") if solver_won is not None else "")


__all__ = ["DUTIES", "DisputeStatus", "ENDED", "ENDINGS", "dispute_status", "status_of"]
