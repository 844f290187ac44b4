"""A worker's durable memory: one SQLite file, so a killed worker resumes where it stopped.

Everything a worker must not forget *before* it sends a transaction (a solver's
secret, a verdict already reached) is written here first; the chain is then the
judge of whether the transaction already happened.

What a worker keeps lives in one folder per chain and market (`chain_folder`): task ids
restart at 1 on every new chain, so nothing may be keyed by task id alone. The folder
remembers the hash of the market's deployment block; a chain reset (a new chain under
the same id, with the market redeployed at the same address) changes it, and the old
folder is set aside, never reused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable


class WorkerState:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS tasks (task_id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def task(self, task_id: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT data FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def update_task(self, task_id: int, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into the task's record atomically and return the result."""
        with self._lock:
            record = {**(self.task(task_id) or {}), **changes}
            self._db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?)", (task_id, json.dumps(record)))
            return record

    def tasks(self) -> dict[int, dict[str, Any]]:
        return {tid: json.loads(data) for tid, data in self._db.execute("SELECT task_id, data FROM tasks")}

    def close(self) -> None:
        self._db.close()


def chain_folder(home: Path, chain_id: int, market: str, anchor: bytes, warn: Callable[[str], None]) -> Path:
    """``home/workers/<chain id>-<market>``; ``anchor`` is the hash of the market's deployment
    block. A folder that knew another anchor belongs to a chain that is gone: it is renamed
    ``…reset-<unix time>`` (one warning) and a fresh one is made."""
    folder = home / "workers" / f"{chain_id}-{market.lower()}"
    mark = folder / "chain-anchor"
    if mark.exists() and mark.read_text().strip() != anchor.hex():
        aside = folder.with_name(f"{folder.name}.reset-{int(time.time())}")
        folder.rename(aside)
        warn(f"chain reset detected: market {market} on chain {chain_id} was deployed in another block "
             f"than this worker saw; its old state is set aside in {aside}")
    folder.mkdir(parents=True, exist_ok=True)
    if not mark.exists():
        mark.write_text(anchor.hex())
    return folder
