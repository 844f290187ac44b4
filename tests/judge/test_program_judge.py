"""ProgramJudge and ProgramIndex (the program rules on chain) against the Python reference
``offchain/dispute/program_rules.py`` on real program traces: the same reads, the same verdict on
honest values, on claims a few ulp beyond (and just inside) the window, and a revert wherever the
reference raises."""

from __future__ import annotations

import functools
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from judge_testing import Reverted, chain, program_judge_contract, reverts
from offchain.dispute import judge as J
from offchain.dispute import program_rules as R
from offchain.ml.ops import DTYPE_CODES, OPS, SIGNED, f32_bits
from program_runs import FAMILIES, gather, run_of
from program_runs import single as _single
from test_program_rules import EXACT, next_out

CAP = 64
NEG_INF = 0xFF800000
ELEMENTWISE = {"add", "relu", "threshold_backward", *J.POINTWISE}
ON_CHAIN = set(R.RULES)  # every program rule
# decided by ProgramNonlinearJudge (ProgramJudge forwards them; each call costs 0.1-0.5 M gas, so
# the tests try fewer claims on them)
NONLINEAR = {"silu", "silu_backward", "tanh_backward", "sigmoid_backward", "softmax_grad", "log_softmax_grad",
             "layer_norm", "layer_norm_mean", "layer_norm_rstd", "layer_norm_grad_input", "layer_norm_grad_weight",
             "group_norm", "group_norm_mean", "group_norm_rstd"}
NODES_PER_OP = 2
INDICES_PER_NODE = 2


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def run(request):
    return run_of(request.param)


@pytest.fixture(scope="module")
def gpt():
    return run_of("gpt")


# --------------------------------------------------------------------------------------------- calls


def descriptor(node):
    return (OPS[node.op].code, DTYPE_CODES[node.dtype], list(node.shape), list(node.attrs))


def inputs(ins):
    return [(DTYPE_CODES[n.dtype], list(n.shape)) for n in ins]


def index_contract():
    return chain().at("ProgramIndex", program_judge_contract().index_map())


def onchain_reads(node, ins, index, first=None):
    reads = index_contract().element_inputs(descriptor(node), inputs(ins), index, first[0] if first else [],
                                            first is not None)
    return [(int(p), [int(i) for i in idx]) for p, idx in reads]


def onchain(node, ins, index, values, claimed):
    try:
        return bool(program_judge_contract().check(descriptor(node), inputs(ins), index, values, claimed))
    except Reverted:
        return "revert"


def reference(node, ins, index, values, claimed):
    try:
        return R.check(node, ins, index, values, claimed)
    except J.JudgeError:
        return "revert"


def agree(node, ins, index, values, claimed):
    """Both verdicts, asserted equal; returns the verdict."""
    want = reference(node, ins, index, values, claimed)
    got = onchain(node, ins, index, values, claimed)
    assert got == want, (node.op, node.id, index, claimed, got, want)
    return want


def _f32(bits: int) -> np.float32:
    return np.uint32(bits).view(np.float32)


def _step(bits: int, up: bool) -> int:
    return f32_bits(float(np.nextafter(_f32(bits), np.float32(np.inf if up else -np.inf), dtype=np.float32)))


def claims(node, ins, index, values, honest) -> list[tuple[int, bool | None]]:
    """(claim, the verdict it must get or None): the honest value, NaN, the neighbours of the
    value (wrong for exact ops), claims a few ulp beyond both window edges and the ulps walking
    inwards across each edge."""
    if node.dtype != "f32":
        return [(honest, True)] + [(c, False) for c in ([honest + 1, honest - 1] if node.dtype == "i64" else [1 - honest])]
    exact = False if node.op in EXACT else None
    out = [(honest, True), (0x7FC00000, False)]
    out += [(c, exact) for c in (_step(honest, True), _step(honest, False)) if c != honest]  # not -inf's
    w = R.window(node, ins, index, values)
    if w is None or w.lo is None or w.hi is None:
        return out
    for up in (True, False):
        out.append((next_out(w, up), False))
        edge = next_out(w, up, steps=0)
        for _ in range(3):
            edge = _step(edge, not up)
            out.append((edge, None))
    return out


