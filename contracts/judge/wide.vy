# pragma version 0.4.3
"""
@title wide
@notice Directed-rounding binary floats with 120-bit mantissas and their intervals: the
        arithmetic of the non-linear program rules (docs/judge-programs.md §2).  A value is
        m * 2^e with |m| <= 2^120; every operation rounds its exact result toward +inf (up)
        or -inf (down); sums of values with far-apart exponents are formed at 254 bits, so
        the sign of a difference (_cmp) is exact.
@dev    The Python reference is offchain/dispute/wide.py, step for step.
"""

from . import numeric

P: constant(uint256) = 120
TOP: constant(uint256) = 254
SPREAD: constant(int256) = 134
LIMIT: constant(int256) = 2**120
# sums: the terms' mantissas have at most 72 bits, at most 64 terms, kept 175 bits below the largest
MAX_TERMS: constant(uint256) = 128
WINDOW: constant(int256) = 175


struct Wide:
    m: int256
    e: int256


struct Span:
    lo: Wide
    hi: Wide


@internal
@pure
def _bitlen(x: uint256) -> uint256:
    n: uint256 = 0
    y: uint256 = x
    if y >> 128 != 0:
        y >>= 128
        n = 128
    if y >> 64 != 0:
        y >>= 64
        n += 64
    if y >> 32 != 0:
        y >>= 32
        n += 32
    if y >> 16 != 0:
        y >>= 16
        n += 16
    if y >> 8 != 0:
        y >>= 8
        n += 8
    if y >> 4 != 0:
        y >>= 4
        n += 4
    if y >> 2 != 0:
        y >>= 2
        n += 2
    if y >> 1 != 0:
        y >>= 1
        n += 1
    return n + y


@internal
@pure
def _round(m: int256, e: int256, up: bool) -> Wide:
    """
    @notice m * 2^e with the mantissa cut to P bits, rounded toward +inf (up) or -inf.
    """
    if m < LIMIT and m > -LIMIT:
        return Wide(m=m, e=e)
    n: uint256 = self._bitlen(convert(abs(m), uint256))
    k: uint256 = n - P
    q: int256 = m >> k
    if up and q << k != m:
        q += 1
    return Wide(m=q, e=e + convert(k, int256))


@internal
@pure
def _num(n: int256) -> Wide:
    return self._round(n, 0, True)


@internal
@pure
def _f32(v: int256) -> Wide:
    """
    @notice A finite float32 exactly (reverts on Inf / NaN).
    """
    neg: bool = False
    mant: uint256 = 0
    exp: int256 = 0
    neg, mant, exp = numeric._decode(convert(v, uint32))
    if neg:
        return Wide(m=-convert(mant, int256), e=exp)
    return Wide(m=convert(mant, int256), e=exp)


@internal
@pure
def _q64(q: uint256, up: bool) -> Wide:
    return self._round(convert(q, int256), -64, up)


@internal
@pure
def _abs(a: Wide) -> Wide:
    return Wide(m=abs(a.m), e=a.e)


@internal
@pure
def _add(a: Wide, b: Wide, up: bool) -> Wide:
    if a.m == 0:
        return b
    if b.m == 0:
        return a
    x: Wide = a
    y: Wide = b
    if a.e < b.e:
        x = b
        y = a
    e: int256 = max(y.e, x.e - SPREAD)
    mb: int256 = y.m
    if y.e < e:
        k: uint256 = convert(min(e - y.e, 255), uint256)
        q: int256 = mb >> k
        if up and q << k != mb:
            q += 1
        mb = q
    return self._round((x.m << convert(x.e - e, uint256)) + mb, e, up)


@internal
@pure
def _sub(a: Wide, b: Wide, up: bool) -> Wide:
    return self._add(a, Wide(m=-b.m, e=b.e), up)


@internal
@pure
def _mul(a: Wide, b: Wide, up: bool) -> Wide:
    return self._round(a.m * b.m, a.e + b.e, up)


@internal
@pure
def _div(a: Wide, b: Wide, up: bool) -> Wide:
    """
    @notice a / b, b != 0.
    """
    if a.m == 0:
        return empty(Wide)
    k: uint256 = TOP - self._bitlen(convert(abs(a.m), uint256))
    n: int256 = a.m << k
    d: int256 = b.m
    if d < 0:
        n = -n
        d = -d
    q: int256 = n // d
    if q * d != n:
        if n < 0:
            q -= 1
        if up:
            q += 1
    return self._round(q, a.e - convert(k, int256) - b.e, up)


@internal
@pure
def _cmp(a: Wide, b: Wide) -> int256:
    """
    @notice The sign of a - b (exact).
    """
    m: int256 = self._sub(a, b, False).m
    if m > 0:
        return 1
    if m < 0:
        return -1
    return 0


