"""Shared helpers of the one-step judge tests: exact float32 arithmetic, honest evaluators, the contract."""

from __future__ import annotations

import atexit
import contextlib
import functools
import random
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import boa
import mpmath
import numpy as np
import requests
import torch
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak
from vyper.compiler.output import build_abi_output

from offchain.dispute import judge as J
from offchain.node import dev_account, start_anvil

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
U = Fraction(1, 1 << 24)
ETA = Fraction(1, 1 << 126)
F32_MAX_EXP = 104


@functools.cache
def deployer(name: str):
    boa.interpret.set_search_paths([str(CONTRACTS)])
    return boa.load_partial(str(CONTRACTS / f"{name}.vy"))


# ---------------------------------------------------------------------------------------------
# the contracts, on a real Anvil


class Reverted(Exception):
    """A call the contract reverted; its message is the revert reason."""


def _abi_type(entry: dict) -> str:
    """The canonical ABI type of an input or output (a struct as its tuple of components)."""
    kind = entry["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in entry["components"]) + ")" + kind[len("tuple"):]
    return kind


class Chain:
    """One Anvil per test process for the judge tests' thousands of view calls: revm runs the
    bytecode boa compiles (`deployer`) far faster than boa's own EVM, and each verdict is an
    `eth_call`, as a dispute's checker reads it on a real chain."""

    def __init__(self) -> None:
        self.node = start_anvil()
        atexit.register(self.node.stop)
        self.session = requests.Session()
        self.sender = dev_account(0).address

    def rpc(self, method: str, params: list):
        reply = self.session.post(self.node.url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                       "params": params}, timeout=600).json()
        if "error" in reply:
            data = reply["error"].get("data") or ""
            if isinstance(data, str) and data.startswith("0x08c379a0"):  # Error(string)
                raise Reverted(abi_decode(["string"], bytes.fromhex(data[10:]))[0])
            raise Reverted(reply["error"].get("message", ""))
        return reply["result"]

    def deploy(self, name: str, *args) -> "ChainContract":
        abi = build_abi_output(deployer(name).compiler_data)
        [ctor] = [e for e in abi if e["type"] == "constructor"] or [{"inputs": []}]
        code = deployer(name).compiler_data.bytecode + abi_encode([_abi_type(i) for i in ctor["inputs"]], args)
        tx = self.rpc("eth_sendTransaction", [{"from": self.sender, "data": "0x" + code.hex(), "gas": hex(30_000_000)}])
        receipt = None
        for _ in range(600):  # Anvil mines each transaction at once, and answers for it when it has
            receipt = self.rpc("eth_getTransactionReceipt", [tx])
            if receipt is not None:
                break
            time.sleep(0.05)
        assert receipt is not None and int(receipt["status"], 16) == 1, f"{name} did not deploy"
        return self.at(name, receipt["contractAddress"])

    def at(self, name: str, address: str) -> "ChainContract":
        return ChainContract(self, name, address)


@functools.cache
def chain() -> Chain:
    return Chain()


class ChainContract:
    """A contract on the `Chain`: ``contract.fn(*args)`` is an `eth_call` of its function ``fn``
    (arguments and results as boa gives them: ints, bools, bytes, tuples and lists); a revert
    raises `Reverted` with its reason."""

    def __init__(self, chain: Chain, name: str, address: str) -> None:
        self.chain, self.name, self.address = chain, name, address
        self._functions = {}
        for entry in build_abi_output(deployer(name).compiler_data):
            if entry["type"] == "function":
                inputs = [_abi_type(i) for i in entry["inputs"]]
                selector = keccak(f"{entry['name']}({','.join(inputs)})".encode())[:4]
                self._functions[entry["name"]] = (selector, inputs, [_abi_type(o) for o in entry["outputs"]])

    def __getattr__(self, fn: str):
        try:
            selector, inputs, outputs = self._functions[fn]
        except KeyError:
            raise AttributeError(f"{self.name} has no function {fn}") from None

        def call(*args):
            data = selector + abi_encode(inputs, args)
            result = self.chain.rpc("eth_call", [{"to": self.address, "data": "0x" + data.hex()}, "latest"])
            values = abi_decode(outputs, bytes.fromhex(result[2:]))
            return values[0] if len(values) == 1 else values

        return call