def lean_claims(node, ins, index, values, honest, inward: bool = True) -> list[tuple[int, bool | None]]:
    """The honest value, a few ulp beyond both window edges and (``inward``) the first float
    inside each edge."""
    out = [(honest, True)]
    w = R.window(node, ins, index, values)
    if w is None or w.lo is None or w.hi is None:
        return out + [(0x7FC00000, False)]
    for up in (True, False):
        out.append((next_out(w, up), False))
        if inward:
            out.append((_step(next_out(w, up, steps=0), not up), None))
    return out


def verdicts_agree(node, ins, index, values, honest, lean: bool = False, inward: bool = True) -> None:
    pick = functools.partial(lean_claims, inward=inward) if lean else claims
    for claim, expected in pick(node, ins, index, values, honest):
        verdict = agree(node, ins, index, values, claim)
        assert expected is None or verdict is expected, (node.op, node.id, index, claim, verdict)


# --------------------------------------------------------------------------------------------- real programs


def test_program_judge__every_rule_on_chain_occurs_in_the_test_programs():
    seen = {n.op for name in FAMILIES for n in run_of(name).nodes()}
    assert ON_CHAIN - seen <= {"silu_backward"} and ON_CHAIN <= set(R.RULES)


_nonlinear_seen: set[str] = set()  # a non-linear op's verdicts are tried in the first family that has it


def test_program_judge__reads_and_verdicts_match_the_reference_on_real_programs(run):
    rng = random.Random(11)
    flats = run.flats[1]
    by_op: dict[str, list] = {}
    for node in run.nodes():
        if node.op in ON_CHAIN:
            by_op.setdefault(node.op, []).append(node)
    checked = skipped = 0
    for op, nodes in sorted(by_op.items()):
        if op in NONLINEAR and op in _nonlinear_seen:
            skipped += 1
            continue
        per_node, per_index = (1, 1) if op in NONLINEAR else (NODES_PER_OP, INDICES_PER_NODE)
        for node in rng.sample(nodes, min(per_node, len(nodes))):
            ins = run.inputs(node)
            for index in rng.sample(range(node.numel), min(per_index, node.numel)):
                reads = R.element_inputs(node, ins, index)
                if any(len(idx) > CAP for _, idx in reads):
                    with reverts("rule: reduction too long"):
                        onchain_reads(node, ins, index)
                    continue
                values = gather(node, ins, flats, index)
                assert onchain_reads(node, ins, index) == reads
                if R.needs_values(node):
                    first = values[:len(reads)]
                    full = R.element_inputs(node, ins, index, first)
                    if any(len(idx) > CAP for _, idx in full):
                        continue
                    assert onchain_reads(node, ins, index, first) == full
                verdicts_agree(node, ins, index, values, int(flats[node.id][index]), lean=op in NONLINEAR,
                               inward=False)
                _nonlinear_seen.add(op)
                checked += 1
    assert checked + skipped >= len(by_op)


def test_program_judge__two_thread_values_get_the_same_verdicts(run):
    """Every reduction of a differently ordered execution (two threads) against its own inputs, as
    an honest solver on two threads commits them (where a reduction upstream came out otherwise,
    the one-thread inputs are not what this output was computed from)."""
    rng = random.Random(12)
    for node in run.nodes():
        if node.op not in ("mm", "addmm", "bmm", "conv2d", "sum", "mean", "nll_loss") or node.dtype != "f32":
            continue
        ins = run.inputs(node)
        for index in rng.sample(range(node.numel), min(2, node.numel)):
            if any(len(idx) > CAP for _, idx in R.element_inputs(node, ins, index)):
                continue
            values = gather(node, ins, run.flats[2], index)
            if R.needs_values(node) and any(len(i) > CAP for _, i in R.element_inputs(node, ins, index, values[:1])):
                continue
            assert agree(node, ins, index, values, int(run.flats[2][node.id][index])) is True


# --------------------------------------------------------------------------------------------- malformed


def _node(run, op):
    node = next(n for n in run.nodes() if n.op == op and
                all(len(i) <= CAP for _, i in R.element_inputs(n, run.inputs(n), 0)))
    return node, run.inputs(node), gather(node, run.inputs(node), run.flats[1], 0), int(run.flats[1][node.id][0])


@pytest.mark.parametrize("op", ["mm", "embedding_grad", "nll_loss", "sum", "add", "view", "embedding"])
def test_program_judge__a_wrong_count_of_input_values_reverts(gpt, op):
    node, ins, values, claim = _node(gpt, op)
    assert agree(node, ins, 0, values, claim) is True
    assert agree(node, ins, 0, values[:-1], claim) == "revert"
    assert agree(node, ins, 0, [v + [0] for v in values], claim) == "revert"


