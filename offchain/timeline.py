"""A task's history, read back from the market's events."""

from __future__ import annotations

from dataclasses import dataclass

from offchain.chain.client import Market

TASK_EVENTS = (
    "TaskCreated", "TaskCancelled", "TaskClaimed", "EntropyDrawn", "ProofSubmitted", "VerifierDrawn",
    "ProofAccepted", "Challenged", "ForcedErrorDeclared", "DisputeResolved", "ForcedErrorRevealed",
    "TaskFinalised", "TaskExpired", "TaskReopened", "TaskRefunded",
)
SHOWN = {
    "TaskCreated": ("submitter", "spec_cid"), "TaskClaimed": ("solver",), "ProofSubmitted": ("proof_cid", "round"),
    "VerifierDrawn": ("verifier",), "ProofAccepted": ("verifier",), "Challenged": ("challenger", "segment"),
    "DisputeResolved": ("solver_won",), "ForcedErrorRevealed": ("exposed_by",),
    "TaskFinalised": ("solver_payment", "verifier_fee"), "TaskExpired": ("culprit",), "TaskRefunded": ("amount",),
}


@dataclass(frozen=True)
class TimelineRow:
    block: int
    log_index: int
    timestamp: int
    event: str
    detail: str


def task_timeline(market: Market, task_id: int) -> list[TimelineRow]:
    rows = []
    stamps: dict[int, int] = {}
    for name in TASK_EVENTS:
        for event in market.events(name, market.deployment.block, task_id=task_id):
            block = event["blockNumber"]
            if block not in stamps:
                stamps[block] = market.w3.eth.get_block(block)["timestamp"]
            detail = " ".join(f"{key}={event['args'][key]}" for key in SHOWN.get(name, ()))
            rows.append(TimelineRow(block, event["logIndex"], stamps[block], name, detail))
    return sorted(rows, key=lambda row: (row.block, row.log_index))


@dataclass(frozen=True)
class JackpotMove:
    block: int
    log_index: int
    paid: bool         # a payout (JackpotPaid), else a tax that funded it (JackpotFunded)
    amount: int
    pool: int          # the pool after it
    winner: str | None


def jackpot_activity(market: Market, limit: int = 10) -> list[JackpotMove]:
    """The jackpot's latest fundings and payouts, newest first."""
    moves = [JackpotMove(e["blockNumber"], e["logIndex"], name == "JackpotPaid", e["args"]["amount"], e["args"]["pool"],
                         e["args"].get("winner"))
             for name in ("JackpotFunded", "JackpotPaid") for e in market.events(name, market.deployment.block)]
    return sorted(moves, key=lambda m: (m.block, m.log_index), reverse=True)[:limit]
