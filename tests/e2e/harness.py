"""A market on a real Anvil with workers running as threads (or processes) of the test."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offchain.chain.client import Market, NonceManager, connect
from offchain.chain.deployment import Deployment
from offchain.chain.suite import ETHER, Role
from offchain.ml import digits_dataset
from offchain.ml.exporter import mlp_preset
from offchain.node import (  # noqa: F401
    DEFAULT_ARBITER,
    Anvil,
    deploy,
    dev_account,
    mine_every,
    start_anvil,
    wait_for,
)
from offchain.storage import LocalStore
from offchain.workers.artifacts import PublishedTask, publish_program_task
from offchain.workers.base import Worker
from offchain.workers.submitter import Submitter
from tests.chains import deployed

WINDOW = 8
CLOCK = 20
SUBMITTER, SOLVER, VERIFIER, WHISTLEBLOWER = 1, 2, 3, 4


@dataclass
class Harness:
    anvil: Anvil
    deployment: Deployment
    home: Path
    store: LocalStore
    workers: list[tuple[Worker, threading.Thread]] = field(default_factory=list)

    def market(self, index: int) -> Market:
        return Market(connect(self.anvil.url), self.deployment, dev_account(index))

    def start(self, worker_type: type[Worker], index: int, role: Role, **options: Any) -> Worker:
        self.market(index).deposit(role, 5 * ETHER)
        worker = worker_type(market=self.market(index), store=self.store, home=self.home, poll_interval=0.3,
                             margin=2, **options)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.workers.append((worker, thread))
        return worker

    def post(self, *, steps: int = 200, k: int = 4, hidden: int = 32, train_window: int = 300,
             expires_in: int = 3_600, solver_stake: int = ETHER, store: LocalStore | None = None) -> int:
        """Publish a digits task to `store` (the shared one by default) and post it."""
        published = self.publish(store or self.store, steps=steps, k=k, hidden=hidden)
        submitter = Submitter(market=self.market(SUBMITTER), store=self.store, home=self.home)
        return submitter.post(published, payment=ETHER, solver_stake=solver_stake, expires_in=expires_in,
                              train_window=train_window)

    @staticmethod
    def publish(store: LocalStore, *, steps: int, k: int, hidden: int) -> PublishedTask:
        """The MLP preset (64-hidden-10, SGD) on the digits, as `dtm task post` makes it."""
        return publish_program_task(store, *_mlp_preset(hidden), digits_dataset(), steps=steps, k=k, seed=3)

    def stop(self) -> None:
        for worker, _ in self.workers:
            worker.stopping.set()
        for _, thread in self.workers:
            thread.join(30)


@contextmanager
def local_market(tmp_path: Path, *, forced_error_ppm: int = 0) -> Iterator[Harness]:
    anvil = start_anvil()
    harness = None
    try:
        deployment = deployed(anvil.url, tmp_path / "deployments", arbiter=DEFAULT_ARBITER, window=WINDOW,
                              clock=CLOCK, forced_error_ppm=forced_error_ppm)
        mine_every(anvil.url, 1)
        w3 = connect(anvil.url)
        # every test market is loaded from one snapshot, so its genesis is the last one's
        NonceManager.forget((w3.eth.chain_id, bytes(w3.eth.get_block(0)["hash"])))
        harness = Harness(anvil, deployment, tmp_path / "home", LocalStore(tmp_path / "home" / "ipfs"))
        yield harness
    finally:
        if harness is not None:
            harness.stop()
        anvil.stop()


@functools.cache
def _mlp_preset(hidden: int):
    return mlp_preset(64, (hidden,), 10, batch_size=32, lr=0.1)