@pytest.mark.parametrize("op", ["mm", "sum", "add", "mul", "exp", "amax", "where", "gt"])
def test_program_judge__a_non_finite_input_reverts(op):
    run = run_of("zoo") if op in ("amax", "where", "exp", "gt") else run_of("gpt")
    node, ins, values, claim = _node(run, op)
    for bad in (0x7FC00000, 0x7F800000):
        spoiled = [list(v) for v in values]
        position = next(k for k, (p, _) in enumerate(R.element_inputs(node, ins, 0)) if ins[p].dtype == "f32")
        spoiled[position][0] = bad
        assert agree(node, ins, 0, spoiled, claim) == "revert"


def test_program_judge__bad_indices_ops_tokens_labels_and_values_revert(gpt):
    node, ins, values, claim = _node(gpt, "mm")
    with reverts("rule: index out of range"):
        onchain_reads(node, ins, node.numel)
    assert agree(node, ins, 0, values, 1 << 32) == "revert"
    unknown = (99, 0, [1], [])
    with reverts("rule: op has no program rule on chain"):
        index_contract().element_inputs(unknown, [], 0, [], False)
    with reverts("rule: op has no program rule on chain"):
        program_judge_contract().check(unknown, [], 0, [], 0)
    emb, emb_ins, emb_values, emb_claim = _node(gpt, "embedding")
    with reverts("rule: embedding index out of range"):
        onchain_reads(emb, emb_ins, 0, [[emb_ins[0].shape[0]]])
    assert agree(emb, emb_ins, 0, [[-1], emb_values[1]], emb_claim) == "revert"
    nll, nll_ins, nll_values, nll_claim = _node(gpt, "nll_loss")
    spoiled = [list(nll_values[0]), list(nll_values[1])]
    spoiled[0][0] = nll_ins[0].shape[-1]
    assert agree(nll, nll_ins, 0, spoiled, nll_claim) == "revert"
    spoiled[0][0] = 1 << 63
    assert agree(nll, nll_ins, 0, spoiled, nll_claim) == "revert"


# --------------------------------------------------------------------------------------------- unit configurations


def _agree_everywhere(node, ins, flats, indices=None, lean: bool = False, inward: bool = True):
    """Every element (or ``indices``): contract and reference agree on the claims of ``claims``
    (``lean_claims``): honest passes, beyond the window fails."""
    for index in range(node.numel) if indices is None else indices:
        verdicts_agree(node, ins, index, gather(node, ins, flats, index), int(flats[node.id][index]), lean, inward)


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_program_judge__nll_loss_every_reduction_with_ignored_labels(reduction):
    logp = torch.log_softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(3)), 1)
    labels = torch.tensor([1, -100, 4, 0, -100, 2])
    for op in ("nll_loss", "nll_loss_weight"):
        node, ins, flats = _single(op, "f32", [logp, labels], [reduction, -100 + SIGNED])
        _agree_everywhere(node, ins, flats)
    total = torch.tensor(4.0)
    go = torch.tensor(0.75) if reduction else torch.randn(6)
    node, ins, flats = _single("nll_loss_grad", "f32", [go, logp, labels, total], [reduction, -100 + SIGNED])
    _agree_everywhere(node, ins, flats)


def test_program_judge__int64_to_float32_rounds_to_nearest_even():
    rng = np.random.default_rng(4)
    ints = [2**24 + 1, 2**24 + 3, -(2**25 + 2), 2**62 + 2**38, 2**63 - 1, -(2**63), 0, 1, -7]
    ints += [int(x) for x in rng.integers(-(2**63), 2**63 - 1, 40)]
    node, ins, flats = _single("cast", "f32", [torch.tensor(ints)], [])
    _agree_everywhere(node, ins, flats)
    for source, target in (("f32", "i64"), ("f32", "bool"), ("i64", "bool"), ("bool", "i64")):
        x = torch.tensor([2.5, -2.5, 0.0, -0.0, 1e-30, -3e9, 7.0])
        if source == "i64":
            x = torch.tensor([0, 5, -9, 2**40])
        elif source == "bool":
            x = torch.tensor([True, False])
        node, ins, flats = _single("cast", target, [x], [])
        _agree_everywhere(node, ins, flats)
    node, ins, flats = _single("cast", "i64", [torch.tensor([1.0])], [])
    assert agree(node, ins, 0, [[f32_bits(2.0**63)]], 0) == "revert"


