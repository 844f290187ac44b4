"""Gas of the program judge (ProgramJudge + ProgramIndex + ProgramNonlinearJudge) per op at its
worst realistic size: the read lists at the 64-term cap (a longer reduction is dissected by the
game first).

Run: ``.venv/bin/python bench/program_judge_gas.py``

Each case is a real node: its kernel computes the honest output from random inputs, the reads come
from the index map and the claim is the kernel's value (accepted).  Execution gas of the call
(``computation.net_gas_used``, index map, Judge / PointwiseJudge and ProgramNonlinearJudge sub-calls
included; without the 21,000 intrinsic gas and calldata).
"""

from __future__ import annotations

import sys
from pathlib import Path

import boa
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "judge")]

from offchain.ml.ops import DTYPE_CODES, OPS, SIGNED, f32_bits  # noqa: E402
from program_runs import gather, single  # noqa: E402

LIMIT = 5_000_000


def cases() -> list[tuple[str, str, tuple]]:
    """(op, size, (node, inputs, flats, index)) with every read list at most 64 long."""
    g = torch.Generator().manual_seed(7)
    window = [8, 8, 1, 1, 0, 0, 1, 1, 0]

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    def pool(op):
        return single(op, "f32" if op != "max_pool2d_indices" else "i64", [randn(1, 1, 8, 8)], window)

    logp = torch.log_softmax(randn(64, 10), 1)
    labels = torch.randint(0, 10, (64,), generator=g)
    conv = [1, 1, 0, 0, 1, 1, 1]
    x = randn(1, 16, 8, 8)
    wide = randn(1, 1, 15, 15)
    pooled = torch.ops.aten.max_pool2d_with_indices.default(wide, [8, 8], [1, 1])[1]
    rows = 2 * randn(2, 64) + 1
    eps = f32_bits(1e-5)
    grid = randn(64, 64) + 2
    w64, b64 = randn(64), randn(64)
    _, mean, rstd = torch.ops.aten.native_layer_norm.default(grid, [64], w64, b64, 1e-5)
    ln_back = [randn(64, 64), grid, mean, rstd, w64, b64]
    groups = randn(2, 8, 4, 4)
    z = 3 * randn(2, 64)
    x4 = 4 * randn(4)
    table = [
        ("view", "1", single("view", "f32", [randn(8, 8)], [3, 8, 1], (4, 2))),
        ("cat", "1", single("cat", "f32", [randn(2, 3), randn(2, 5)], [1])),
        ("cast i64->f32", "1", single("cast", "f32", [torch.tensor([2**62 + 2**38 + 1])], [])),
        ("bernoulli", "1", single("bernoulli", "f32", [torch.tensor(123456789)], [17, 3006477107])),
        ("embedding", "1", single("embedding", "f32", [randn(40, 8), torch.tensor([[3, 39]])], [SIGNED - 1])),
        ("logical_and", "1", single("logical_and", "bool", [randn(4) > 0, randn(4)], [])),
        ("where -inf", "1", single("where", "f32", [torch.tensor([True]), torch.tensor([float("-inf")]), randn(1)], [])),
        ("add", "1", single("add", "f32", [randn(4), randn(1)], [])),
        ("mul i64", "1", single("mul", "f32", [randn(4), torch.tensor([2**40 + 1])], [])),
        ("exp", "1", single("exp", "f32", [randn(4)], [])),
        ("threshold_backward", "1", single("threshold_backward", "f32", [randn(4), randn(4)], [f32_bits(0.0)])),
        ("amax", "n=64", single("amax", "f32", [randn(2, 64)], [0, 1])),
        ("max_pool2d", "8x8", pool("max_pool2d")),
        ("max_pool2d_indices", "8x8", pool("max_pool2d_indices")),
        ("sum", "n=64", single("sum", "f32", [randn(2, 64)], [0, 1])),
        ("mean", "n=64", single("mean", "f32", [randn(2, 64)], [0, 1])),
        ("mm", "k=64", single("mm", "f32", [randn(2, 64), randn(64, 2)], [])),
        ("bmm", "k=64", single("bmm", "f32", [randn(2, 1, 64), randn(2, 64, 1)], [])),
        ("addmm", "k=64", single("addmm", "f32", [randn(2), randn(2, 64), randn(64, 2)], [])),
        ("conv2d", "64 taps + bias", single("conv2d", "f32", [randn(1, 4, 6, 6), randn(2, 4, 4, 4), randn(2)], conv + [1])),
        ("conv2d_grad_input", "64 taps", single("conv2d_grad_input", "f32", [randn(1, 16, 7, 7), x, randn(16, 16, 2, 2)], conv + [7]), 27),
        ("conv2d_grad_weight", "64 taps", single("conv2d_grad_weight", "f32", [randn(1, 2, 8, 8), randn(1, 2, 8, 8), randn(2, 2, 1, 1)], conv + [7])),
        ("conv2d_grad_bias", "n=64", single("conv2d_grad_bias", "f32", [randn(1, 2, 8, 8), randn(1, 2, 8, 8), randn(2, 2, 1, 1)], conv + [7])),
        ("max_pool2d_grad", "64 windows", single("max_pool2d_grad", "f32", [randn(1, 1, 8, 8), wide, pooled], window), 112),
        ("embedding_grad", "64 positions", single("embedding_grad", "f32", [randn(64, 8), torch.ones(64, dtype=torch.int64)], [5, SIGNED - 1, 0]), 8),
        ("softmax", "C=64", single("softmax", "f32", [3 * randn(2, 64)], [1])),
        ("log_softmax", "C=64", single("log_softmax", "f32", [3 * randn(2, 64)], [1])),
        ("nll_loss mean", "B=64", single("nll_loss", "f32", [logp, labels], [1, SIGNED - 100])),
        ("nll_loss_weight", "B=64", single("nll_loss_weight", "f32", [logp, labels], [1, SIGNED - 100])),
        ("softmax_grad", "C=64", single("softmax_grad", "f32", [randn(2, 64), torch.softmax(z, 1)], [1])),
        ("log_softmax_grad", "C=64", single("log_softmax_grad", "f32", [randn(2, 64), torch.log_softmax(z, 1)], [1])),
        ("layer_norm", "N=64", single("layer_norm", "f32", [rows, randn(64), randn(64)], [1, eps, 1, 1])),
        ("layer_norm_mean", "N=64", single("layer_norm_mean", "f32", [rows], [1, eps, 0, 0])),
        ("layer_norm_rstd", "N=64", single("layer_norm_rstd", "f32", [rows], [1, eps, 0, 0])),
        ("layer_norm_grad_input", "N=64 + w", single("layer_norm_grad_input", "f32", ln_back, [1, 7, 1, 1])),
        ("layer_norm_grad_weight", "M=64 rows", single("layer_norm_grad_weight", "f32", ln_back, [1, 7, 1, 1])),
        ("layer_norm_grad_bias", "M=64 rows", single("layer_norm_grad_bias", "f32", ln_back, [1, 7, 1, 1])),
        ("group_norm", "C/G*HW=64", single("group_norm", "f32", [groups, randn(8), randn(8)], [2, 8, 16, 2, eps, 1, 1])),
        ("group_norm_mean", "C/G*HW=64", single("group_norm_mean", "f32", [groups], [2, 8, 16, 2, eps, 0, 0])),
        ("group_norm_rstd", "C/G*HW=64", single("group_norm_rstd", "f32", [groups], [2, 8, 16, 2, eps, 0, 0])),
        ("silu", "1", single("silu", "f32", [x4], [])),
        ("silu_backward", "1", single("silu_backward", "f32", [randn(4), x4], [])),
        ("tanh_backward", "1", single("tanh_backward", "f32", [randn(4), torch.tanh(x4)], [])),
        ("sigmoid_backward", "1", single("sigmoid_backward", "f32", [randn(4), torch.sigmoid(x4)], [])),
        ("nll_loss_grad", "1", single("nll_loss_grad", "f32", [torch.tensor(1.0), logp, labels, torch.tensor(64.0)], [1, SIGNED - 100])),
    ]
    return [(name, size, (*row[0], row[1] if len(row) > 1 else 0)) for name, size, *row in table]


