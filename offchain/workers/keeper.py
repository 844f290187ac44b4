"""The keeper: makes every move anyone may make once a deadline has passed, so no task or dispute
waits on a human.

Each pass reads the chain (never local memory, so a restarted keeper finds the same work):

| item | overdue once | move |
|---|---|---|
| Open task | its expiry passed | `Market.expire` (refund) |
| Claimed task | its training window closed | `Market.expire` (solver slashed) |
| Claimed or Submitted, draw pending | the draw was left `DRAW_GRACE` blocks | `Market.draw` |
| Claimed or Submitted, draw pending | the 256-block draw horizon passed | `Market.expire` (solver slashed) |
| Submitted | the verify window closed | `Market.expire` (silent verifier slashed) |
| Accepted | the whistleblower and reveal windows closed | `Market.expire` (solver slashed) |
| Disputed | the clock of the side to move ran out | `Arbitration.timeout` |

A move is sent once: while its transaction is in flight the item is left alone, and a move that
reverts because someone else made it first is logged in one line. Nothing a keeper meets (a revert,
no gas, a dead RPC) stops the worker that runs it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from web3.exceptions import Web3Exception

from offchain.chain.client import ChainError, Market, TaskView
from offchain.chain.suite import TERMINAL_STATES, TaskState, Terms
from offchain.log import get_logger

# blocks whose hash the EVM serves (Market.DRAW_HORIZON)
DRAW_HORIZON = 256
# a pending draw is the solver's to make in the next block; the keeper makes it after this many
DRAW_GRACE = 16
# seconds between passes when a worker runs the keeper alongside its own moves
INTERVAL = 5.0


@dataclass(frozen=True)
class Move:
    """One overdue item and the move that settles it."""

    function: str  # "expire", "draw" or "timeout"
    target: int  # the task id, or the dispute id for a timeout
    subject: str  # "task 3", "dispute 2 (task 3)"
    deadline: int  # the time or block that passed
    passed: str  # that deadline, named

    @property
    def key(self) -> tuple[str, int]:
        return self.function, self.target


def task_moves(task: TaskView, now: int, block: int, terms: Terms) -> list[Move]:
    """The moves `task` is due for at time `now`, with `block` the latest block's number (the next
    transaction lands in a later one); the contract's own conditions, `Market.expire` and `draw`."""
    subject = f"task {task.task_id}"

    def expire(deadline: int, window: str) -> list[Move]:
        return [Move("expire", task.task_id, subject, deadline, f"{window} closed {now - deadline} s ago")]

    if task.state == TaskState.OPEN:
        return expire(task.expires, "its expiry") if now > task.expires else []
    if task.draw_block and task.state in (TaskState.CLAIMED, TaskState.SUBMITTED):
        horizon = task.draw_block + DRAW_HORIZON
        if block + 1 > horizon:
            return [Move("expire", task.task_id, subject, horizon,
                         f"the draw committed at block {task.draw_block} passed the {DRAW_HORIZON}-block horizon")]
        if task.state == TaskState.CLAIMED and now > task.deadline:
            return expire(task.deadline, "its training window")
        if block >= task.draw_block + DRAW_GRACE:
            return [Move("draw", task.task_id, subject, task.draw_block + DRAW_GRACE,
                         f"the draw committed at block {task.draw_block} was left {block - task.draw_block} blocks")]
        return []
    if task.state == TaskState.CLAIMED and now > task.deadline:
        return expire(task.deadline, "its training window")
    if task.state == TaskState.SUBMITTED and now > task.deadline:
        return expire(task.deadline, "its verify window")
    if task.state == TaskState.ACCEPTED and now > task.deadline + terms.reveal_window:
        return expire(task.deadline + terms.reveal_window, "its reveal window")
    return []