def test_program_judge__an_integer_sum_is_an_exact_count():
    """A sum of int64 or bool terms (a count, e.g. of the ties max-pooling's gradient reads) has one
    right value: the neighbours a float bound would let through revert to False on chain too."""
    g = torch.Generator().manual_seed(6)
    for terms in (torch.rand(3, 4, 5, generator=g) > 0.4, torch.randint(-2**40, 2**40, (3, 4, 5), generator=g)):
        node, ins, flats = _single("sum", "i64", [terms], [1, 1, 2])
        for index in range(node.numel):
            values, honest = gather(node, ins, flats, index), int(flats[node.id][index])
            assert honest == int(terms.long().sum((1, 2)).view(-1)[index])
            assert agree(node, ins, index, values, honest) is True
            for wrong in (honest + 1, honest - 1, 0 if honest else 1):
                assert agree(node, ins, index, values, wrong) is False


def test_program_judge__embedding_grad_rows_of_the_padding_index_are_exactly_zero():
    go = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(5))
    ids = torch.tensor([[0, 2, 2], [1, 0, 2]])
    node, ins, flats = _single("embedding_grad", "f32", [go, ids], [4, SIGNED + 0, 0])
    _agree_everywhere(node, ins, flats)
    values = gather(node, ins, flats, 0)
    assert agree(node, ins, 0, values, f32_bits(1e-30)) is False


def test_program_judge__max_pool_indices_follow_the_first_maximum_in_window_order():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = x[0, 0, 2, 3] = -0.0
    attrs = [2, 2, 2, 2, 0, 0, 1, 1, 0]
    for op in ("max_pool2d", "max_pool2d_indices"):
        node, ins, flats = _single(op, "f32" if op == "max_pool2d" else "i64", [x], attrs)
        _agree_everywhere(node, ins, flats)


def test_program_judge__where_compares_and_adds_over_int64_bool_and_minus_inf():
    a = torch.tensor([3, -5, 2**40, 7])
    b = torch.tensor([3, 4, -(2**40), 9])
    cond = torch.tensor([True, False, True, False])
    for op in J.COMPARE:
        node, ins, flats = _single(op, "bool", [a, b], [])
        _agree_everywhere(node, ins, flats)
    for op in ("where", "maximum", "minimum"):
        node, ins, flats = _single(op, "i64", [cond, a, b] if op == "where" else [a, b], [])
        _agree_everywhere(node, ins, flats)
    node, ins, flats = _single("add", "i64", [a, b], [])
    assert agree(node, ins, 0, gather(node, ins, flats, 0), int(flats[node.id][0])) == "revert"
    scores = torch.tensor([0.5, -1.25, 3.0, 2.0])
    mask = torch.tensor([0.0, float("-inf"), float("-inf"), 0.0])
    node, ins, flats = _single("add", "f32", [scores, mask], [])
    _agree_everywhere(node, ins, flats)
    node, ins, flats = _single("where", "f32", [cond, mask, scores], [])
    _agree_everywhere(node, ins, flats)
    node, ins, flats = _single("mul", "f32", [scores, a], [])  # int64 promoted to float32
    _agree_everywhere(node, ins, flats)
    node, ins, flats = _single("threshold_backward", "f32", [scores, torch.tensor([0.0, 1.0, -0.0, 2.5])],
                               [f32_bits(0.0)])
    _agree_everywhere(node, ins, flats)


@pytest.mark.parametrize("classes", [7, pytest.param(64, marks=pytest.mark.slow)])  # 64: the cap (--slow)
def test_program_judge__softmax_rows_with_masks_agree_across_the_window(classes):
    """Rows of raw, wide and masked logits (a fully masked row too), the kernels' float32 values:
    two entries of each row, a masked one among them."""
    g = torch.Generator().manual_seed(classes)
    z = torch.cat([torch.randn(2, classes, generator=g), 30 * torch.randn(1, classes, generator=g),
                   torch.randn(2, classes, generator=g)])
    z[3, 1::2] = float("-inf")
    z[4] = float("-inf")
    for op in ("softmax", "safe_softmax", "log_softmax"):
        rows = z if op == "safe_softmax" else z[:4]
        node, ins, flats = _single(op, "f32", [rows], [1])
        _agree_everywhere(node, ins, flats, [r * classes + j for r in range(len(rows)) for j in (1, classes - 1)])


