"""ProgramRowJudge (the dissected softmax-family rows on chain) against its reference
``offchain/dispute/rows.py`` under differential fuzzing: rows of 65 to 300 entries with masked
entries, ties for the largest, signed zeros, subnormals and wide ranges; every chunk's honest
partial is accepted and the partial one unit off in any field is not; the fold agrees with the
reference on the honest value and on claims moved by 1 to 2^22 ulps, for honest and for skewed
totals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from judge_testing import chain
from offchain.dispute import judge as J
from offchain.dispute import rows
from offchain.ml.ops import OPS

NEG_INF = 0xFF800000
DELTAS = (0, 1, -1, 3, -3, 64, -64, 1 << 12, -(1 << 12), 1 << 22)


@pytest.fixture(scope="module")
def row_judge():
    return chain().deploy("ProgramRowJudge")


def _bits(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.contiguous().numpy().reshape(-1).view(np.uint32)]


def _row(rng: np.random.Generator, n: int, kind: int) -> torch.Tensor:
    """A row of one of five shapes: normal, wide range, ties for the largest, tiny values with
    signed zeros, and a causal-mask-like tail of -inf."""
    z = rng.standard_normal(n) * (30 if kind == 1 else 3)
    if kind == 2:
        z[rng.choice(n, 4, replace=False)] = z.max() + 1
    if kind == 3:
        z = rng.standard_normal(n) * 1e-39
        z[:3] = [0.0, -0.0, 1e-45]
    t = torch.tensor(z, dtype=torch.float32)
    if kind == 4:
        t[rng.integers(1, n):] = float("-inf")
    return t


def _pivoted(op: str, z: torch.Tensor) -> torch.Tensor:
    if op == "log_softmax":
        return torch.log_softmax(z, 0)
    return torch.ops.aten._safe_softmax(z, 0) if op == "safe_softmax" else torch.softmax(z, 0)


#: every row shape, each op on two of them
CASES = [("softmax", 65, 0), ("softmax", 128, 1), ("safe_softmax", 130, 2), ("safe_softmax", 300, 4),
         ("log_softmax", 200, 3), ("log_softmax", 300, 4)]


@pytest.mark.parametrize("op, n, kind", CASES, ids=[f"{o}-{n}-{k}" for o, n, k in CASES])
def test_row_judge__pivoted_chunks_and_folds_match_the_reference(row_judge, op, n, kind):
    rng = np.random.default_rng(n * 7 + kind)
    z = _row(rng, n, kind)
    if op == "softmax" and kind == 4:
        z[0] = 0.0  # softmax needs a live entry; safe_softmax / log_softmax keep the masked tail
    zb, yb = _bits(z), _bits(_pivoted(op, z))
    code, contract = OPS[op].code, row_judge
    j = int(rng.integers(0, n))
    row = rows.PivotedRow(op, tuple(zb), j, yb[j])
    honest = row.partials()
    whole = sum(honest[1:], honest[0])
    for c, p in enumerate(honest):
        t0 = c * rows.CHUNK
        chunk = zb[t0:t0 + rows.CHUNK]
        assert contract.check_chunk(chunk, t0, n, whole.top, p.x, p.abs, p.top)
        for x, a, top in ((p.x + 1, p.abs, p.top), (p.x, p.abs + 1, p.top), (p.x, p.abs, p.top + 1)):
            assert not contract.check_chunk(chunk, t0, n, whole.top, x, a, top)
    skewed = J.Partial(whole.x + (1 << 40), whole.abs + (1 << 40), whole.top)  # S off by 2^-24 of a unit
    verdicts = set()
    for totals in (whole, skewed):
        for delta in DELTAS:
            claimed = (yb[j] + delta) & 0xFFFFFFFF
            expected = row._replace(claimed=claimed).holds(totals)
            assert contract.check_pivoted(code, n, j, zb[j], totals.x, totals.abs, totals.top, claimed) == expected
            verdicts.add(expected)
    assert verdicts == {True, False} or z[j] == float("-inf")


GRADS = [("softmax_grad", 65, 0), ("softmax_grad", 300, 4), ("log_softmax_grad", 128, 1), ("log_softmax_grad", 200, 2)]


@pytest.mark.parametrize("op, n, kind", GRADS, ids=[f"{o}-{n}-{k}" for o, n, k in GRADS])
def test_row_judge__gradient_folds_match_the_reference(row_judge, op, n, kind):
    rng = np.random.default_rng(n * 11 + kind)
    z = _row(rng, n, kind)
    z[0] = 0.0
    g = torch.tensor(rng.standard_normal(n), dtype=torch.float32)
    if op == "softmax_grad":
        y = torch.softmax(z, 0)
        out = torch.ops.aten._softmax_backward_data(g, y, 0, torch.float32)
    else:
        y = torch.log_softmax(z, 0)
        out = torch.ops.aten._log_softmax_backward_data(g, y, 0, torch.float32)
    gb, yb, ob = _bits(g), _bits(y), _bits(out)
    code, contract = OPS[op].code, row_judge
    verdicts = set()
    for j in rng.choice(n, 3, replace=False):
        j = int(j)
        row = rows.LinearRow(op, tuple(gb), tuple(yb) if op == "softmax_grad" else (yb[j],), j, ob[j])
        assert J.folds(row)
        honest = row.partials()
        whole = sum(honest[1:], honest[0])
        for totals in (whole, J.Partial(whole.x + 5 * n, whole.abs + 5 * n, whole.top),
                       J.Partial(whole.x, whole.abs, 209)):  # a top no honest total has
            for delta in DELTAS:
                claimed = (ob[j] + delta) & 0xFFFFFFFF
                expected = row._replace(claimed=claimed).holds(totals)
                assert contract.check_linear(code, n, gb[j], yb[j], totals.x, totals.abs, totals.top,
                                             claimed) == expected
                verdicts.add(expected)
    assert verdicts == {True, False}
