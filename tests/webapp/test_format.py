"""The web app's durations (webapp/src/format.ts): the largest unit and the next one down, whatever their values."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from offchain.chain.suite import ROOT

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def seconds_of(shown: str) -> int:
    """A duration as the web app writes it ("1h 0m", "59m 58s") back in seconds."""
    assert re.fullmatch(r"\d+[dhms]( \d+[dhms])?", shown), shown
    return sum(int(part[:-1]) * UNITS[part[-1]] for part in shown.split())


def durations(seconds: list[int]) -> list[str]:
    done = subprocess.run(["node", str(Path(__file__).parent / "durations.mjs")], input=json.dumps(seconds),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_duration_names_its_largest_unit_and_the_next_one_down_even_when_that_is_zero():
    given = [0, 59, 60, 61, 3599, 3600, 3601, 3660, 86399, 86400, 90061, 10 * 86400 + 5]
    shown = durations(given)
    assert shown == ["0s", "59s", "1m 0s", "1m 1s", "59m 59s", "1h 0m", "1h 0m", "1h 1m", "23h 59m", "1d 0h",
                     "1d 1h", "10d 0h"]
    # each is its seconds rounded down to its smaller unit
    assert all(0 <= s - seconds_of(d) < UNITS[d[-1]] for s, d in zip(given, shown))
