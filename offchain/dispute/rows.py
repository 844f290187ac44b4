"""The dissection inside a long softmax-family row (docs/judge-programs.md §5): the reference of
``contracts/ProgramRowJudge.vy``.

An element of ``softmax``, ``safe_softmax`` or ``log_softmax`` reads its whole row, and so do the
gradients ``softmax_grad`` and ``log_softmax_grad``; a row longer than the judge's 64 reads is
checked the way a long linear reduction is (docs/arbitration.md §4.4): the solver posts partials
of the row's statistics over chunks of 64 entries, the challenger narrows them to one chunk, which
the chain re-computes exactly, or checks the element against the totals (the fold).

* **Pivoted rows** (the forward ops).  Every entry's exponential is taken against the row's pivot,
  its largest entry (the first at a tie), as the rule over a whole row takes it.  A partial is
  ``(Σ e_lo, Σ e_hi, key)``: the Q64 enclosures of exp(z_k − pivot) over its live entries, and the
  largest entry's pivot key (its order, then the first index), which the game combines by
  maximum; so the totals' key *is* the pivot, and a chunk is checked against it.
* **Linear rows** (the gradients).  The statistic is a plain linear reduction — Σ g_k·y_k, or
  Σ g_k — with ``judge.py``'s exact partials at the reduction's scale; the fold is the gradient's
  window with the sum enclosed by the totals.

The fold of the honest partials accepts exactly what the rule over the whole row accepts for the
pivoted rows, and at least that for the linear ones (their sum interval is a little wider), so an
honest solver can always answer; and a value outside that window always loses.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from . import judge as J
from . import program_rules as R
from . import wide as W

#: a row reduction's code in the game: ROW_BASE + the op's code (offchain/ml/ops.py)
ROW_BASE = 256
PIVOTED = ("softmax", "safe_softmax", "log_softmax")
LINEAR = {"softmax_grad": J.OP_MATMUL, "log_softmax_grad": J.OP_SUM_ROWS}
ROWS = (*PIVOTED, *LINEAR)
CHUNK = R.CHUNK
NO_PIVOT = J.LONG_TOP_FLOOR  # the key of a run without a live entry
KEY_BITS = 32
TOP_CEIL, MAX_ABS = 208, 1 << 231  # honest linear totals (structs.PARTIAL_TOP_CEIL, MAX_PARTIAL_ABS)


def _key(bits: int) -> int:
    """The order of a finite float32 as an integer (+0 and −0 both 0)."""
    magnitude = bits & 0x7FFFFFFF
    return -magnitude if bits >> 31 else magnitude


def pivot_key(bits: int, k: int) -> int:
    """The key of entry ``k`` of value ``bits``: larger for a larger value, then a smaller index."""
    return (_key(bits) + (1 << 31)) << KEY_BITS | ((1 << KEY_BITS) - 1 - k)


def pivot_of(key: int, n: int) -> tuple[int, int] | None:
    """(bits, index) of the entry a pivot key names in a row of n, or None if it names none."""
    if not 0 <= key < 1 << 2 * KEY_BITS or n > R.MAX_SOFTMAX_ROW:
        return None
    order, k = (key >> KEY_BITS) - (1 << 31), (1 << KEY_BITS) - 1 - (key & ((1 << KEY_BITS) - 1))
    if k >= n or abs(order) > 0x7F7FFFFF:
        return None
    return (order if order >= 0 else 1 << 31 | -order), k


def _chunks(n: int) -> range:
    return range(0, n, CHUNK)


def chunk_reads(node, index: int, t0: int) -> list[tuple[int, list[int]]]:
    """(input position, flat indices) of the entries t0, t0 + 1, ... (at most CHUNK) of element
    ``index``'s row, in each input the chunk proof opens: the row (pivoted), g (log_softmax_grad),
    g and y (softmax_grad)."""
    row = R._along(node.shape, index, node.attrs[0])
    if t0 % CHUNK or not 0 <= t0 < len(row):
        raise R.RuleError("rule: no such chunk")
    part = row[t0:t0 + CHUNK]
    return [(p, part) for p in range(2 if node.op == "softmax_grad" else 1)]


class PivotedRow(NamedTuple):
    """Entry ``j`` of a softmax / safe_softmax / log_softmax row (bits, −inf where masked)."""

    op: str
    row: tuple[int, ...]
    j: int
    claimed: int

    @property
    def n(self) -> int:
        return len(self.row)

    def _pivot(self) -> int:
        live = [k for k, b in enumerate(self.row) if not R._is_neg_inf(b)]
        return max(pivot_key(self.row[k], k) for k in live) if live else NO_PIVOT

    def chunk_partial(self, t0: int, top: int) -> J.Partial | None:
        """The exact partial of the chunk from entry ``t0`` against the pivot ``top`` names (None
        if it names no entry)."""
        if top == NO_PIVOT:
            pivot = None
        elif (pivot := pivot_of(top, self.n)) is None:
            return None
        s_lo = s_hi = 0
        key = NO_PIVOT
        for k in range(t0, min(t0 + CHUNK, self.n)):
            bits = self.row[k]
            if R._is_neg_inf(bits):
                continue
            if pivot is None:  # a live entry, but the totals say there is none
                return None
            lo, hi = (R.ONE, R.ONE) if k == pivot[1] else R.exp_term(pivot[0], bits)
            s_lo, s_hi, key = s_lo + lo, s_hi + hi, max(key, pivot_key(bits, k))
        return J.Partial(s_lo, s_hi, key)

    def partials(self, top: int | None = None) -> list[J.Partial | None]:
        """Every chunk's partial, against the row's own pivot or the one a posted ``top`` names."""
        top = self._pivot() if top is None else top
        return [self.chunk_partial(t0, top) for t0 in _chunks(self.n)]

    def holds(self, total: J.Partial) -> bool:
        """The fold: the claim against the row's totals."""
        op, claimed = self.op, self.claimed
        if total.top == NO_PIVOT:  # no live entry: safe_softmax gives 0, softmax NaN
            return op == "safe_softmax" and R.ZERO.accepts(claimed)
        pivot = pivot_of(total.top, self.n)
        z = self.row[self.j]
        if pivot is None or not R.ONE <= total.x <= total.abs <= self.n * R.ONE:
            return False  # no honest totals look like these
        if R._is_neg_inf(z):
            masked = R.softmax_masked(op, claimed)
            return masked.accepts(claimed) if isinstance(masked, R.Window) else masked
        at_pivot = self.j == pivot[1]
        e = (R.ONE, R.ONE) if at_pivot else R.exp_term(pivot[0], z)
        return R.softmax_window(op, self.n, pivot[0], z, at_pivot, e, (total.x, total.abs)).accepts(claimed)


