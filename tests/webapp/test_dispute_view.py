"""The web app's dispute view says, word for word, what `dtm task status` says of a dispute
(`offchain/dispute/status.py`): every phase, clocks running and run out, intervals of one and of
several steps, a trace committed or not, the node of a demand or a reduction, every ending."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

from offchain.chain.suite import ROOT
from offchain.dispute.game import DEMAND, PARTIALS, SUM_PICK
from offchain.dispute.status import status_of

SOLVER, CHALLENGER = "0x" + "a1" * 20, "0x" + "B2" * 20


def cases() -> list[tuple[int, dict, int, dict]]:
    out = []
    for phase, (span, traced), elapsed, reason in itertools.product(
            range(1, 11), [(0, False), (1, False), (1, True), (256, False)], [0, 250, 10_000], [1, 4, 6]):
        fields = {"segment": 3, "phase": phase, "moves": phase + span % 7, "solver": SOLVER, "challenger": CHALLENGER,
                  "turn_start": 1_000, "solver_clock": 3_600, "challenger_clock": 1_800, "first_step": 40,
                  "span": span, "trace_root": "0x" + ("ab" if traced else "00") * 32, "demand_node": 17}
        extras = {"reductionNode": 9} if phase in (PARTIALS, SUM_PICK) else {}
        if phase in (7, 8):
            extras["endReason"] = reason
        out.append((phase * 100 + span, fields, 1_000 + elapsed, extras))
    return out


def test_the_web_app_and_the_cli_describe_every_dispute_alike():
    given = cases()
    python = [status_of(dispute_id, {**fields, "trace_root": bytes.fromhex(fields["trace_root"][2:])}, now,
                        extras.get("reductionNode"), extras.get("endReason")).lines()
              for dispute_id, fields, now, extras in given]
    stringified = [(i, {k: str(v) for k, v in f.items()}, now, {k: str(v) for k, v in e.items()}) for i, f, now, e in given]
    done = subprocess.run(["node", str(Path(__file__).parent / "dispute_lines.mjs")], input=json.dumps(stringified),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == python
    assert any("node 17" in line for lines in python for line in lines) and any(
        "node 9" in line for lines in python for line in lines)
    assert {lines[0].split(": ")[1].split(",")[0] for lines in python} >= {"reveal", "prove", "sum pick", "ended"}
    assert DEMAND in {f["phase"] for _, f, _, _ in given}
