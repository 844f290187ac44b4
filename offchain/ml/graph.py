"""Training-graph compiler and executor.

A model spec + softmax cross-entropy + SGD step is compiled into a flat list of nodes
``(id, op, inputs, shape, attrs)``.  The same executor runs training, replays segments and
re-derives the full per-node trace of one step for the dispute game, so those three always agree
bitwise on one machine.  Every reduction is one node with a full-size kernel (one BLAS call per
matmul, one sum per sum_rows).  The gas bound of an on-chain one-element re-computation does not
shape the graph: an element whose reduction is longer than ``REDUCTION_CAP`` terms is dissected
inside the reduction at dispute time (partial sums over chunks of ``REDUCTION_CAP`` terms, see
docs/judge.md §3.7 and docs/arbitration.md §4.4).

Op reference (``attrs`` are unsigned integers, part of the committed descriptor):

=================  ==================  =================================================
op                 inputs              meaning / attrs
=================  ==================  =================================================
param              ()                  parameter tensor; attrs = [canonical param index]
data_x             ()                  batch inputs (B, D) float32: dataset rows at the derived indices
data_y             ()                  batch labels (B,) int64
matmul             (A, B)              op(A)[:, k0:k1] @ op(B)[k0:k1, :]; attrs = [ta, tb, k0, k1]
                                       (the compiler emits k0 = 0, k1 = inner: the whole contraction)
add                (a, b)              a + b elementwise
add_bias           (z, b)              z + b[None, :]
relu               (z,)                max(z, 0)
relu_grad          (g, z)              g where z > 0 else 0
softmax_xent       (z, y)              per-row loss logsumexp(z_i) - z_i[y_i], shape (B,)
softmax_xent_grad  (z, y)              (softmax(z_i) - onehot(y_i)) / B
sum_rows           (g,)                sum over rows r0..r1 of g; attrs = [r0, r1] (compiler: 0, rows)
sgd                (p, g)              p - lr * g; attrs = [float32 bits of lr]
=================  ==================  =================================================
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

# cuBLAS is deterministic only with a fixed workspace (read when CUDA starts): a CUDA solver's replay
# of its own run must be bitwise (docs/proof-of-learning.md)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
from eth_abi import encode as abi_encode

from .commit import keccak256, merkle_root, sized_root, tensor_root
from .errors import GraphError
from .spec import ModelSpec

#: terms the one-step judge re-computes at most (contracts/Judge.vy MAX_REDUCTION); longer
#: reductions are dissected into chunks of this many terms in a dispute, never in the graph
REDUCTION_CAP = 64

OPS: tuple[str, ...] = (
    "param", "data_x", "data_y", "matmul", "add", "add_bias", "relu", "relu_grad",
    "softmax_xent", "softmax_xent_grad", "sum_rows", "sgd",
)
OP_CODES: dict[str, int] = {op: code for code, op in enumerate(OPS)}


def float32_bits(value: float) -> int:
    """IEEE-754 binary32 bit pattern (round to nearest) of ``value``."""
    return struct.unpack("<I", struct.pack("<f", value))[0]


def float32_value(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


@dataclass(frozen=True)
class Node:
    """One graph node; ``descriptor()`` is the canonical committed encoding."""

    id: int
    op: str
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    attrs: tuple[int, ...] = ()

    def descriptor(self) -> bytes:
        """``abi.encode(uint256 id, uint256 opcode, uint256[] inputs, uint256[] shape, uint256[] attrs)``."""
        return abi_encode(
            ["uint256", "uint256", "uint256[]", "uint256[]", "uint256[]"],
            [self.id, OP_CODES[self.op], list(self.inputs), list(self.shape), list(self.attrs)],
        )

    def hash(self) -> bytes:
        return keccak256(self.descriptor())

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class TrainingGraph:
    """A compiled SGD step; ``root`` is what a task commits as ``graph_root``."""

    nodes: tuple[Node, ...]
    param_names: tuple[str, ...]
    param_nodes: tuple[int, ...]
    output_nodes: tuple[int, ...]
    data_x_node: int
    data_y_node: int
    loss_node: int
    batch_size: int
    lr: float
    root: bytes = field(default=b"", compare=False)

    def node_hashes(self) -> list[bytes]:
        return [node.hash() for node in self.nodes]

    splits_reductions = True  # `Executor(split=...)` can evaluate its reductions in blocks

    def executor(self, precision: str = "float32", split: int | None = None) -> Executor:
        """What train, replay and verify run (a bound program answers the same call)."""
        return Executor(self, precision, split)

    def work(self) -> dict[str, int]:
        """FLOPs of one step counted as `Program.work` counts a program's: 2·m·n·k per matmul, one per
        output element of every other op, none for the leaves (what the web app prices a task by)."""
        flops = 0
        for node in self.nodes:
            if node.op == "matmul":
                flops += 2 * node.numel * (node.attrs[3] - node.attrs[2])
            elif node.op not in ("param", "data_x", "data_y"):
                flops += node.numel
        return {"flops": flops, "nodes": len(self.nodes)}

    def max_reduction(self) -> int:
        """Longest reduction any single node performs (terms of one output element)."""
        longest = 1
        for node in self.nodes:
            if node.op == "matmul":
                longest = max(longest, node.attrs[3] - node.attrs[2])
            elif node.op == "sum_rows":
                longest = max(longest, node.attrs[1] - node.attrs[0])
        return longest


def graph_root(nodes: Sequence[Node]) -> bytes:
    """``keccak256(merkle_root(keccak256(descriptor_i)) ‖ uint256(n_nodes))``."""
    return sized_root(merkle_root([node.hash() for node in nodes]), len(nodes))


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, op: str, inputs: tuple[int, ...], shape: tuple[int, ...], attrs: tuple[int, ...] = ()) -> int:
        node = Node(len(self.nodes), op, inputs, shape, attrs)
        self.nodes.append(node)
        return node.id

    def shape(self, node_id: int) -> tuple[int, ...]:
        return self.nodes[node_id].shape

    def matmul(self, a: int, b: int, ta: bool, tb: bool) -> int:
        a_shape, b_shape = self.shape(a), self.shape(b)
        rows, inner = (a_shape[1], a_shape[0]) if ta else a_shape
        inner_b, cols = (b_shape[1], b_shape[0]) if tb else b_shape
        if inner != inner_b:
            raise GraphError(f"matmul contraction mismatch {inner} vs {inner_b}")
        return self.add("matmul", (a, b), (rows, cols), (int(ta), int(tb), 0, inner))

    def sum_rows(self, g: int) -> int:
        rows, cols = self.shape(g)
        return self.add("sum_rows", (g,), (cols,), (0, rows))


def compile_training_graph(spec: ModelSpec, batch_size: int, lr: float) -> TrainingGraph:
    """Forward, softmax cross-entropy, backward and SGD update as one flat node list; every
    reduction is one node over its whole length."""
    if batch_size < 1:
        raise GraphError("batch_size must be positive")
    lr_bits = float32_bits(lr)
    builder = _Builder()
    shapes = spec.param_shapes()
    names = tuple(shapes)
    param_ids = {
        name: builder.add("param", (), shape, (index,)) for index, (name, shape) in enumerate(shapes.items())
    }
    x = builder.add("data_x", (), (batch_size, spec.input_dim))
    y = builder.add("data_y", (), (batch_size,))

    # Forward: remember each linear layer's input and each relu's pre-activation.
    activation = x
    linear_inputs: dict[int, int] = {}
    relu_inputs: dict[int, int] = {}
    for index, layer in enumerate(spec.layers):
        if layer.type == "linear":
            linear_inputs[index] = activation
            z = builder.matmul(activation, param_ids[f"l{index}.weight"], ta=False, tb=True)
            activation = builder.add("add_bias", (z, param_ids[f"l{index}.bias"]), builder.shape(z))
        elif layer.type == "relu":
            relu_inputs[index] = activation
            activation = builder.add("relu", (activation,), builder.shape(activation))
        else:  # pragma: no cover - spec validation forbids it
            raise GraphError(f"layer type {layer.type!r} not compilable")
    logits = activation
    loss = builder.add("softmax_xent", (logits, y), (batch_size,))
    grad = builder.add("softmax_xent_grad", (logits, y), builder.shape(logits))

    # Backward.
    param_grads: dict[str, int] = {}
    for index in range(len(spec.layers) - 1, -1, -1):
        layer = spec.layers[index]
        if layer.type == "relu":
            grad = builder.add("relu_grad", (grad, relu_inputs[index]), builder.shape(grad))
            continue
        layer_input = linear_inputs[index]
        param_grads[f"l{index}.weight"] = builder.matmul(grad, layer_input, ta=True, tb=False)
        param_grads[f"l{index}.bias"] = builder.sum_rows(grad)
        if layer_input != x:
            grad = builder.matmul(grad, param_ids[f"l{index}.weight"], ta=False, tb=False)

    outputs = tuple(
        builder.add("sgd", (param_ids[name], param_grads[name]), shapes[name], (lr_bits,)) for name in names
    )
    nodes = tuple(builder.nodes)
    return TrainingGraph(
        nodes=nodes,
        param_names=names,
        param_nodes=tuple(param_ids[name] for name in names),
        output_nodes=outputs,
        data_x_node=x,
        data_y_node=y,
        loss_node=loss,
        batch_size=batch_size,
        lr=float32_value(lr_bits),
        root=graph_root(nodes),
    )


# --------------------------------------------------------------------------------------------
# Execution


def _deterministic(mode: bool) -> None:
    """Deterministic kernels on or off. (`torch.use_deterministic_algorithms` also sets the
    compiler's flag, importing the whole compiler stack on first use, seconds of a worker's first
    replay; nothing here compiles.)"""
    torch._C._set_deterministic_algorithms(mode)


@contextlib.contextmanager
def execution_context(num_threads: int | None = 1) -> Iterator[None]:
    """Deterministic torch algorithms and a fixed intra-op thread count, restored afterwards.

    The thread count is part of what makes a run bitwise reproducible on one machine (BLAS may
    split reductions differently with more threads), so training and replay must use the same one.
    """
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    _deterministic(True)
    # the numeric contract (docs/judge.md §1): full float32 multiplies, never TF32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        _deterministic(previous_deterministic)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous_tf32


Values = list
Kernel = Callable[[Values], torch.Tensor]


def _blocked(partial: Callable[[Values, int, int], torch.Tensor], k0: int, k1: int, split: int) -> Kernel:
    """Partial results over blocks of ``split`` terms, folded left to right (another honest
    summation order: what a graph chunked at ``split`` computed)."""
    starts = list(range(k0, k1, split))

    def kernel(v: Values) -> torch.Tensor:
        total = partial(v, starts[0], min(starts[0] + split, k1))
        for start in starts[1:]:
            total = total + partial(v, start, min(start + split, k1))
        return total

    return kernel


def _matmul_kernel(a: int, b: int, ta: int, tb: int, k0: int, k1: int, inner: int, split: int | None) -> Kernel:
    whole = k0 == 0 and k1 == inner
    mm = torch.mm
    if whole and (split is None or inner <= split):
        if not ta and tb:
            return lambda v: mm(v[a], v[b].t())
        if ta and not tb:
            return lambda v: mm(v[a].t(), v[b])
        if not ta and not tb:
            return lambda v: mm(v[a], v[b])
        return lambda v: mm(v[a].t(), v[b].t())

    def partial(v: Values, lo: int, hi: int) -> torch.Tensor:
        left = v[a].t() if ta else v[a]
        right = v[b].t() if tb else v[b]
        return mm(left.narrow(1, lo, hi - lo), right.narrow(0, lo, hi - lo))

    if split is None:
        return lambda v: partial(v, k0, k1)
    return _blocked(partial, k0, k1, split)


def _build_kernel(node: Node, graph: TrainingGraph, dtype: torch.dtype, split: int | None = None) -> Kernel:
    op, ins = node.op, node.inputs
    if op == "matmul":
        ta, tb, k0, k1 = node.attrs
        a_shape = graph.nodes[ins[0]].shape
        inner = a_shape[0] if ta else a_shape[1]
        return _matmul_kernel(ins[0], ins[1], ta, tb, k0, k1, inner, split)
    if op == "add" or op == "add_bias":
        a, b = ins
        return lambda v: v[a] + v[b]
    if op == "relu":
        (a,) = ins
        return lambda v: torch.relu(v[a])
    if op == "relu_grad":
        g, z = ins
        threshold_backward = torch.ops.aten.threshold_backward
        return lambda v: threshold_backward(v[g], v[z], 0.0)
    if op == "softmax_xent":
        z, y = ins
        return lambda v: F.cross_entropy(v[z], v[y], reduction="none")
    if op == "softmax_xent_grad":
        z, y = ins
        rows = node.shape[0]
        minus_one = torch.full((rows, 1), -1.0, dtype=dtype)

        def softmax_xent_grad(v: Values) -> torch.Tensor:
            probs = torch.softmax(v[z], 1)
            one = minus_one if probs.device == minus_one.device else minus_one.to(probs.device)
            probs.scatter_add_(1, v[y].view(rows, 1), one)
            return probs.div_(rows)

        return softmax_xent_grad
    if op == "sum_rows":
        (g,) = ins
        r0, r1 = node.attrs
        if split is not None and r1 - r0 > split:
            return _blocked(lambda v, lo, hi: v[g].narrow(0, lo, hi - lo).sum(0), r0, r1, split)
        if r0 == 0 and r1 == graph.nodes[g].shape[0]:
            return lambda v: v[g].sum(0)
        return lambda v: v[g].narrow(0, r0, r1 - r0).sum(0)
    if op == "sgd":
        p, g = ins
        alpha = -float32_value(node.attrs[0])
        return lambda v: torch.add(v[p], v[g], alpha=alpha)
    raise GraphError(f"node {node.id}: op {op!r} is not executable")


@dataclass
class StepOutput:
    """Result of one step: new parameters (canonical order), per-row losses, optional trace."""

    params: list[torch.Tensor]
    loss_rows: torch.Tensor
    trace: list[torch.Tensor] | None = None


class Executor:
    """Runs a compiled graph with plain torch float32 ops, one kernel closure per node.

    ``precision="float64"`` evaluates each node in float64 and rounds its output to float32, and
    ``split=s`` evaluates every reduction longer than ``s`` as partial results over blocks of ``s``
    terms folded left to right: different-but-honest executions (another summation order), used
    to profile the verifier's distance threshold and to measure what chunked graphs cost.
    """

    def __init__(self, graph: TrainingGraph, precision: str = "float32", split: int | None = None) -> None:
        if precision not in ("float32", "float64"):
            raise GraphError(f"unknown precision {precision!r}")
        if split is not None and split < 1:
            raise GraphError("split must be positive")
        self.graph = graph
        self.precision = precision
        dtype = torch.float32 if precision == "float32" else torch.float64
        inputs = {"param", "data_x", "data_y"}
        self._plan: list[tuple[int, Kernel]] = [
            (node.id, _build_kernel(node, graph, dtype, split)) for node in graph.nodes if node.op not in inputs
        ]
        self._size = len(graph.nodes)
        # what a step frees after each node: the values no later node reads
        kept = {*graph.output_nodes, graph.loss_node}
        last_use = {i: node.id for node in graph.nodes for i in node.inputs}
        self._free: dict[int, list[int]] = {}
        for value, user in last_use.items():
            if value not in kept:
                self._free.setdefault(user, []).append(value)

    def run(
        self,
        params: Sequence[torch.Tensor],
        x_batch: torch.Tensor,
        y_batch: torch.Tensor,
        keep_trace: bool = False,
        step: int = 0,
        on_node: Callable[[int, torch.Tensor], None] | None = None,
        consume: bool = False,
    ) -> StepOutput:
        """One SGD step (``step`` and ``consume`` are unused: a compiled graph has no per-step
        inputs and never writes into its parameters). In float32
        every value is freed after its last use unless the trace is kept; ``on_node(node, output)``
        is given every node's output as it is computed (the trace streamed instead of kept)."""
        graph = self.graph
        values: list = [None] * self._size
        if self.precision == "float64":
            params = [p.double() for p in params]
            x_batch = x_batch.double()
        for node_id, tensor in zip(graph.param_nodes, params):
            values[node_id] = tensor
        values[graph.data_x_node] = x_batch
        values[graph.data_y_node] = y_batch
        if self.precision == "float32":
            free = {} if keep_trace else self._free
            if on_node is not None:
                for node_id, value in enumerate(values):
                    if value is not None:
                        on_node(node_id, value.contiguous())
            for node_id, kernel in self._plan:
                values[node_id] = kernel(values)
                if on_node is not None:
                    on_node(node_id, values[node_id].contiguous())
                for freed in free.get(node_id, ()):
                    values[freed] = None
            on_node = None
        else:
            for node_id, kernel in self._plan:
                values[node_id] = kernel(values).float().double()
            values = [t if t.dtype == torch.int64 else t.float() for t in values]
        new_params = [values[node_id] for node_id in graph.output_nodes]
        if on_node is not None:
            for node_id, value in enumerate(values):
                on_node(node_id, value.contiguous())
        return StepOutput(new_params, values[graph.loss_node], values if keep_trace else None)


def execute_step(
    graph: TrainingGraph,
    params: Sequence[torch.Tensor],
    x_batch: torch.Tensor,
    y_batch: torch.Tensor,
    keep_trace: bool = False,
) -> StepOutput:
    """One-off convenience wrapper around :class:`Executor`."""
    return Executor(graph).run(params, x_batch, y_batch, keep_trace)


def trace_roots(trace: Sequence[torch.Tensor]) -> list[bytes]:
    """Per-node output roots in node id order (a program's bool outputs are committed as int64 0/1)."""
    return [tensor_root(t if t.dtype != torch.bool else t.to(torch.int64)) for t in trace]


def trace_root(trace: Sequence[torch.Tensor]) -> bytes:
    """Step-trace commitment: Merkle root over the node-output roots in node id order."""
    return merkle_root(trace_roots(trace))