def _floats(rng: random.Random, shape, family: str) -> torch.Tensor:
    """float32 values: unit-sized, exponents over ±40 octaves, or a mix with subnormals and zeros."""
    n = int(np.prod(shape))
    if family == "unit":
        xs = [f32_bits(rng.uniform(-1, 1)) for _ in range(n)]
    elif family == "wide":
        xs = [f32_bits(rng.choice([-1, 1]) * 2.0 ** rng.uniform(-40, 40)) for _ in range(n)]
    else:
        xs = [rng.choice([f32_bits(rng.uniform(-3, 3)), rng.randrange(1, 1 << 23), 1 << 31, 0]) for _ in range(n)]
    return torch.from_numpy(np.array(xs, dtype=np.uint32).view(np.float32).reshape(shape).copy())


@pytest.mark.slow  # 100 s a family; the real programs' elements run by default
@pytest.mark.parametrize("family", ["unit", "wide", "subnormal"])
def test_program_judge__fuzzed_reductions_agree_with_the_reference(family):
    """Random inputs of every linear rule and softmax at random sizes up to the cap, honest and
    edge claims."""
    rng = random.Random(family)
    for _ in range(2):
        k = rng.randint(1, CAP)
        f = functools.partial(_floats, rng, family=family)
        labels = torch.tensor([rng.choice([rng.randrange(4), -100]) for _ in range(k)])
        total = torch.tensor(float(max(int((labels != -100).sum()), 1)))
        for op, tensors, attrs in (
            ("sum", [f((2, k))], [0, 1]),
            ("mean", [f((k, 2))], [0, 0]),
            ("mm", [f((1, k)), f((k, 2))], []),
            ("addmm", [f((2,)), f((1, k)), f((k, 2))], []),
            ("nll_loss", [f((k, 4))], [rng.choice([1, 2]), SIGNED - 100]),
            ("nll_loss_grad", [f(()), f((k, 4)), labels, total], [1, SIGNED - 100]),
            ("softmax", [f((1, k))], [1]),
            ("log_softmax", [f((1, k))], [1]),
        ):
            if op == "nll_loss":
                tensors = tensors + [labels]
            node, ins, flats = _single(op, "f32", tensors, attrs)
            if not all(np.isfinite(flats[node.id].view(np.float32))):
                continue
            for index in rng.sample(range(node.numel), min(2, node.numel)):
                verdicts_agree(node, ins, index, gather(node, ins, flats, index), int(flats[node.id][index]))


# --------------------------------------------------------------------------------------------- non-linear rules


def _norm_rows(n: int = CAP) -> torch.Tensor:
    """Rows of n: centred, at mean 1e3, constant (zero variance)."""
    g = torch.Generator().manual_seed(n)
    return torch.stack([3 * torch.randn(n, generator=g), 1e3 + torch.randn(n, generator=g), torch.full((n,), 0.75)])


def test_program_judge__layer_norm_rows_at_the_cap_with_zero_variance_agree_and_longer_rows_revert():
    x = _norm_rows()
    g = torch.Generator().manual_seed(1)
    w, b = torch.randn(CAP, generator=g), torch.randn(CAP, generator=g)
    eps = f32_bits(1e-5)
    for op in ("layer_norm_mean", "layer_norm_rstd"):
        node, ins, flats = _single(op, "f32", [x], [1, eps, 0, 0])
        _agree_everywhere(node, ins, flats, lean=True, inward=False)
    node, ins, flats = _single("layer_norm", "f32", [x, w, b], [1, eps, 1, 1])
    _agree_everywhere(node, ins, flats, [5], lean=True)
    _agree_everywhere(node, ins, flats, [CAP + 17, 2 * CAP + 63], lean=True, inward=False)
    # eps = 0 and zero variance: the rstd is unbounded above, the output any finite value
    node, ins, flats = _single("layer_norm_rstd", "f32", [x], [1, 0, 0, 0])
    assert R.window(node, ins, 2, gather(node, ins, flats, 2)).hi is None
    assert agree(node, ins, 2, gather(node, ins, flats, 2), f32_bits(3e30)) is True
    node, ins, flats = _single("layer_norm", "f32", [x, w, b], [1, 0, 1, 1])
    assert agree(node, ins, 2 * CAP, gather(node, ins, flats, 2 * CAP), f32_bits(-7.0)) is True
    node, ins, flats = _single("layer_norm", "f32", [_norm_rows(CAP + 1)], [1, eps, 0, 0])
    with reverts("rule: reduction too long"):
        onchain_reads(node, ins, 0)


