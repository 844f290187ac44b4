"""Real training steps: every element of every node passes the judge; a corrupted element is found and fails."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
import torch
from judge_testing import onchain, onchain_long, reference

from offchain.dispute import judge as J
from offchain.ml import Executor, execution_context, make_task, mlp_spec, synthetic_dataset
from offchain.ml.train import BatchSampler, step_trace

# the hand-written MLP compiler emits every op but the pointwise ops of captured graphs, and no
# longer `add` (no folds of partial nodes; test_judge_linear covers it)
JUDGED = set(J.OP_CODES) - set(J.POINTWISE)
EMITTED = JUDGED - {"add"}


@functools.cache
def small_task(name: str = "long"):
    """"long": 20-70-3 MLP, batch 72: the first layer (20 terms) and the backward product
    through the logits (3 terms) fit the judge, the second layer (70 terms), the weight gradients
    and the bias gradients (72 rows) are dissected; "short": 8-8-3, batch 8, nothing is."""
    if name == "short":
        return make_task(mlp_spec(8, (8,), 3), synthetic_dataset(64, 8, 3, seed=11), steps=4, k=2,
                         batch_size=8, lr=0.2, seed=7)
    return make_task(mlp_spec(20, (70,), 3), synthetic_dataset(128, 20, 3, seed=11), steps=4, k=2,
                     batch_size=72, lr=0.2, seed=7)


def _params(demo):
    return [demo.weights[name] for name in demo.graph.param_names]


def _trace(demo, precision: str = "float32", threads: int = 1, step: int = 0):
    if precision == "float32" and threads == 1:
        return step_trace(demo.graph, demo.task, demo.dataset, demo.weights, step).trace
    x, y = BatchSampler(demo.task.seed, demo.task.batch_size, demo.dataset).batch(step)
    with execution_context(threads):
        return Executor(demo.graph, precision).run(_params(demo), x, y, keep_trace=True).trace


def _judged_nodes(graph):
    return [node for node in graph.nodes if node.op in JUDGED]


def _node_inputs(node, trace):
    return [trace[i] for i in node.inputs]


@pytest.mark.parametrize("name", ["short", "long"])
def test_judge_every_element_of_a_real_step_passes(name):
    """Every element, including every element of every dissected reduction (honest partials:
    each chunk is exact by construction, the fold check is the verdict)."""
    demo = small_task(name)
    trace = _trace(demo)
    ops = set()
    count = long = 0
    for node in _judged_nodes(demo.graph):
        inputs = _node_inputs(node, trace)
        for index in range(trace[node.id].numel()):
            call = J.judge_inputs(node, inputs, trace[node.id], index)
            assert J.element_verdict(call), (node, index)
            count += 1
            long += len(call.a) > J.MAX_REDUCTION
        ops.add(node.op)
    assert ops == EMITTED and count > 300
    assert (long > 1000) == (name == "long")


@pytest.mark.parametrize("precision,threads", [("float64", 1), ("float32", 2)])
def test_judge_other_honest_executions_pass(precision, threads):
    for name in ("short", "long"):
        demo = small_task(name)
        trace = _trace(demo, precision, threads, step=1)
        for node in _judged_nodes(demo.graph):
            assert J.find_inconsistent_element(node, _node_inputs(node, trace), trace[node.id]) is None, node


def test_judge_digits_step_passes_reference():
    from offchain.ml import digits_dataset

    demo = make_task(mlp_spec(64, (32,), 10), digits_dataset(), steps=2, k=1, batch_size=32, lr=0.1, seed=1)
    trace = _trace(demo)
    assert demo.graph.max_reduction() == 64  # 64 features, batch 32: nothing to dissect
    for node in _judged_nodes(demo.graph):
        assert J.find_inconsistent_element(node, _node_inputs(node, trace), trace[node.id]) is None, node


def test_judge_real_step_sampled_on_chain():
    demo = small_task()
    trace = _trace(demo)
    rng = random.Random(4)
    for node in _judged_nodes(demo.graph):
        inputs = _node_inputs(node, trace)
        index = rng.randrange(trace[node.id].numel())
        call = J.judge_inputs(node, inputs, trace[node.id], index)
        if len(call.a) > J.MAX_REDUCTION:
            assert onchain_long(call) == (True, True), node
        else:
            assert onchain(call) is True, node


def _corrupt(t: torch.Tensor, index: int, op: str) -> torch.Tensor:
    bad = t.clone()
    flat = bad.view(-1)
    old = float(flat[index])
    if op in ("relu", "relu_grad"):
        flat[index] = old + 2.0 ** -20 if old != 0 else 1e-6
    else:
        flat[index] = float(np.float32(old * (1 + 2.0 ** -12) + np.sign(old or 1.0) * 2.0 ** -20))
    return bad


def test_judge_corrupted_element_is_found_and_fails_on_chain():
    demo = small_task()
    trace = _trace(demo)
    rng = random.Random(8)
    seen = set()
    for node in _judged_nodes(demo.graph):
        if node.op in seen:
            continue
        seen.add(node.op)
        inputs = _node_inputs(node, trace)
        index = rng.randrange(trace[node.id].numel())
        bad = _corrupt(trace[node.id], index, node.op)
        found = J.find_inconsistent_element(node, inputs, bad)
        assert found == index, (node, index, found)
        call = J.judge_inputs(node, inputs, bad, found)
        if len(call.a) > J.MAX_REDUCTION:
            # honest partials: every chunk is right, the fold rejects the claim
            assert onchain_long(call) == (True, False) and J.element_verdict(call) is False, node
            assert reference(call) == "revert"  # Judge.check itself takes at most 64 terms
        else:
            assert onchain(call) is False and reference(call) is False, node
    assert seen == EMITTED


def test_judge_inputs_layout():
    demo = small_task()
    trace = _trace(demo)
    node = next(n for n in demo.graph.nodes if n.op == "matmul" and n.attrs[0] == 1)  # dW = g^T a, whole
    ta, tb, k0, k1 = node.attrs
    out = trace[node.id]
    index = out.numel() - 1
    call = J.judge_inputs(node, _node_inputs(node, trace), out, index)
    i, j = divmod(index, out.shape[1])
    left = trace[node.inputs[0]].t()[i, k0:k1]
    right = trace[node.inputs[1]][k0:k1, j]
    assert call.a == tuple(int(v) for v in left.contiguous().numpy().view(np.uint32))
    assert call.b == tuple(int(v) for v in right.contiguous().numpy().view(np.uint32))
    assert len(call.a) == k1 - k0 == demo.task.batch_size == 72
    with pytest.raises(J.JudgeError):
        J.judge_inputs(node, _node_inputs(node, trace), out, out.numel())