@contextlib.contextmanager
def reverts(reason: str):
    """The block's contract call reverts with exactly ``reason``."""
    try:
        yield
    except Reverted as error:
        assert str(error) == reason, f"reverted with {str(error)!r}, not {reason!r}"
    else:
        raise AssertionError(f"did not revert (expected {reason!r})")


@functools.cache
def judge_contract() -> ChainContract:
    """PointwiseJudge, then the Judge that forwards the enclosure ops to it."""
    return chain().deploy("Judge", chain().deploy("PointwiseJudge").address)


@functools.cache
def program_judge_contract() -> ChainContract:
    """ProgramIndex, ProgramNonlinearJudge and the ProgramJudge over them and the Judge."""
    index, nonlinear = chain().deploy("ProgramIndex"), chain().deploy("ProgramNonlinearJudge")
    return chain().deploy("ProgramJudge", index.address, judge_contract().address, nonlinear.address)


def onchain(call: J.JudgeCall) -> bool | str:
    """The contract's verdict, or ``"revert"``."""
    try:
        return bool(judge_contract().check(*call.as_args()))
    except Reverted:
        return "revert"


def onchain_long(call: J.JudgeCall) -> tuple[bool, bool]:
    """A dissected reduction with the honest partials, on chain: (every chunk check accepts its
    partial, the fold check accepts the claim)."""
    judge = judge_contract()
    partials = J.reduction_partials(call.op, call.a, call.b, call.claimed)
    top = max(p.top for p in partials)
    chunks = True
    for c, p in enumerate(partials):
        t0, t1 = J.chunk_bounds(len(call.a), c)
        b = list(call.b[t0:t1]) if call.b else []
        chunks &= bool(judge.check_chunk(call.op, list(call.a[t0:t1]), b, top, call.claimed, *p.as_tuple()))
    x, total = sum(p.x for p in partials), sum(p.abs for p in partials)
    return chunks, bool(judge.check_fold(call.op, len(call.a), x, total, top, call.claimed))


def reference(call: J.JudgeCall) -> bool | str:
    try:
        return J.check_call(call)
    except J.JudgeError:
        return "revert"


# ---------------------------------------------------------------------------------------------
# exact float32


def value(bits: int) -> Fraction:
    neg, mant, exp = J.decode(bits)
    v = Fraction(mant) * (Fraction(2) ** exp)
    return -v if neg else v


def round_f32(x: Fraction) -> int:
    """Exact IEEE round-to-nearest-even of a rational to float32 bits (Inf on overflow)."""
    if x == 0:
        return 0
    sign = 1 << 31 if x < 0 else 0
    x = abs(x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    q = max(e - 23, -149)
    scaled = x / (Fraction(2) ** q)
    m = scaled.numerator // scaled.denominator
    rem = scaled - m
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and m % 2 == 1):
        m += 1
    if m == 1 << 24:
        m >>= 1
        q += 1
    if q > F32_MAX_EXP:
        return sign | 0x7F800000
    if m < 1 << 23:
        return sign | m
    return sign | ((q + 150) << 23) | (m - (1 << 23))


def f32(x: float) -> np.float32:
    return np.float32(x)


def bits_of(x) -> int:
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def from_bits(bits: Sequence[int]) -> np.ndarray:
    return np.array(list(bits), dtype=np.uint32).view(np.float32)


