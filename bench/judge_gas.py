"""Gas of the Judge per op (the elementwise rules, and the chunk and fold checks of a dissected
reduction at the cap), against baselines measured in the same run.

Run: ``.venv/bin/python bench/judge_gas.py``

For every op the worst case over several input families is reported (execution gas of the call,
``computation.net_gas_used``: excludes the 21,000 intrinsic gas and calldata, which are listed
separately as ABI bytes x 16).  Baselines, deployed in the same in-process EVM:

* ``keccak``: keccak256 over the ABI-encoded input arrays of the same length (what a leaf check of
  the proven inputs costs at least);
* ``int dot``: an exact int256 dot product of the same 64 + 64 uint32 words, without any float
  decoding or bound.

The ratio column is the op's gas over the ``int dot`` baseline at the same length.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import boa
from eth_abi import encode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offchain.dispute import judge as J  # noqa: E402

CAP = J.MAX_REDUCTION
LIMIT = 5_000_000

BASELINE = """
# pragma version 0.4.3

@external
@pure
def hash_inputs(a: DynArray[uint32, 256], b: DynArray[uint32, 64]) -> bytes32:
    return keccak256(abi_encode(a, b))

@external
@pure
def int_dot(a: DynArray[uint32, 64], b: DynArray[uint32, 64]) -> int256:
    acc: int256 = 0
    for k: uint256 in range(len(a), bound=64):
        acc += convert(a[k], int256) * convert(b[k], int256)
    return acc
"""


def gas(contract, fn: str, *args) -> int:
    getattr(contract, fn)(*args)
    return contract._computation.net_gas_used


def f32_families(rng: random.Random, n: int) -> list[list[int]]:
    """Input families: unit-sized, wide exponents, mixed signs with subnormals."""
    unit = [J.f32_bits(rng.uniform(-1, 1)) for _ in range(n)]
    wide = [J.f32_bits(rng.choice([-1, 1]) * 2.0 ** rng.uniform(-40, 40)) for _ in range(n)]
    mixed = [rng.choice([J.f32_bits(rng.uniform(-3, 3)), rng.randrange(1, 1 << 23)]) for _ in range(n)]
    return [unit, wide, mixed]


def pointwise_inputs(rng: random.Random) -> list[int]:
    """Unit-sized, wide, subnormal, and the longest series / branch points (erf below 6.5, Phi below 10)."""
    values = [rng.uniform(-3, 3), rng.choice([-1, 1]) * 2.0 ** rng.uniform(-40, 40), 6.4999995, -6.4999995,
              9.999999, -9.999999, 0.2499999, -0.2499999, -88.0, 88.0, 1e-40, -103.0, 3.0e38]
    return [J.f32_bits(v) for v in values]


def calldata_gas(types: list[str], values: list) -> int:
    data = encode(types, values)
    return sum(16 if byte else 4 for byte in data) + 4 * 16


def main() -> None:
    boa.interpret.set_search_paths([str(ROOT / "contracts")])
    pointwise = boa.load_partial(str(ROOT / "contracts" / "PointwiseJudge.vy")).deploy()
    judge = boa.load_partial(str(ROOT / "contracts" / "Judge.vy")).deploy(pointwise.address)
    base = boa.loads(BASELINE)
    rng = random.Random(2024)
    one = J.f32_bits(1.0)

    vec_a = f32_families(rng, CAP)[0]
    vec_b = f32_families(rng, CAP)[0]
    keccak_gas = gas(base, "hash_inputs", vec_a, vec_b)
    dot_gas = gas(base, "int_dot", vec_a, vec_b)

    rows: list[tuple[str, str, int, int]] = []

    def worst(name: str, size: str, fn: str, arg_sets: list[tuple], abi: list[str]) -> None:
        best = max(arg_sets, key=lambda args: gas(judge, fn, *args))
        rows.append((name, size, gas(judge, fn, *best), calldata_gas(abi, list(best))))

    fam_a = f32_families(rng, CAP)
    fam_b = f32_families(rng, CAP)
    check_abi = ["uint256", "uint32[]", "uint32[]", "uint256[]", "uint32"]
    worst("add", "1", "check", [(J.OP_ADD, [a[0]], [b[0]], [], one) for a, b in zip(fam_a, fam_b)], check_abi)
    worst("relu", "1", "check", [(J.OP_RELU, [a[0]], [], [], a[0]) for a in fam_a], check_abi)
    xs = pointwise_inputs(rng)
    for code in range(16, 40):
        name = J.OP_NAMES[code]
        b = [] if name in J.UNARY else [J.f32_bits(1.5)]
        aux = [1] if name == "where" else []
        calls = [(code, [x], b, aux, one) for x in xs]
        if name in ("div", "gelu_backward"):
            calls += [(code, [one], [x], aux, one) for x in xs]
        worst(name, "1", "check", calls, check_abi)
    # a long reduction (docs/judge.md §3.7): one chunk of 64 terms, and the fold of n = 4096
    chunk_abi = ["uint256", "uint32[]", "uint32[]", "int256", "uint32", "int256", "uint256", "int256"]
    for op, name in ((J.OP_MATMUL, "matmul chunk"), (J.OP_SUM_ROWS, "sum_rows chunk")):
        sets = []
        for a, b in zip(fam_a, fam_b):
            b = b if op == J.OP_MATMUL else []
            p = J.reduction_partials(op, a, b, one)[0]
            sets.append((op, a, b, p.top, one, p.x, p.abs, p.top))
        worst(name, f"n={CAP}", "check_chunk", sets, chunk_abi)
    fold_sets = []
    for family in f32_families(rng, 4096):
        partials = J.reduction_partials(J.OP_SUM_ROWS, family, (), one)
        fold_sets.append((J.OP_SUM_ROWS, 4096, sum(p.x for p in partials), sum(p.abs for p in partials),
                          max(p.top for p in partials), one))
    worst("fold", "n=4096", "check_fold", fold_sets, ["uint256", "uint256", "int256", "uint256", "int256", "uint32"])

    print(f"baseline keccak256(abi_encode(a[{CAP}], b[{CAP}])): {keccak_gas:,} gas")
    print(f"baseline exact int256 dot product, n={CAP}:      {dot_gas:,} gas")
    print()
    header = f"| {'op':<18} | {'size':<6} | {'execution gas':>13} | {'calldata gas':>12} | {'x int dot':>9} | {'x keccak':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(cell) + 0) for cell in header.split("|")[1:-1]) + "|")
    for name, size, used, cd in rows:
        print(f"| {name:<18} | {size:<6} | {used:>13,} | {cd:>12,} | {used / dot_gas:>9.2f} | {used / keccak_gas:>8.2f} |")
    top = max(used for _, _, used, _ in rows)
    print()
    print(f"worst one-step check: {top:,} gas ({'under' if top < LIMIT else 'OVER'} the {LIMIT:,} budget)")


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help; no options
    main()
