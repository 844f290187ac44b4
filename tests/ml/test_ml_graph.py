from __future__ import annotations

import weakref

import pytest
import torch
from eth_abi import encode as abi_encode

from offchain.ml import (
    REDUCTION_CAP,
    BatchSampler,
    Executor,
    GraphError,
    compile_training_graph,
    execution_context,
    init_weights,
    keccak256,
    mlp_spec,
    synthetic_dataset,
    trace_root,
)
from offchain.ml.graph import OP_CODES, float32_value


@pytest.fixture(scope="module")
def tiny(compiled_tiny):
    """This file tests the compiled graph: the tiny task's MLP compiled."""
    return compiled_tiny


def torch_reference_step(spec, params, x, y, lr):
    """Plain nn.Module + autograd + torch.optim.SGD, independent of the graph compiler."""
    layers = []
    width = spec.input_dim
    for layer in spec.layers:
        if layer.type == "linear":
            layers.append(torch.nn.Linear(width, layer.out))
            width = layer.out
        else:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for index, module in enumerate(model):
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(params[f"l{index}.weight"])
                module.bias.copy_(params[f"l{index}.bias"])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    out = {}
    for index, module in enumerate(model):
        if isinstance(module, torch.nn.Linear):
            out[f"l{index}.weight"] = module.weight.detach()
            out[f"l{index}.bias"] = module.bias.detach()
    return out, float(loss.detach())


@pytest.mark.parametrize("hidden", [(16,), (24, 12), ()])
def test_graph_matches_autograd(hidden):
    spec = mlp_spec(20, hidden, 5)
    data = synthetic_dataset(64, 20, 5, seed=3)
    params = init_weights(spec, 1)
    graph = compile_training_graph(spec, 16, 0.25)
    executor = Executor(graph)
    current = [params[n] for n in spec.param_names]
    reference = dict(params)
    for step in range(5):
        x, y = data.x[step * 8 : step * 8 + 16], data.y[step * 8 : step * 8 + 16]
        output = executor.run(current, x, y)
        current = output.params
        reference, loss = torch_reference_step(spec, reference, x, y, 0.25)
        assert float(output.loss_rows.mean()) == pytest.approx(loss, rel=1e-5)
    for name, tensor in zip(spec.param_names, current):
        torch.testing.assert_close(tensor, reference[name], rtol=1e-5, atol=1e-6)


def test_bitwise_replay_and_trace(tiny):
    graph, names = tiny.graph, tiny.spec.param_names
    sampler = BatchSampler(tiny.task.seed, tiny.task.batch_size, tiny.dataset)
    params = [tiny.weights[n] for n in names]
    with execution_context(1):
        first = Executor(graph).run(params, *sampler.batch(3), keep_trace=True)
        second = Executor(graph).run(params, *sampler.batch(3), keep_trace=True)
    assert first.trace is not None and second.trace is not None
    assert len(first.trace) == len(graph.nodes)
    for a, b, node in zip(first.trace, second.trace, graph.nodes):
        assert torch.equal(a, b)
        assert tuple(a.shape) == node.shape
    assert trace_root(first.trace) == trace_root(second.trace)
    assert [first.trace[i] for i in graph.output_nodes] == first.params


def test_executor__frees_every_value_after_its_last_use_unless_the_trace_is_kept(tiny):
    graph, names = tiny.graph, tiny.spec.param_names
    batch = BatchSampler(tiny.task.seed, tiny.task.batch_size, tiny.dataset).batch(0)
    params = [tiny.weights[n] for n in names]

    def live_at_last_kernel(keep_trace: bool) -> int:
        executor, outputs, live = Executor(graph), [], []
        wrapped = []
        for node_id, kernel in executor._plan:
            def recording(values, kernel=kernel):
                out = kernel(values)
                outputs.append(weakref.ref(out))
                return out
            wrapped.append((node_id, recording))
        last_id, last = wrapped[-1]
        wrapped[-1] = (last_id, lambda values: live.append(sum(r() is not None for r in outputs)) or last(values))
        executor._plan = wrapped
        with execution_context(1):
            result = executor.run(params, *batch, keep_trace=keep_trace)
        assert torch.equal(result.params[0], Executor(graph).run(params, *batch).params[0])
        return live[0]

    kept, freed = live_at_last_kernel(True), live_at_last_kernel(False)
    assert kept == len(graph.nodes) - len(names) - 3  # every computed value but the last
    assert freed <= len(graph.output_nodes) + 2