def test_program_judge__layer_norm_gradients_at_the_cap_agree_and_longer_columns_revert():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(CAP, CAP, generator=g) + 2
    w, b = torch.randn(CAP, generator=g), torch.randn(CAP, generator=g)
    _, mean, rstd = torch.ops.aten.native_layer_norm.default(x, [CAP], w, b, 1e-5)
    go = torch.randn(CAP, CAP, generator=g)
    for op, indices in (("layer_norm_grad_input", [3, CAP * CAP - 1]), ("layer_norm_grad_weight", [0, 40]),
                        ("layer_norm_grad_bias", [9])):
        node, ins, flats = _single(op, "f32", [go, x, mean, rstd, w, b], [1, 7, 1, 1])
        assert max(len(i) for _, i in R.element_inputs(node, ins, indices[0])) == CAP
        _agree_everywhere(node, ins, flats, indices[:1], lean=True)
        _agree_everywhere(node, ins, flats, indices[1:], lean=True, inward=False)
    rows = torch.randn(CAP + 1, 4, generator=g)
    _, mean, rstd = torch.ops.aten.native_layer_norm.default(rows, [4], None, None, 1e-5)
    node, ins, flats = _single("layer_norm_grad_weight", "f32", [torch.randn(CAP + 1, 4), rows, mean, rstd,
                                                                  torch.ones(4), torch.zeros(4)], [1, 7, 1, 1])
    with reverts("rule: reduction too long"):
        onchain_reads(node, ins, 0)


def test_program_judge__group_norm_with_and_without_affine_at_the_cap_agree():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 4, 4, generator=g) * 2 + 0.5  # 2 groups of 4 channels x 16: rows of 64
    w, b = torch.randn(8, generator=g), torch.randn(8, generator=g)
    attrs = [2, 8, 16, 2, f32_bits(1e-5)]
    for op in ("group_norm_mean", "group_norm_rstd"):
        node, ins, flats = _single(op, "f32", [x], attrs + [0, 0])
        _agree_everywhere(node, ins, flats, [3], lean=True, inward=False)
    node, ins, flats = _single("group_norm", "f32", [x, w, b], attrs + [1, 1])
    _agree_everywhere(node, ins, flats, [200], lean=True)
    node, ins, flats = _single("group_norm", "f32", [x], attrs + [0, 0])
    _agree_everywhere(node, ins, flats, [100], lean=True, inward=False)


@pytest.mark.parametrize("classes", [7, CAP])
def test_program_judge__softmax_gradients_of_masked_rows_agree_and_longer_rows_revert(classes):
    g = torch.Generator().manual_seed(classes)
    z = torch.randn(2, classes, generator=g) * 3
    z[1, ::3] = float("-inf")
    go = torch.randn(2, classes, generator=g)
    for op, y in (("softmax_grad", torch.softmax(z, 1)), ("log_softmax_grad", torch.log_softmax(z, 1))):
        node, ins, flats = _single(op, "f32", [go, y], [1])
        _agree_everywhere(node, ins, flats, [classes], lean=True, inward=False)  # [1, 0] is masked
        _agree_everywhere(node, ins, flats, [classes + 1], lean=True)
    long = torch.randn(1, CAP + 1)
    node, ins, flats = _single("softmax_grad", "f32", [long, torch.softmax(long, 1)], [1])
    with reverts("rule: reduction too long"):
        onchain_reads(node, ins, 0)
    node, ins, flats = _single("log_softmax_grad", "f32", [go, torch.log_softmax(z, 1)], [1])
    values = gather(node, ins, flats, 0)
    for bad in (0x7FC00000, 0x7F800000):
        assert agree(node, ins, 0, [values[0], [bad]], int(flats[node.id][0])) == "revert"