def call_args(node, ins, flats, index) -> tuple:
    """ProgramJudge.check's arguments for element ``index`` with the honest claim."""
    return ((OPS[node.op].code, DTYPE_CODES[node.dtype], list(node.shape), list(node.attrs)),
            [(DTYPE_CODES[n.dtype], list(n.shape)) for n in ins], index, gather(node, ins, flats, index),
            int(flats[node.id][index]))


def deploy():
    boa.interpret.set_search_paths([str(ROOT / "contracts")])

    def load(name):
        return boa.load_partial(str(ROOT / "contracts" / f"{name}.vy"))

    judge = load("Judge").deploy(load("PointwiseJudge").deploy().address)
    nonlinear = load("ProgramNonlinearJudge").deploy()
    return load("ProgramJudge").deploy(load("ProgramIndex").deploy().address, judge.address, nonlinear.address)


def measure(program_judge) -> list[tuple[str, str, int, bool]]:
    """(op, size, execution gas, verdict) per case."""
    rows = []
    for name, size, case in cases():
        verdict = program_judge.check(*call_args(*case))
        rows.append((name, size, program_judge._computation.net_gas_used, bool(verdict)))
    return rows


def main() -> None:
    rows = measure(deploy())
    print(f"| {'op':<22} | {'size':<14} | {'execution gas':>13} |")
    print(f"|{'-' * 24}|{'-' * 16}|{'-' * 15}|")
    for name, size, used, _ in rows:
        print(f"| {name:<22} | {size:<14} | {used:>13,} |")
    top = max(used for _, _, used, _ in rows)
    print(f"\nworst one-step program check: {top:,} gas ({'under' if top < LIMIT else 'OVER'} the {LIMIT:,} budget)")


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help; no options
    main()