def test_descriptor_encoding_and_root():
    spec = mlp_spec(8, (4,), 3)
    graph = compile_training_graph(spec, 8, 0.1)
    node = graph.nodes[-1]
    assert node.op == "sgd" and float32_value(node.attrs[0]) == pytest.approx(0.1)
    expected = abi_encode(["uint256", "uint256", "uint256[]", "uint256[]", "uint256[]"],
                          [node.id, OP_CODES["sgd"], list(node.inputs), list(node.shape), list(node.attrs)])
    assert node.descriptor() == expected and node.hash() == keccak256(expected)
    assert graph.root == compile_training_graph(spec, 8, 0.1).root
    assert graph.root != compile_training_graph(spec, 8, 0.2).root
    assert graph.root != compile_training_graph(spec, 4, 0.1).root
    for node in graph.nodes:
        assert all(i < node.id for i in node.inputs)  # topological by construction


def test_long_reductions_are_one_node_and_blocked_execution_matches():
    """Every reduction is one node over its whole length (full-size kernels); executing it in blocks
    (another honest summation order: what graphs chunked at 64 or 7 computed) gives close results."""
    spec = mlp_spec(150, (70,), 4)  # contractions 150 (forward), 70 (backward), 130 (batch)
    data = synthetic_dataset(200, 150, 4, seed=5)
    params = [init_weights(spec, 2)[n] for n in spec.param_names]
    graph = compile_training_graph(spec, 130, 0.1)
    assert graph.max_reduction() == 150 > REDUCTION_CAP
    assert not any(n.op == "add" for n in graph.nodes)
    assert sum(n.op == "matmul" for n in graph.nodes) == 5 and sum(n.op == "sum_rows" for n in graph.nodes) == 2
    for node in graph.nodes:
        if node.op == "matmul":
            ta, tb, k0, k1 = node.attrs
            a_shape = graph.nodes[node.inputs[0]].shape
            assert (k0, k1) == (0, a_shape[0] if ta else a_shape[1])
        if node.op == "sum_rows":
            assert node.attrs == (0, 130)
    x, y = data.x[:130], data.y[:130]
    whole = Executor(graph).run(params, x, y)
    for split in (REDUCTION_CAP, 7):
        blocked = Executor(graph, split=split).run(params, x, y)
        for left, right in zip(blocked.params, whole.params):
            torch.testing.assert_close(left, right, rtol=1e-5, atol=1e-6)
    with pytest.raises(GraphError):
        Executor(graph, split=0)


def test_float64_variant_is_close_but_honest(tiny):
    names = tiny.spec.param_names
    sampler = BatchSampler(tiny.task.seed, tiny.task.batch_size, tiny.dataset)
    params = [tiny.weights[n] for n in names]
    a = Executor(tiny.graph).run(params, *sampler.batch(0))
    b = Executor(tiny.graph, precision="float64").run(params, *sampler.batch(0))
    for left, right in zip(a.params, b.params):
        assert right.dtype == torch.float32
        torch.testing.assert_close(left, right, rtol=1e-5, atol=1e-6)


def test_compile_errors():
    with pytest.raises(GraphError):
        compile_training_graph(mlp_spec(4, (), 2), 0, 0.1)
    with pytest.raises(GraphError):
        Executor(compile_training_graph(mlp_spec(4, (), 2), 2, 0.1), precision="float16")