@pytest.mark.parametrize("op", ["silu", "silu_backward", "tanh_backward", "sigmoid_backward"])
def test_program_judge__pointwise_calculus_ops_agree_at_extreme_arguments(op):
    x = torch.tensor([-0.0, 1e-42, -3.0, 20.0, -90.0, 100.0])
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    second = {"silu_backward": x, "tanh_backward": torch.tanh(x), "sigmoid_backward": torch.sigmoid(x)}
    node, ins, flats = _single(op, "f32", [x] if op == "silu" else [g, second[op]], ())
    _agree_everywhere(node, ins, flats, lean=True, inward=False)
    values = gather(node, ins, flats, 2)
    assert agree(node, ins, 2, [[0x7F800000]] + values[1:], int(flats[node.id][2])) == "revert"


# --------------------------------------------------------------------------------------------- chunks of long reductions


def onchain_chunk(node, ins, index, t0):
    n, reads = index_contract().chunk_inputs(descriptor(node), inputs(ins), index, t0)
    return int(n), [(int(p), [int(i) for i in idx]) for p, idx in reads]


def _join(chunks):
    """The chunks' reads concatenated list by list (a bias read, in the last chunk only, last)."""
    out: list = []
    for reads in chunks:
        for k, (pos, idx) in enumerate(reads):
            if k < len(out):
                assert out[k][0] == pos
                out[k][1].extend(idx)
            else:
                out.append((pos, list(idx)))
    return out


def _chunks_agree(node, ins, index) -> tuple[int, list]:
    """Every chunk of the element: the contract's (n, reads) equal the reference's; together they
    are the uncapped element_inputs.  Returns (n, the reads of each chunk)."""
    n = R.chunk_inputs(node, ins, index, 0)[0]
    chunks = []
    for t0 in range(0, n, CAP):
        want = R.chunk_inputs(node, ins, index, t0)
        assert want[0] == n
        assert onchain_chunk(node, ins, index, t0) == want, (node.op, node.id, index, t0)
        chunks.append(want[1])
    assert _join(chunks) == R.element_inputs(node, ins, index), (node.op, node.id, index)
    return n, chunks


