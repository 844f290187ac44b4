"""Logging for every module: `get_logger(__name__)`, level from `DTM_LOG_LEVEL`; `Progress` for
long work (a bar on a terminal, a line every few seconds in the log)."""

from __future__ import annotations

import logging
import os
import time
from typing import Callable

from tqdm import tqdm

_configured = False


def get_logger(name: str) -> logging.Logger:
    global _configured
    if not _configured:
        logging.basicConfig(
            level=os.environ.get("DTM_LOG_LEVEL", "INFO").upper(),
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
        _configured = True
    return logging.getLogger(name)


# seconds between two progress lines of one piece of long work in the log
PROGRESS_EVERY = 10.0


class Progress:
    """Long work a person follows: a bar on a terminal (tqdm; off when stderr is not a terminal)
    and, in the log, a line every `every` seconds and one at the end: done/total, the rate, the
    time left and, given `seconds_left` (a callable), the time left before the work's deadline."""

    def __init__(self, log: logging.Logger, what: str, total: int, unit: str, *, initial: int = 0,
                 every: float = PROGRESS_EVERY, seconds_left: Callable[[], float] | None = None) -> None:
        self.log, self.what, self.total, self.unit, self.every = log, what, total, unit, every
        self.seconds_left = seconds_left
        self.first = self.done = initial
        self.started = self.reported = time.monotonic()
        self.bar = tqdm(total=total, initial=initial, desc=what, unit=unit, leave=False, disable=None)

    def advance(self, done: int, detail: str = "") -> None:
        """`done` units of `total` are done; `detail` (e.g. "loss 0.41") goes into the log line."""
        self.bar.update(done - self.done)
        self.done = done
        now = time.monotonic()
        if now - self.reported < self.every and done < self.total:
            return
        self.reported = now
        rate = (done - self.first) / max(now - self.started, 1e-9)
        line = f"{self.what}: {done}/{self.total} {self.unit}"
        line += f", {detail}" if detail else ""
        line += f", {rate:.2f} {self.unit}/s"
        if done < self.total:
            line += f", done in ~{(self.total - done) / max(rate, 1e-9):.0f} s"
        if self.seconds_left is not None:
            line += f" (deadline in {self.seconds_left():.0f} s)"
        self.log.info("%s", line)

    def close(self) -> None:
        self.bar.close()
