"""Directed-rounding binary floats with 120-bit mantissas: the arithmetic of the non-linear program
rules (normalisation, the softmax gradients, the pointwise calculus ops), step for step as
``contracts/judge/wide.vy`` computes it.

A value is ``(m, e)``, the rational m·2^e with |m| ≤ 2^120.  Every operation takes the direction
``up``: the result is the exact one rounded toward +∞ (``up``) or −∞, so a lower end computed with
``up=False`` and an upper end with ``up=True`` enclose the exact result (relative width ≤ 2^-119 per
operation).  Sums of two values whose exponents are far apart are formed at 254 bits, so the sign
of ``sub(a, b)`` — and :func:`cmp` — are exact.  An interval is ``(lo, hi)``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from . import judge as J

P = 120                      # mantissa bits kept
TOP = 254                    # bits of an aligned sum (int256)
Wide = tuple[int, int]
ZERO: Wide = (0, 0)
ONE: Wide = (1, 0)
ETA: Wide = (1, -126)


def _round(m: int, e: int, up: bool) -> Wide:
    """m·2^e with the mantissa cut to P bits, rounded toward ±∞."""
    k = abs(m).bit_length() - P
    if k <= 0:
        return m, e
    q = m >> k
    if up and q << k != m:
        q += 1
    return q, e + k


def num(n: int) -> Wide:
    return _round(n, 0, True)


def f32(bits: int) -> Wide:
    """A finite float32 exactly (raises on ±Inf / NaN)."""
    neg, mant, exp = J.decode(bits)
    return (-mant if neg else mant), exp


def q64(q: int, up: bool) -> Wide:
    return _round(q, -64, up)


def neg(a: Wide) -> Wide:
    return -a[0], a[1]


def absolute(a: Wide) -> Wide:
    return abs(a[0]), a[1]


def add(a: Wide, b: Wide, up: bool) -> Wide:
    if a[0] == 0:
        return b
    if b[0] == 0:
        return a
    if a[1] < b[1]:
        a, b = b, a
    # a has the larger exponent: shift it up by at most TOP - P, b down to that scale if needed
    e = max(b[1], a[1] - (TOP - P))
    mb = b[0]
    if b[1] < e:
        k = e - b[1]
        q = mb >> k
        if up and q << k != mb:
            q += 1
        mb = q
    return _round((a[0] << (a[1] - e)) + mb, e, up)


def sub(a: Wide, b: Wide, up: bool) -> Wide:
    return add(a, neg(b), up)


def mul(a: Wide, b: Wide, up: bool) -> Wide:
    return _round(a[0] * b[0], a[1] + b[1], up)


def div(a: Wide, b: Wide, up: bool) -> Wide:
    """a / b, b ≠ 0."""
    if a[0] == 0:
        return ZERO
    k = TOP - abs(a[0]).bit_length()
    n, d = a[0] << k, b[0]
    if d < 0:
        n, d = -n, -d
    q = n // d
    if up and q * d != n:
        q += 1
    return _round(q, a[1] - k - b[1], up)


def cmp(a: Wide, b: Wide) -> int:
    """The sign of a − b (exact)."""
    m = sub(a, b, False)[0]
    return (m > 0) - (m < 0)


def sqrt_up(t: Wide) -> Wide:
    """An upper bound of √t, t ≥ 0."""
    m, e = t
    if m == 0:
        return ZERO
    k = TOP - m.bit_length()
    if (e - k) % 2:
        k -= 1
    return _round(math.isqrt(m << k) + 1, (e - k) // 2, True)


def rsqrt(t: Wide, up: bool) -> Wide:
    """A bound of t^(−1/2) from below (above with ``up``), t > 0."""
    m, e = t
    k = P + 1 - m.bit_length()                 # m·2^k has P + 1 bits
    m, e = m << k, e - k
    n = TOP if e % 2 == 0 else TOP - 1         # n + e even
    if up:
        r = math.isqrt(-(-(1 << n) // m)) + 1
    else:
        r = math.isqrt((1 << n) // m)
    return _round(r, -(n + e) // 2, up)


def gamma(n: int) -> Wide:
    """γ_n = nu/(1 − nu), rounded up."""
    return div(num(n), num((1 << 24) - n), True)


def fraction(a: Wide) -> Fraction:
    return Fraction(a[0]) * Fraction(2) ** a[1]


WINDOW = 175                 # sums: mantissas ≤ 72 bits, ≤ 128 terms, kept 175 bits below the largest


def total(terms) -> tuple[tuple[Wide, Wide], Wide]:
    """The interval of Σt and an upper bound of Σ|t|: the terms (mantissas of at most 72 bits)
    summed exactly at the scale 2^S, S = the largest exponent − 175; a term below it is floored
    and counted as one unit of slack."""
    live = [t for t in terms if t[0] != 0]
    if not live:
        return (ZERO, ZERO), ZERO
    scale = max(e for _, e in live) - WINDOW
    lo = slack = mag = 0
    for m, e in live:
        if e >= scale:
            v = m << (e - scale)
            lo += v
            mag += abs(v)
        else:
            k = scale - e
            lo += m >> k
            slack += 1
            mag += (abs(m) >> k) + 1
    return (_round(lo, scale, False), _round(lo + slack, scale, True)), _round(mag, scale, True)


# ---- intervals


def point(a: Wide) -> tuple[Wide, Wide]:
    return a, a


def iadd(a, b):
    return add(a[0], b[0], False), add(a[1], b[1], True)


def isub(a, b):
    return sub(a[0], b[1], False), sub(a[1], b[0], True)


def scale(p: Wide, a):
    """The interval a times the value p."""
    if p[0] < 0:
        return mul(p, a[1], False), mul(p, a[0], True)
    return mul(p, a[0], False), mul(p, a[1], True)


def shrink(a, n: Wide):
    """The interval a divided by a positive value n."""
    return div(a[0], n, False), div(a[1], n, True)


def imul(a, b):
    """The product interval (the four corners, each rounded outwards)."""
    return hull(scale(a[0], b), scale(a[1], b))


def larger(a: Wide, b: Wide) -> Wide:
    return a if cmp(a, b) >= 0 else b


def smaller(a: Wide, b: Wide) -> Wide:
    return a if cmp(a, b) <= 0 else b


def hull(a, b):
    return smaller(a[0], b[0]), larger(a[1], b[1])


def magnitude(a) -> Wide:
    """max |x| over the interval."""
    return larger(absolute(a[0]), absolute(a[1]))


def add_up(first: Wide, *rest: Wide) -> Wide:
    """((a + b) + c)… rounded up at each step, left to right."""
    for x in rest:
        first = add(first, x, True)
    return first


def mul_up(first: Wide, *rest: Wide) -> Wide:
    """((a·b)·c)… rounded up at each step, left to right."""
    for x in rest:
        first = mul(first, x, True)
    return first


def accepts(lo: Wide | None, hi: Wide | None, tol: Wide, claimed: int) -> bool:
    """c finite and lo − tol − u|c| ≤ c ≤ hi + tol + u|c| with the edges lo − tol (down) and
    hi + tol (up) rounded outwards, then compared exactly (c ± u|c| is exact: m(2^24 ± 1)·2^(e−24))."""
    if not J.is_finite(claimed):
        return False
    neg_, mant, exp = J.decode(claimed)
    s = -1 if neg_ else 1
    big, small = (s * mant * ((1 << 24) + 1), exp - 24), (s * mant * ((1 << 24) - 1), exp - 24)
    high, low = (small, big) if neg_ else (big, small)   # c + u|c|, c − u|c|
    if lo is not None and cmp(high, sub(lo, tol, False)) < 0:
        return False
    return hi is None or cmp(low, add(hi, tol, True)) <= 0