def next_up(bits: int, steps: int = 1) -> int:
    """Move ``steps`` ulps towards +inf (finite bits)."""
    x = np.array([bits], dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore"):
        for _ in range(steps):
            x = np.nextafter(x, np.float32(np.inf))
    return int(x.view(np.uint32)[0])


def next_down(bits: int, steps: int = 1) -> int:
    x = np.array([bits], dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore"):
        for _ in range(steps):
            x = np.nextafter(x, np.float32(-np.inf))
    return int(x.view(np.uint32)[0])


# ---------------------------------------------------------------------------------------------
# honest float32 evaluations of sums of products


def _fold_forward(prods: np.ndarray) -> np.float32:
    acc = np.float32(0)
    for p in prods:
        acc = np.float32(acc + p)
    return acc


def _pairwise(prods: np.ndarray) -> np.float32:
    if len(prods) == 1:
        return prods[0]
    mid = len(prods) // 2
    return np.float32(_pairwise(prods[:mid]) + _pairwise(prods[mid:]))


def _fma_chain(a: np.ndarray, b: np.ndarray) -> int:
    """acc = RN(acc + a_k b_k) with one rounding per step (exact FMA)."""
    acc = Fraction(0)
    for x, y in zip(a, b):
        acc = value(round_f32(acc + Fraction(float(x)) * Fraction(float(y))))
    return round_f32(acc)


def honest_dots(a_bits: Sequence[int], b_bits: Sequence[int], rng: random.Random) -> dict[str, int]:
    """Claims an honest float32 implementation may produce for sum a_k b_k, by name."""
    a = from_bits(a_bits)
    b = from_bits(b_bits)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        prods = (a * b).astype(np.float32)
        out = {
            "forward": bits_of(_fold_forward(prods)),
            "reverse": bits_of(_fold_forward(prods[::-1])),
            "pairwise": bits_of(_pairwise(prods)),
        }
        perm = list(range(len(prods)))
        rng.shuffle(perm)
        out["permuted"] = bits_of(_fold_forward(prods[perm]))
        chunk = rng.randint(1, max(1, len(prods)))
        partials = [_fold_forward(prods[i:i + chunk]) for i in range(0, len(prods), chunk)]
        out["chunked"] = bits_of(_fold_forward(np.array(partials, dtype=np.float32)))
        out["float64"] = bits_of(np.float32(np.dot(a.astype(np.float64), b.astype(np.float64))))
        tiny = np.float32(2.0 ** -126)
        flushed = np.where(np.abs(prods) < tiny, np.float32(0), prods).astype(np.float32)
        acc = np.float32(0)
        for p in flushed:
            acc = np.float32(acc + p)
            if abs(acc) < tiny:
                acc = np.float32(0)
        out["flush_to_zero"] = bits_of(acc)
    out["fma"] = _fma_chain(a, b)
    out["exact_rn"] = round_f32(sum((value(x) * value(y) for x, y in zip(a_bits, b_bits)), Fraction(0)))
    ta = torch.from_numpy(a.copy())
    tb = torch.from_numpy(b.copy())
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out[f"torch_dot_t{threads}"] = bits_of(torch.dot(ta, tb).item())
        out[f"torch_mm_t{threads}"] = bits_of(torch.mm(ta.view(1, -1), tb.view(-1, 1)).item())
    torch.set_num_threads(1)
    return out


def honest_sums(g_bits: Sequence[int], rng: random.Random) -> dict[str, int]:
    g = from_bits(g_bits)
    out = {
        "forward": bits_of(_fold_forward(g)),
        "reverse": bits_of(_fold_forward(g[::-1])),
        "pairwise": bits_of(_pairwise(g)),
        "float64": bits_of(np.float32(g.astype(np.float64).sum())),
        "exact_rn": round_f32(sum((value(x) for x in g_bits), Fraction(0))),
    }
    perm = list(range(len(g)))
    rng.shuffle(perm)
    out["permuted"] = bits_of(_fold_forward(g[perm]))
    t = torch.from_numpy(g.copy()).view(-1, 1)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out[f"torch_t{threads}"] = bits_of(t.sum(0).item())
    torch.set_num_threads(1)
    return out


# ---------------------------------------------------------------------------------------------
# documented bounds (docs/judge.md), as exact rationals


def gamma(n: int) -> Fraction:
    return n * U / (1 - n * U)


def linear_bound(kind: str, args: Sequence[Sequence[int]], claimed: int) -> tuple[Fraction, Fraction, int]:
    """(exact value s, documented bound B(c), slack multiplier for sigma) of a linear op."""
    c = abs(value(claimed))
    if kind == "matmul":
        a, b = args
        prods = [value(x) * value(y) for x, y in zip(a, b)]
        n = len(prods)
        return sum(prods, Fraction(0)), gamma(n) * sum(abs(p) for p in prods) + U * c + 4 * n * ETA, 3 * n + 6
    if kind == "sum_rows":
        (g,) = args
        vals = [value(x) for x in g]
        n = len(vals)
        return sum(vals, Fraction(0)), gamma(n - 1) * sum(abs(v) for v in vals) + U * c + 2 * n * ETA, 3 * n + 6
    if kind == "add":
        x, y = args
        return value(x[0]) + value(y[0]), U * c + 2 * ETA, 12
    raise ValueError(kind)


def linear_verdict(kind: str, args: Sequence[Sequence[int]], claimed: int) -> J.LinearTolerance | None:
    """The integers behind a linear verdict: a program's dot product or sum of n terms (gamma_n
    and 4n etas, gamma_{n-1} and 2n, as `program_rules` and the ProgramJudge take them), or add."""
    if kind == "matmul":
        a, b = args
        return J._linear([J._product(x, y) for x, y in zip(a, b)], claimed, len(a), 4 * len(a))
    if kind == "sum_rows":
        (g,) = args
        return J._linear([J.decode(v) for v in g], claimed, len(g) - 1, 2 * len(g))
    return J.linear_tolerance(kind, args, claimed)


def sigma(kind: str, args, claimed: int) -> Fraction:
    """Upper bound of the judge's extra slack beyond the documented bound (docs/judge.md)."""
    verdict = linear_verdict(kind, args, claimed)
    _, _, mult = linear_bound(kind, args, claimed)
    return mult * Fraction(2) ** verdict.scale


# ---------------------------------------------------------------------------------------------
# the floats at the edge of an acceptance interval

MAX_FINITE_KEY = 0x7F7FFFFF


def order_key(bits: int) -> int:
    """Integer with the order of the float value; neighbouring floats have neighbouring keys."""
    mag = bits & 0x7FFFFFFF
    return -mag if bits >> 31 else mag


def from_key(key: int) -> int:
    return key if key >= 0 else (1 << 31) | -key


def edge(holds: Callable[[int], bool], start: int, direction: int) -> tuple[int, int | None]:
    """Adjacent floats (last, first) walking from ``start`` towards +inf (direction 1) or -inf (-1)
    with ``holds(last)`` and not ``holds(first)``; first is None if ``holds`` reaches the largest
    finite float. ``holds(start)`` must be true."""
    assert holds(start), start
    inside, step = order_key(start), 1
    while True:
        k = inside + direction * step
        if abs(k) >= MAX_FINITE_KEY:
            k = direction * MAX_FINITE_KEY
            if holds(from_key(k)):
                return from_key(k), None
        if not holds(from_key(k)):
            return _bisect(holds, inside, k)
        inside, step = k, 2 * step


def _bisect(holds: Callable[[int], bool], inside: int, outside: int) -> tuple[int, int]:
    """Adjacent floats between the order keys ``inside`` (holds) and ``outside`` (does not)."""
    while abs(outside - inside) > 1:
        mid = (inside + outside) // 2
        if holds(from_key(mid)):
            inside = mid
        else:
            outside = mid
    return from_key(inside), from_key(outside)


def near_bound_claims(center: Fraction, bound: Callable[[Fraction], Fraction],
                      slack: Callable[[int], Fraction], accepted: Callable[[int], bool]) -> list[tuple[int, bool]]:
    """Claims at the edges of the bound around the exact result ``center``, with the verdict each
    must get, on both sides: the last float within ``bound(|c|)`` (accepted), the first beyond
    ``bound(|c|) + slack(c)`` (rejected), and the last accepted and first rejected claim of
    ``accepted`` (the judge's own edge, between those two)."""
    def distance(c: int) -> Fraction:
        return abs(value(c) - center)

    def inside(c: int) -> bool:
        return distance(c) <= bound(abs(value(c)))

    def within_slack(c: int) -> bool:
        return distance(c) <= bound(abs(value(c))) + slack(c)

    start = round_f32(center)
    out: list[tuple[int, bool]] = []
    for direction in (1, -1):
        last, _ = edge(inside, start, direction)
        _, first = edge(within_slack, start, direction)
        out.append((last, True))
        if first is None:
            continue
        out.append((first, False))
        assert accepted(last), f"the reference rejects {last:#x}, within the documented bound"
        assert not accepted(first), f"the reference accepts {first:#x}, beyond the bound and its slack"
        out += zip(_bisect(accepted, order_key(last), order_key(first)), (True, False))
    return list(dict.fromkeys(out))


def to_fraction(x: mpmath.mpf) -> Fraction:
    sign, man, exp, _ = x._mpf_
    v = Fraction(int(man)) * Fraction(2) ** int(exp)
    return -v if sign else v


def random_f32(rng: random.Random, lo_exp: int, hi_exp: int) -> int:
    """Random finite float32 bits with binary exponent in [lo_exp, hi_exp] (possibly subnormal)."""
    sign = rng.getrandbits(1) << 31
    e = rng.randint(lo_exp, hi_exp)
    return sign | round_f32(Fraction(rng.getrandbits(24) | (1 << 23), 1 << 23) * Fraction(2) ** e) & 0x7FFFFFFF


Evaluator = Callable[..., dict]