class Keeper:
    """Finds overdue tasks and disputes on chain and sends their moves with `market`'s account."""

    def __init__(self, market: Market, *, interval: float = INTERVAL, name: str = "keeper"):
        self.market, self.interval = market, interval
        self.log = get_logger(f"dtm.{name}")
        self.game = market.arbiter if market.deployment.arbiter_kind == "Arbitration" else None
        self._live: set[int] = set()  # tasks not yet terminal, a cache rebuilt from the chain at start
        self._scanned = 0  # highest task id read so far
        self._terms: dict[int, Terms] = {}
        self._in_flight: dict[tuple[str, int], tuple[bytes, Move]] = {}
        self._failed: set[tuple[Any, ...]] = set()  # failures already logged, per item and deadline
        self._next_pass = 0.0

    # ── running ─────────────────────────────────────────────────────
    def tick(self) -> None:
        """What a worker calls every round: settle sent moves, and run a pass when one is due."""
        self._settle()
        if time.monotonic() >= self._next_pass:
            self._next_pass = time.monotonic() + self.interval
            self.run_pass()

    def run(self, stopping: threading.Event) -> None:
        """A standalone loop until `stopping` is set."""
        self.log.info("keeper %s enforcing deadlines on market %s", self.market.account.address,
                      self.market.deployment.market)
        while not stopping.is_set():
            try:
                self.tick()
            except ChainError as exc:
                self.log.warning("chain: %s", exc)
            except Exception:  # a daemon outlives one bad pass; the traceback says what to fix
                self.log.exception("unexpected error; retrying next pass")
            stopping.wait(min(self.interval, 1.0))

    def run_pass(self) -> list[Move]:
        """Send every move now due that is not already in flight; returns the moves sent."""
        sent = []
        for move in self.overdue():
            if move.key not in self._in_flight and self._send(move):
                sent.append(move)
        return sent

    # ── reading the chain ───────────────────────────────────────────
    def overdue(self) -> list[Move]:
        """Every move due now, read from the chain."""
        count = self.market.call("task_count")
        self._live.update(range(self._scanned + 1, count + 1))
        self._scanned = count
        now, block = self.market.now(), self.market.block_number()
        moves = []
        for task_id in sorted(self._live):
            task = self.market.task(task_id)
            if task.state in TERMINAL_STATES:
                self._live.discard(task_id)
            elif task.state == TaskState.DISPUTED:
                moves += self._dispute_moves(task, now)
            else:
                moves += task_moves(task, now, block, self._terms_of(task.terms_id))
        return moves

    def _dispute_moves(self, task: TaskView, now: int) -> list[Move]:
        if self.game is None:  # a test deployment's manual arbiter has no clocks
            return []
        deadline = self.market.read(self.game, "deadline", task.dispute_id)
        if not deadline or now <= deadline:
            return []
        side = "solver" if self.market.read(self.game, "to_move", task.dispute_id) == task.solver else "challenger"
        return [Move("timeout", task.dispute_id, f"dispute {task.dispute_id} (task {task.task_id})", deadline,
                     f"the {side}'s clock ran out {now - deadline} s ago")]

    def _terms_of(self, terms_id: int) -> Terms:
        if terms_id not in self._terms:
            self._terms[terms_id] = self.market.terms(terms_id)
        return self._terms[terms_id]

    # ── sending ─────────────────────────────────────────────────────
    def _send(self, move: Move) -> bool:
        contract = self.game if move.function == "timeout" else None
        try:
            tx_hash = self.market.send(move.function, move.target, contract=contract)
        except (ChainError, ValueError, Web3Exception) as exc:
            # a lost race (someone moved first), an early clock or no gas: the next pass reads the chain again
            self._report_failure(move, exc)
            return False
        self._in_flight[move.key] = (tx_hash, move)
        self.log.debug("%s: %s: sent %s (%s)", move.subject, move.passed, move.function, tx_hash.hex())
        return True

    def _settle(self) -> None:
        """Log the outcome of every sent move that has been mined."""
        for key, (tx_hash, move) in list(self._in_flight.items()):
            receipt = self.market.receipt(tx_hash)
            if receipt is None:
                continue
            del self._in_flight[key]
            if receipt["status"] == 1:
                self.log.info("%s: %s: %s (block %d)", move.subject, move.passed, _DONE[move.function],
                              receipt["blockNumber"])
            else:
                self.log.info("%s: %s: %s reverted on chain: someone else moved first", move.subject, move.passed,
                              move.function)

    def _report_failure(self, move: Move, exc: Exception) -> None:
        """One line per item and failure, however many passes meet it."""
        key = (*move.key, move.deadline, str(exc))
        if key in self._failed:
            return
        self._failed.add(key)
        self.log.info("%s: %s: %s not sent: %s", move.subject, move.passed, move.function, exc)


_DONE = {"expire": "expired it", "draw": "drew its randomness", "timeout": "ended it by timeout"}