class LinearRow(NamedTuple):
    """Entry ``j`` of a softmax_grad (``y`` the output row) or log_softmax_grad (``y`` the one
    output entry y_j) row of gradients ``g``."""

    op: str
    g: tuple[int, ...]
    y: tuple[int, ...]
    j: int
    claimed: int

    @property
    def n(self) -> int:
        return len(self.g)

    def partials(self, top: int | None = None) -> list[J.Partial | None]:
        """The chunk partials of the row's sum (`judge.LinearCall.partials`)."""
        kind = LINEAR[self.op]
        return J.LinearCall(kind, self.g, self.y if kind == J.OP_MATMUL else (), self.claimed).partials(top)

    def holds(self, total: J.Partial) -> bool:
        """The fold: the sum lies in [x − n, x + n]·2^G (every truncated term lost less than one
        unit), its magnitudes below abs·2^G."""
        g, claimed = self.g[self.j], self.claimed
        y = self.y[self.j] if self.op == "softmax_grad" else self.y[0]
        if self.op == "log_softmax_grad" and R._is_neg_inf(y):  # exp(−inf) = 0: exactly g_j
            return J.is_finite(claimed) and R._same(claimed, g)
        if not (NO_PIVOT <= total.top <= TOP_CEIL and abs(total.x) <= total.abs <= MAX_ABS):
            return False  # no honest totals look like these
        scale = J.reduction_scale(total.top, claimed)
        sum_ = (W._round(total.x - self.n, scale, False), W._round(total.x + self.n, scale, True))
        return R.softmax_grad_window(self.op, self.n, g, y, sum_, W._round(total.abs, scale, True)).accepts(claimed)


def row_of(node, input_values: Sequence[Sequence[int]], index: int, claimed: int) -> PivotedRow | LinearRow:
    """The dissected row of element ``index`` of a softmax-family node, from the values of its
    uncapped reads (program_rules.element_inputs)."""
    j = R._along(node.shape, index, node.attrs[0]).index(index)
    if len(input_values[0]) > R.MAX_SOFTMAX_ROW:
        raise R.RuleError("rule: softmax row too long")
    if node.op in PIVOTED:
        return PivotedRow(node.op, tuple(input_values[0]), j, claimed)
    if node.op not in LINEAR:
        raise R.RuleError("rule: not a dissectable row")
    return LinearRow(node.op, tuple(input_values[0]), tuple(input_values[1]), j, claimed)


__all__ = ["CHUNK", "LINEAR", "NO_PIVOT", "PIVOTED", "ROWS", "ROW_BASE", "LinearRow", "PivotedRow", "chunk_reads",
           "pivot_key", "pivot_of", "row_of"]
