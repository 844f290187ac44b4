"""The loop every worker shares: follow the chain's events, advance each task it tracks, and run the
keeper (`keeper.py`), which enforces every deadline that passed on any task or dispute.

Workers are idempotent: `advance` reads the task's state on chain and acts only
when its move is still due, so a restart (or a replayed event) never sends a
move twice. Moves are made only while `margin` seconds remain before the
deadline, so a slow RPC does not turn into a missed window.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from web3.exceptions import BlockNotFound

from offchain.chain.client import ChainError, Market, TaskView, TransactionReverted, with_retries
from offchain.chain.suite import TERMINAL_STATES, format_ether
from offchain.log import get_logger
from offchain.ml import MLError
from offchain.storage import ContentStore, StorageError
from offchain.workers.artifacts import ArtifactMismatch
from offchain.workers.keeper import INTERVAL, Keeper
from offchain.workers.state import WorkerState, chain_folder

REORG_DEPTH = 64  # blocks re-read after a reorganisation is seen


class Worker:
    role = "worker"
    #: market events that make a task interesting to this role
    watches: tuple[str, ...] = ()

    def __init__(self, *, market: Market, store: ContentStore, home: Path, poll_interval: float = 1.0,
                 margin: int = 5, keeper_interval: float | None = INTERVAL):
        self.market, self.store = market, store
        self.home = home
        self.address = market.account.address if market.account else ""
        anchor = with_retries("deployment block", lambda: market.w3.eth.get_block(market.deployment.block)["hash"])
        chain_id = with_retries("chain id", lambda: market.w3.eth.chain_id)
        self.folder = chain_folder(home, chain_id, market.deployment.market, bytes(anchor),
                                   get_logger(f"dtm.{self.role}").warning)
        self.state = WorkerState(self.folder / f"{self.role}-{self.address.lower()}.sqlite")
        self.poll_interval, self.margin = poll_interval, margin
        self.log = get_logger(f"dtm.{self.role}")
        self.stopping = threading.Event()
        # None: this worker leaves deadlines to others
        self.keeper = Keeper(market, interval=keeper_interval, name=f"{self.role}.keeper") \
            if keeper_interval is not None and market.account else None

    # ── loop ────────────────────────────────────────────────────────
    def run(self, *, until: Any = None) -> None:
        self.log.info("%s %s watching market %s", self.role, self.address, self.market.deployment.market)
        steps = [self.poll_once, *([self.keeper.tick] if self.keeper else [])]
        while not self.stopping.is_set() and not (until and until()):
            for step in steps:
                try:
                    step()
                except ChainError as exc:
                    self.log.warning("chain: %s", exc)
                except Exception:  # a daemon outlives one bad round; the traceback says what to fix
                    self.log.exception("unexpected error; retrying next round")
            self.stopping.wait(self.poll_interval)

    def poll_once(self) -> None:
        start = self._first_unread_block()
        head = self.market.block_number()
        if head >= start:
            for name in self.watches:
                for event in self.market.events(name, start, head, **self.event_filter(name)):
                    self.on_event(name, event["args"])
            self.state.put("next_block", head + 1)
            self.state.put("read_hash", self._block_hash(head))
        for task_id, record in sorted(self.state.tasks().items()):
            if not record.get("done"):
                self._advance_safely(task_id)

    def _first_unread_block(self) -> int:
        """The block after the last one read, or, where a reorganisation replaced that block,
        `REORG_DEPTH` blocks earlier: events are re-read from before the fork (handling an event
        twice is harmless, missing one is not)."""
        first = self.market.deployment.block
        start = self.state.get("next_block", first)
        seen = self.state.get("read_hash")
        if seen is not None and start > first and self._block_hash(start - 1) != seen:
            start = max(first, start - 1 - REORG_DEPTH)
            self.log.warning("chain reorganisation below block %d: re-reading events from block %d",
                             self.state.get("next_block"), start)
        return start

    def _block_hash(self, number: int) -> str | None:
        try:
            block = with_retries("block", lambda: self.market.w3.eth.get_block(number))
        except BlockNotFound:  # the chain is shorter now
            return None
        return bytes(block["hash"]).hex()

    def _advance_safely(self, task_id: int) -> None:
        task = self.market.task(task_id)
        try:
            self.advance(task)
        except TransactionReverted as exc:
            # a lost race or a closed window: the chain has moved on, look again next round
            self.log.warning("task %d: %s", task_id, exc)
        except (StorageError, MLError, ArtifactMismatch) as exc:
            # content missing, late or malformed: never fatal to the worker; retried next round
            self.log.error("task %d: %s: %s", task_id, type(exc).__name__, exc)
        if task.state in TERMINAL_STATES and not self.state.task(task_id).get("done"):
            self.finish(task)

    # ── hooks for roles ─────────────────────────────────────────────
    def event_filter(self, name: str) -> dict[str, Any]:
        return {}

    def on_event(self, name: str, args: Any) -> None:
        self.track(args["task_id"])

    def track(self, task_id: int, **data: Any) -> None:
        if self.state.task(task_id) is None or data:
            self.state.update_task(task_id, **data)

    def advance(self, task: TaskView) -> None:
        raise NotImplementedError

    def finish(self, task: TaskView) -> None:
        self.state.update_task(task.task_id, done=True)
        self.log.info("task %d: %s", task.task_id, task.state.name.lower())
        if self.address:
            bonded, locked, unbonding, _, _ = self.market.call("accounts", self.address)
            self.log.info("stake %s bonded (%s locked, %s unbonding); %s of credits withdrawn so far",
                          format_ether(bonded), format_ether(locked), format_ether(unbonding),
                          format_ether(self.state.get("withdrawn", 0)))

    # ── helpers ─────────────────────────────────────────────────────
    def time_left(self, deadline: int) -> int:
        return deadline - self.market.now()

    def in_time(self, deadline: int) -> bool:
        return self.time_left(deadline) > self.margin

    def latest_event(self, name: str, task_id: int) -> Any | None:
        events = self.market.events(name, self.market.deployment.block, task_id=task_id)
        return events[-1]["args"] if events else None

    def collect_credits(self) -> None:
        """Withdraw what the market owes this account (payments, rewards, refunds), keeping a
        running total."""
        credits = self.market.call("credits", self.address)
        if credits > 0:
            self.market.transact("withdraw", self.address)
            self.state.put("withdrawn", self.state.get("withdrawn", 0) + credits)
            self.log.info("withdrew %s of credits", format_ether(credits))