@internal
@pure
def _sqrt_up(t: Wide) -> Wide:
    """
    @notice An upper bound of sqrt(t), t >= 0.
    """
    if t.m == 0:
        return empty(Wide)
    k: int256 = convert(TOP - self._bitlen(convert(t.m, uint256)), int256)
    if (t.e - k) % 2 != 0:
        k -= 1
    r: uint256 = isqrt(convert(t.m, uint256) << convert(k, uint256)) + 1
    return self._round(convert(r, int256), (t.e - k) // 2, True)


@internal
@pure
def _rsqrt(t: Wide, up: bool) -> Wide:
    """
    @notice A bound of t^(-1/2) from below (above if up), t > 0.
    """
    k: uint256 = P + 1 - self._bitlen(convert(t.m, uint256))
    m: uint256 = convert(t.m, uint256) << k
    e: int256 = t.e - convert(k, int256)
    n: uint256 = TOP
    if e % 2 != 0:
        n = TOP - 1
    r: uint256 = 0
    if up:
        r = isqrt(numeric._ceil_div(1 << n, m)) + 1
    else:
        r = isqrt((1 << n) // m)
    return self._round(convert(r, int256), -(convert(n, int256) + e) // 2, up)


@internal
@pure
def _gamma(n: uint256) -> Wide:
    """
    @notice gamma_n = n u / (1 - n u), rounded up.
    """
    return self._div(self._num(convert(n, int256)), self._num(convert(numeric.U_INV - n, int256)), True)


@internal
@pure
def _add_up(a: Wide, b: Wide) -> Wide:
    return self._add(a, b, True)


@internal
@pure
def _mul_up(a: Wide, b: Wide) -> Wide:
    return self._mul(a, b, True)


@internal
@pure
def _larger(a: Wide, b: Wide) -> Wide:
    if self._cmp(a, b) >= 0:
        return a
    return b


@internal
@pure
def _smaller(a: Wide, b: Wide) -> Wide:
    if self._cmp(a, b) <= 0:
        return a
    return b


@internal
@pure
def _total(terms: DynArray[Wide, MAX_TERMS]) -> (Span, Wide):
    """
    @notice The interval of sum t and an upper bound of sum |t|, the terms (mantissas of at
            most 72 bits) summed exactly at the scale 2^S, S = the largest exponent - 175; a
            term below it is floored and counted as one unit of slack.
    """
    top: int256 = min_value(int256)
    for t: Wide in terms:
        if t.m != 0 and t.e > top:
            top = t.e
    if top == min_value(int256):
        return empty(Span), empty(Wide)
    scale: int256 = top - WINDOW
    lo: int256 = 0
    slack: int256 = 0
    mag: int256 = 0
    for t: Wide in terms:
        if t.m == 0:
            continue
        if t.e >= scale:
            v: int256 = t.m << convert(t.e - scale, uint256)
            lo += v
            mag += abs(v)
        else:
            k: uint256 = convert(min(scale - t.e, 255), uint256)
            lo += t.m >> k
            slack += 1
            mag += (abs(t.m) >> k) + 1
    return Span(lo=self._round(lo, scale, False), hi=self._round(lo + slack, scale, True)), self._round(mag, scale, True)


# intervals


@internal
@pure
def _point(a: Wide) -> Span:
    return Span(lo=a, hi=a)


@internal
@pure
def _iadd(a: Span, b: Span) -> Span:
    return Span(lo=self._add(a.lo, b.lo, False), hi=self._add(a.hi, b.hi, True))


@internal
@pure
def _isub(a: Span, b: Span) -> Span:
    return Span(lo=self._sub(a.lo, b.hi, False), hi=self._sub(a.hi, b.lo, True))


@internal
@pure
def _scale(p: Wide, a: Span) -> Span:
    """
    @notice The interval a times the value p.
    """
    if p.m < 0:
        return Span(lo=self._mul(p, a.hi, False), hi=self._mul(p, a.lo, True))
    return Span(lo=self._mul(p, a.lo, False), hi=self._mul(p, a.hi, True))


@internal
@pure
def _shrink(a: Span, n: Wide) -> Span:
    """
    @notice The interval a divided by a positive value n.
    """
    return Span(lo=self._div(a.lo, n, False), hi=self._div(a.hi, n, True))


@internal
@pure
def _hull(a: Span, b: Span) -> Span:
    return Span(lo=self._smaller(a.lo, b.lo), hi=self._larger(a.hi, b.hi))


@internal
@pure
def _imul(a: Span, b: Span) -> Span:
    return self._hull(self._scale(a.lo, b), self._scale(a.hi, b))


@internal
@pure
def _magnitude(a: Span) -> Wide:
    """
    @notice max |x| over the interval.
    """
    return self._larger(self._abs(a.lo), self._abs(a.hi))


@internal
@pure
def _accepts(lo: Wide, hi: Wide, tol: Wide, bounded_lo: bool, bounded_hi: bool, claimed: int256) -> bool:
    """
    @notice c finite and lo - tol - u|c| <= c <= hi + tol + u|c|, the edges lo - tol and
            hi + tol rounded outwards, then compared exactly (c +- u|c| = m(2^24 +- 1) 2^(e-24)).
    """
    if not numeric._is_finite(convert(claimed, uint32)):
        return False
    c: Wide = self._f32(claimed)
    big: Wide = Wide(m=c.m * convert(numeric.U_INV + 1, int256), e=c.e - 24)
    small: Wide = Wide(m=c.m * convert(numeric.U_INV - 1, int256), e=c.e - 24)
    high: Wide = big
    low: Wide = small
    if c.m < 0:
        high = small
        low = big
    if bounded_lo and self._cmp(high, self._sub(lo, tol, False)) < 0:
        return False
    return not bounded_hi or self._cmp(low, self._add(hi, tol, True)) <= 0