def _border_elements(node) -> set[int]:
    """Elements at the corners and edges of a convolution's spatial plane (padding drops taps;
    for conv2d_grad_weight the plane is the kernel's: border taps drop output rows)."""
    if not node.op.startswith("conv2d") or len(node.shape) != 4:
        return set()
    n, c, h, w = node.shape
    spots = [(0, 0), (0, w // 2), (h - 1, w - 1), (h // 2, 0), (h - 1, 0)]
    return {((i * c + c // 2) * h + y) * w + x for i in {0, n - 1} for y, x in spots}


def test_program_judge__chunks_of_long_reductions_match_the_reference_and_join_to_the_reads(run):
    """Every dissectable node kind in the family: its longest node and another, a few elements
    (convolution borders among them), every chunk of each."""
    rng = random.Random(13)
    by_op: dict[str, list] = {}
    for node in run.nodes():
        if node.op in R.DISSECTABLE and node.dtype == "f32":
            by_op.setdefault(node.op, []).append(node)
    for op, nodes in sorted(by_op.items()):
        longest = max(nodes, key=lambda m: R.chunk_inputs(m, run.inputs(m), 0, 0)[0])
        for node in {longest, rng.choice(nodes)}:
            ins = run.inputs(node)
            picks = {0, node.numel - 1, rng.randrange(node.numel)} | _border_elements(node)
            for index in sorted(picks):
                n, chunks = _chunks_agree(node, ins, index)
                kind = R.DISSECTABLE[op]
                reads = R.element_inputs(node, ins, index)
                assert n == len(reads[0][1]) + (kind == "products" and len(reads) > 2)
                if max(len(idx) for _, idx in reads) <= CAP:  # k = 64 and a bias: two chunks, one read
                    assert onchain_reads(node, ins, index) == reads
                else:
                    with reverts("rule: reduction too long"):
                        onchain_reads(node, ins, index)


def test_program_judge__the_families_hold_reductions_of_several_chunks():
    """The real programs reach the long cases the chunk test covers: addmm and mm of 128 terms,
    sums of thousands, convolution gradients of hundreds (at the border elements), a conv2d whose last
    chunk is its bias alone."""
    longest: dict[str, int] = {}
    bias_alone = False
    for name in ("gpt", "cnn"):
        run = run_of(name)
        for node in run.nodes():
            if node.op in R.DISSECTABLE and node.dtype == "f32":
                ins = run.inputs(node)
                for index in {0, node.numel - 1}:
                    n, _ = R.chunk_inputs(node, ins, index, 0)
                    longest[node.op] = max(longest.get(node.op, 0), n)
                    if n > CAP and (n - 1) % CAP == 0 and R.DISSECTABLE[node.op] == "products":
                        bias_alone |= len(R.chunk_inputs(node, ins, index, n - 1)[1]) == 3
    assert longest["addmm"] > 2 * CAP and longest["mm"] >= 2 * CAP and longest["sum"] >= 64 * CAP
    assert longest["conv2d_grad_weight"] > 4 * CAP and longest["conv2d_grad_input"] >= 2 * CAP
    assert longest["conv2d_grad_bias"] >= 6 * CAP and bias_alone


@pytest.mark.parametrize("op", ["addmm", "conv2d"])
def test_program_judge__a_chunk_of_the_bias_alone_matches_the_reference(op):
    """k = 2·64 products and a bias: the last chunk holds term 128, the bias, with empty factor
    lists; the chunks before it no bias read."""
    g = torch.Generator().manual_seed(21)
    if op == "addmm":
        node, ins, _ = _single("addmm", "f32", [torch.randn(3, generator=g), torch.randn(2, 2 * CAP, generator=g),
                                                torch.randn(2 * CAP, 3, generator=g)], [])
    else:  # 1x1 kernel over 128 channels, padding 1: the border has no taps, the centre 128
        node, ins, _ = _single("conv2d", "f32", [torch.randn(1, 2 * CAP, 2, 2, generator=g),
                                                 torch.randn(2, 2 * CAP, 1, 1, generator=g), torch.randn(2, generator=g)],
                               [1, 1, 0, 0, 1, 1, 1, 1])
    for index in range(node.numel):
        n, chunks = _chunks_agree(node, ins, index)
        assert n == 2 * CAP + 1 and len(chunks) == 3
        assert [len(c) for c in chunks] == [2, 2, 3]
        assert chunks[2][0][1] == [] and chunks[2][1][1] == [] and len(chunks[2][2][1]) == 1


def test_program_judge__chunk_inputs_reverts_off_a_chunk_and_on_other_ops(gpt):
    node = next(m for m in gpt.nodes() if m.op == "addmm" and R.chunk_inputs(m, gpt.inputs(m), 0, 0)[0] > CAP)
    ins = gpt.inputs(node)
    n = R.chunk_inputs(node, ins, 0, 0)[0]
    for t0 in (1, CAP // 2, CAP + 1, -(-n // CAP) * CAP, n + CAP, 1 << 200):
        with pytest.raises(R.RuleError, match="no such chunk"):
            R.chunk_inputs(node, ins, 0, t0)
        with reverts("rule: no such chunk"):
            onchain_chunk(node, ins, 0, t0)
    with reverts("rule: index out of range"):
        onchain_chunk(node, ins, node.numel, 0)
    with pytest.raises(R.RuleError, match="index out of range"):
        R.chunk_inputs(node, ins, node.numel, 0)
    zoo = run_of("zoo")
    others = [(gpt, next(m for m in gpt.nodes() if m.op == op))
              for op in ("log_softmax", "layer_norm_grad_weight", "embedding_grad", "add", "layer_norm")]
    others += [(zoo, next(m for m in zoo.nodes() if m.op == "mean")),
               (zoo, next(m for m in zoo.nodes() if m.op == "sum" and m.dtype != "f32"))]  # an int64 sum
    for run, other in others:
        with pytest.raises(R.RuleError, match="not a dissectable reduction"):
            R.chunk_inputs(other, run.inputs(other), 0, 0)
        with reverts("rule: not a dissectable reduction"):
            onchain_chunk(other, run.inputs(other), 0, 0)


# --------------------------------------------------------------------------------------------- gas


def test_program_judge__every_op_at_the_cap_accepts_its_kernel_value_under_the_gas_budget():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import program_judge_gas as bench

    rows = bench.measure(bench.deploy())  # in boa, which meters the execution gas
    for name, size, used, verdict in rows:
        print(f"{name:<20} {size:<14} {used:>10,} gas")
        assert verdict, name
        assert used < bench.LIMIT, name
    for name, size, (node, ins, flats, index) in bench.cases():
        values = gather(node, ins, flats, index)
        assert R.check(node, ins, index, values, int(flats[node.id][index])), name
