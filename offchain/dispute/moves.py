"""Calldata of every move of the dispute game (`contracts/Arbitration.vy`), built from the
off-chain objects: the task (`TrainingTask`), the compiled graph, the dataset, the solver's
state roots and step trace.

Every proof follows the commitment rules of docs/proof-of-learning.md §4 and is built with
`offchain.ml.commit` (`merkle_range_proof`, `tensor_range_proof`, `dataset_row_proof`, ...);
the one addition is the *multiproof* (`multiproof`): a sorted set of leaves with the siblings
level by level, bottom-up, left to right. For a contiguous range it is exactly
`merkle_range_proof`; the contract verifies both with one routine (`arbitration/merkle.vy`).

Each builder returns a tuple of arguments in the order of the contract function it is named
after, with structs as tuples, ready for `contract.fn(*args)` (titanoboa) or web3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from offchain.ml.commit import (
    LEAF_BYTES,
    ZERO_HASH,
    dataset_row_proof,
    keccak256,
    leaf_hashes,
    leaf_length,
    merkle_root,
    tensor_bytes,
    tree_depth,
)
from offchain.ml.graph import OP_CODES, Node, TrainingGraph
from offchain.ml.graph import trace_roots
from offchain.ml.task import TrainingTask

# mirror of contracts/Arbitration.vy constants
MAX_POINTS = 256            # intervals one dissection move reveals (k + 1 <= 257 roots)
MAX_OPEN_NODES = 65         # nodes one graph / trace opening proves
MAX_NODE_SIBLINGS = 128     # siblings of one graph / trace opening
MAX_OPEN_LEAVES = 16        # tensor leaves one opening proves
MAX_DEMAND = 512            # elements one data-availability demand may ask for
MAX_DEMANDS = 64            # demands per dispute
MAX_PARTIALS = 256          # partials one post of the dissection inside a reduction commits
ANSWER_GAS = 400_000        # demand fee: gas an answer costs at most, plus ...
ANSWER_ELEMENT_GAS = 2_200  # ... this per element demanded
FEE_MARGIN = 2              # times the base fee of the demand's block

OP_PARAM, OP_DATA_X, OP_DATA_Y, OP_SGD = (OP_CODES[n] for n in ("param", "data_x", "data_y", "sgd"))


class MoveError(ValueError):
    """The requested move cannot be built from the given data."""


# ---------------------------------------------------------------------------------------------
# Multiproofs


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All levels bottom-up, each padded with the all-zero subtree hash to an even length."""
    level = list(leaves)
    levels = []
    zero = ZERO_HASH
    while len(level) > 1:
        if len(level) & 1:
            level = level + [zero]
        levels.append(level)
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        zero = keccak256(zero + zero)
    levels.append(level)
    return levels


def _sibling_positions(count: int, indices: Sequence[int]) -> list[tuple[int, int]]:
    """(level, position) of each sibling a multiproof of the strictly increasing ``indices`` of a
    tree over ``count`` leaves carries, in its order."""
    if not indices or any(b <= a for a, b in pairwise(indices)) or indices[-1] >= count:
        raise MoveError("multiproof indices must be increasing and inside the tree")
    known = list(indices)
    positions: list[tuple[int, int]] = []
    for level in range(tree_depth(count)):
        parents = []
        i = 0
        while i < len(known):
            position = known[i]
            if position % 2 == 0 and i + 1 < len(known) and known[i + 1] == position + 1:
                i += 2
            else:
                positions.append((level, position ^ 1))
                i += 1
            parents.append(position // 2)
        known = parents
    return positions


def multiproof(leaves: Sequence[bytes], indices: Sequence[int]) -> list[bytes]:
    """Siblings proving the leaves at the strictly increasing ``indices`` of the tree over ``leaves``."""
    positions = _sibling_positions(len(leaves), indices)
    levels = _levels(leaves)
    return [levels[level][position] for level, position in positions]


def opening_runs(count: int, ids: Sequence[int]) -> list[list[int]]:
    """``ids`` cut, in order, into the fewest runs a greedy cut gives, each increasing and within one
    opening of a tree over ``count`` leaves (MAX_OPEN_NODES leaves, MAX_NODE_SIBLINGS siblings)."""
    runs: list[list[int]] = []
    for i in ids:
        run = runs[-1] if runs else None
        if (run is None or i <= run[-1] or len(run) == MAX_OPEN_NODES
                or len(_sibling_positions(count, [*run, i])) > MAX_NODE_SIBLINGS):
            runs.append([i])
        else:
            run.append(i)
    return runs


def multi_root(indices: Sequence[int], hashes: Sequence[bytes], siblings: Sequence[bytes], count: int) -> bytes | None:
    """Reference of `merkle._multi_root`: the implied root, or None when the proof is malformed
    (including a sibling covering only padding that is not the all-zero subtree)."""
    n = len(indices)
    if n == 0 or n != len(hashes) or count == 0 or count >= 1 << 64 or indices[-1] >= count:
        return None
    if any(b <= a for a, b in pairwise(indices)):
        return None
    idx, nodes, used = list(indices), list(hashes), 0
    zero = ZERO_HASH
    for level in range(tree_depth(count)):
        new_idx, new_nodes, read = [], [], 0
        while read < len(idx):
            position, node = idx[read], nodes[read]
            if position % 2 == 0:
                if read + 1 < len(idx) and idx[read + 1] == position + 1:
                    parent = keccak256(node + nodes[read + 1])
                    read += 2
                else:
                    if used >= len(siblings) or ((position + 1) << level >= count and siblings[used] != zero):
                        return None
                    parent = keccak256(node + siblings[used])
                    used += 1
                    read += 1
            else:
                if used >= len(siblings):
                    return None
                parent = keccak256(siblings[used] + node)
                used += 1
                read += 1
            new_idx.append(position // 2)
            new_nodes.append(parent)
        idx, nodes = new_idx, new_nodes
        zero = keccak256(zero + zero)
    if used != len(siblings) or len(nodes) != 1:
        return None
    return nodes[0]


# ---------------------------------------------------------------------------------------------
# Openings (struct tuples in the field order of contracts/arbitration/structs.vy)


def commitments(task: TrainingTask) -> tuple:
    """`Commitments`: the task's `commitments()`, which hash to its spec_hash."""
    return tuple(task.commitments())


def descriptor(node: Node) -> tuple:
    """`Descriptor` (id, op, inputs, shape, attrs)."""
    return (node.id, OP_CODES[node.op], list(node.inputs), list(node.shape), list(node.attrs))


def graph_opening(graph: TrainingGraph, ids: Sequence[int]) -> tuple:
    """`GraphOpening`: the descriptors of nodes ``ids`` (increasing) proven against graph_root."""
    ids = sorted(set(ids))
    hashes = graph.node_hashes()
    return (len(graph.nodes), [descriptor(graph.nodes[i]) for i in ids], multiproof(hashes, ids))


def trace_opening(roots: Sequence[bytes], ids: Sequence[int]) -> tuple:
    """`TraceOpening`: the output tensor roots of nodes ``ids`` proven against the trace root."""
    ids = sorted(set(ids))
    return ([roots[i] for i in ids], multiproof(list(roots), ids))


def _itemsize(tensor: torch.Tensor) -> int:
    return 8 if tensor.dtype == torch.int64 else 4


def tensor_opening(tensor: torch.Tensor, elements: Sequence[int]) -> tuple:
    """`TensorOpening`: the 2 KiB leaves holding the flat ``elements`` of ``tensor``, with a multiproof."""
    data = tensor_bytes(tensor)
    size = _itemsize(tensor)
    positions = sorted({e * size // LEAF_BYTES for e in elements}) or [0]
    if len(positions) > MAX_OPEN_LEAVES:
        raise MoveError(f"{len(positions)} leaves exceed one opening ({MAX_OPEN_LEAVES})")
    padded = data + bytes(-len(data) % 32)
    leaves = [padded[p * LEAF_BYTES:(p + 1) * LEAF_BYTES] for p in positions]
    assert all(len(leaf) == leaf_length(len(data), p) for leaf, p in zip(leaves, positions))
    return (positions, leaves, multiproof(leaf_hashes(data), positions))


def strided(start: int, stride: int, count: int) -> list[int]:
    return [start + t * stride for t in range(count)]


# ---------------------------------------------------------------------------------------------
# Narrowing moves


def dissection_points(span: int) -> list[int]:
    """Offsets (from the interval start) of the roots one dissection reveals."""
    points = min(span, MAX_POINTS)
    return [i * span // points for i in range(points + 1)]


def reveal_segment_args(dispute_id: int, segment: int, task: TrainingTask, state_roots: Sequence[bytes],
                        checkpoint_roots: Sequence[bytes]) -> tuple:
    """`reveal_segment`: ``state_roots`` are the k + 1 roots of the segment (endpoints included)."""
    k = task.checkpoint_interval
    if len(state_roots) != k + 1:
        raise MoveError(f"need {k + 1} state roots, got {len(state_roots)}")
    revealed = [state_roots[p] for p in dissection_points(k)]
    proof = multiproof(list(checkpoint_roots), [segment, segment + 1])
    return (dispute_id, segment, commitments(task), revealed, proof)


def pick_step_args(dispute_id: int, revealed: Sequence[bytes], index: int) -> tuple:
    """`pick_step`: interval ``index`` of the roots revealed by the last dissection."""
    return (dispute_id, merkle_root(list(revealed)), index, revealed[index], revealed[index + 1],
            multiproof(list(revealed), [index, index + 1]))


def bisect_args(dispute_id: int, first_step: int, interval_roots: Sequence[bytes]) -> tuple:
    """`bisect`: ``interval_roots`` are all span + 1 roots of the picked interval."""
    span = len(interval_roots) - 1
    return (dispute_id, first_step, [interval_roots[p] for p in dissection_points(span)])


def commit_trace_args(dispute_id: int, step: int, trace: Sequence[torch.Tensor]) -> tuple:
    """`commit_trace`: the Merkle root over the node-output tensor roots (a published trace's
    own roots, `trace_store.StreamedTrace`, without reading its nodes)."""
    return (dispute_id, step, merkle_root(getattr(trace, "roots", None) or trace_roots(trace)))


# ---------------------------------------------------------------------------------------------
# Final proofs and data availability (ProofChecker; the game's address comes first)


class SolverTrace:
    """The roots of a solver's committed trace (``trace``: every node output, in node order)."""

    trace: Sequence[torch.Tensor]

    @property
    def roots(self) -> list[bytes]:
        """The node roots: a published trace's (`trace_store.StreamedTrace`), checked as it was
        read, or hashed from the tensors."""
        return getattr(self.trace, "roots", None) or trace_roots(self.trace)

    @property
    def trace_root(self) -> bytes:
        return merkle_root(self.roots)


@dataclass(frozen=True)
class StepData(SolverTrace):
    """What a challenger knows of the disputed step: the task, the graph, the dataset and the
    solver's trace (every node output, in node order) with its roots."""

    task: TrainingTask
    graph: TrainingGraph
    trace: Sequence[torch.Tensor]
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None


def link_args(game: str, dispute_id: int, data: StepData, after: bool) -> tuple:
    """`prove_link_mismatch`: the parameter block (``after`` False) or the update block."""
    graph = data.graph
    params = len(graph.param_nodes)
    n = len(graph.nodes)
    if after:
        ids = list(range(n - params - 1, n))
        block = ids[1:]
    else:
        ids = list(range(params + 1))
        block = ids[:-1]
    return (game, dispute_id, data.trace_root, commitments(data.task), after,
            graph_opening(graph, ids), trace_opening(data.roots, block))


def data_args(game: str, dispute_id: int, data: StepData, node_id: int, row: int, step: int) -> tuple:
    """`prove_data_mismatch`: row ``row`` of data node ``node_id`` against dataset row idx(step, row)."""
    from offchain.ml.train import batch_indices

    if data.x is None or data.y is None:
        raise MoveError("the dataset is needed for a data proof")
    task, graph = data.task, data.graph
    node = graph.nodes[node_id]
    tensor = data.trace[node_id]
    index = batch_indices(task.seed, step, row + 1, task.dataset_rows)[row]
    if node.op == "data_x":
        width = node.shape[1]
        elements = list(range(row * width, (row + 1) * width))
    else:
        elements = [row]
    proof = dataset_row_proof(data.x, data.y, index)
    return (game, dispute_id, data.trace_root, commitments(task), graph_opening(graph, [node_id]),
            trace_opening(data.roots, [node_id]), tensor_opening(tensor, elements), row,
            (proof.x_row, proof.label, list(proof.siblings)))


def judge_operands(graph: TrainingGraph, node_id: int, index: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(start, stride, count) of the first and second input elements the judge needs for element
    ``index`` of node ``node_id`` (mirror of ProofChecker.prove_element); count 0 = not needed."""
    node = graph.nodes[node_id]
    op = node.op
    cols = node.shape[-1]
    a_shape = graph.nodes[node.inputs[0]].shape
    b_shape = graph.nodes[node.inputs[-1]].shape
    a, b = (index, 1, 1), (index, 1, 0)
    if op == "matmul":
        ta, tb, k0, k1 = node.attrs
        i, j = divmod(index, cols)
        n = k1 - k0
        a = (k0 * a_shape[1] + i, a_shape[1], n) if ta else (i * a_shape[1] + k0, 1, n)
        b = (j * b_shape[1] + k0, 1, n) if tb else (k0 * b_shape[1] + j, b_shape[1], n)
    elif op in ("add", "relu_grad", "sgd"):
        b = (index, 1, 1)
    elif op == "add_bias":
        b = (index % cols, 1, 1)
    elif op in ("softmax_xent", "softmax_xent_grad"):
        i = index // cols if op == "softmax_xent_grad" else index
        a = (i * a_shape[1], 1, a_shape[1])
        b = (i, 1, 1)
    elif op == "sum_rows":
        r0, r1 = node.attrs
        a = (r0 * a_shape[1] + index, a_shape[1], r1 - r0)
    elif op != "relu":
        raise MoveError(f"node {node_id} ({op}) has no one-step check")
    return a, b


def reduction_length(node: Node) -> int:
    """Terms of one output element of a matmul / sum_rows node (0 for other ops)."""
    if node.op == "matmul":
        return node.attrs[3] - node.attrs[2]
    if node.op == "sum_rows":
        return node.attrs[1] - node.attrs[0]
    return 0


def is_long(node: Node) -> bool:
    """An element of this node is judged through the dissection inside its reduction."""
    from offchain.dispute.judge import MAX_REDUCTION

    return reduction_length(node) > MAX_REDUCTION


def chunk_operands(graph: TrainingGraph, node_id: int, index: int,
                   chunk: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(start, stride, count) of the first and second operand elements of chunk ``chunk`` of
    element ``index`` of a long matmul / sum_rows node (mirror of ReductionChecker.prove_chunk)."""
    from offchain.dispute.judge import chunk_bounds

    node = graph.nodes[node_id]
    t0, t1 = chunk_bounds(reduction_length(node), chunk)
    cols = node.shape[-1]
    a_shape = graph.nodes[node.inputs[0]].shape
    if node.op == "sum_rows":
        return ((node.attrs[0] + t0) * a_shape[1] + index, a_shape[1], t1 - t0), (index, 1, 0)
    ta, tb, k0, _ = node.attrs
    b_shape = graph.nodes[node.inputs[1]].shape
    i, j = divmod(index, cols)
    k = k0 + t0
    n = t1 - t0
    a = (k * a_shape[1] + i, a_shape[1], n) if ta else (i * a_shape[1] + k, 1, n)
    b = (j * b_shape[1] + k, 1, n) if tb else (k * b_shape[1] + j, b_shape[1], n)
    return a, b


def element_args(game: str, dispute_id: int, data: StepData, node_id: int, index: int) -> tuple:
    """`prove_element`: element ``index`` of node ``node_id`` with the inputs the judge needs."""
    graph = data.graph
    node = graph.nodes[node_id]
    (a0, a_stride, a_count), (b0, b_stride, b_count) = judge_operands(graph, node_id, index)
    first = tensor_opening(data.trace[node.inputs[0]], strided(a0, a_stride, a_count))
    if b_count:
        second = tensor_opening(data.trace[node.inputs[1]], strided(b0, b_stride, b_count))
    else:
        second = ([], [], [])
    ids = [node_id, *node.inputs]
    return (game, dispute_id, data.trace_root, commitments(data.task), node_id, index,
            graph_opening(graph, ids), trace_opening(data.roots, ids),
            tensor_opening(data.trace[node_id], [index]), first, second)


def demand_fee(count: int, basefee: int) -> int:
    """Wei `Arbitration.demand_fee(count)` asks in a block of base fee ``basefee``."""
    return (ANSWER_GAS + count * ANSWER_ELEMENT_GAS) * basefee * FEE_MARGIN


def demand_value(count: int, basefee: int) -> int:
    """Value a challenger sends with `demand_elements` when the next block's base fee is not known
    yet: the fee at ``basefee`` raised by the most one block can raise it (1/8); the game credits
    back what exceeds the fee of the block the demand lands in (`Arbitration.withdraw`)."""
    return demand_fee(count, basefee + (basefee + 7) // 8)


def demand_args(game: str, dispute_id: int, task: TrainingTask, graph: TrainingGraph, trace_root: bytes,
                node_id: int, start: int, count: int) -> tuple:
    """`demand_elements` (challenger): elements [start, start + count) of node ``node_id``. The
    transaction pays the demand fee as its value (`demand_fee` / `demand_value`)."""
    return (game, dispute_id, trace_root, commitments(task), graph_opening(graph, [node_id]), start, count)


def post_args(game: str, dispute_id: int, trace: Sequence[torch.Tensor], node_id: int, start: int, count: int) -> tuple:
    """`post_elements` (solver): the demanded elements with their proofs against the trace."""
    roots = trace_roots(trace)
    return (game, dispute_id, node_id, start, count, roots[node_id], multiproof(roots, [node_id]),
            tensor_opening(trace[node_id], list(range(start, start + count))))


def decode_values(values: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """The tensor elements an `ElementsPosted` event carries (little-endian bit patterns)."""
    if dtype == torch.int64:
        return torch.from_numpy(np.array(values, dtype=np.uint64).view(np.int64).copy())
    return torch.from_numpy(np.array(values, dtype=np.uint32).view(np.float32).copy())


# ---------------------------------------------------------------------------------------------
# The challenger's search


#: the checker function that takes each kind of final proof (a "reduction" is not final: it
#: opens the dissection inside a long reduction, on the ReductionChecker)
PROVE_FN = {"link": "prove_link_mismatch", "data": "prove_data_mismatch", "element": "prove_element",
            "reduction": "open_reduction"}


@dataclass(frozen=True)
class FinalProof:
    """A proof the challenger can win with: ``kind`` in (link, data, element) and its arguments,
    or ``reduction``: the opening of the dissection of a long reduction's element."""

    kind: str
    args: tuple
    detail: str

    @property
    def contract(self) -> str:
        """Which checker takes it: "reducer" (ReductionChecker) or "checker" (ProofChecker)."""
        return "reducer" if self.kind == "reduction" else "checker"


def find_final_proof(game: str, dispute_id: int, data: StepData, state_before: bytes, state_after: bytes,
                     step: int) -> FinalProof | None:
    """The first inconsistency of the solver's committed trace, in the order links, data rows,
    node elements (graph order, judged by `find_inconsistent_element`); None if the step is consistent."""
    from offchain.dispute.judge import find_inconsistent_element
    from offchain.ml.train import batch_indices

    graph, trace, roots = data.graph, data.trace, data.roots
    params = len(graph.param_nodes)
    if merkle_root(roots[:params]) != state_before:
        return FinalProof("link", link_args(game, dispute_id, data, False), "parameters differ from the state before")
    n = len(graph.nodes)
    if merkle_root(roots[n - params:]) != state_after:
        return FinalProof("link", link_args(game, dispute_id, data, True), "update differs from the state after")
    if data.x is not None and data.y is not None:
        task = data.task
        rows = batch_indices(task.seed, step, task.batch_size, task.dataset_rows)
        xs, ys = trace[graph.data_x_node], trace[graph.data_y_node]
        for r, index in enumerate(rows):
            if not torch.equal(xs[r], data.x[index]):
                return FinalProof("data", data_args(game, dispute_id, data, graph.data_x_node, r, step), f"data_x row {r}")
            if int(ys[r]) != int(data.y[index]):
                return FinalProof("data", data_args(game, dispute_id, data, graph.data_y_node, r, step), f"data_y row {r}")
    for node in graph.nodes:
        if node.op in ("param", "data_x", "data_y"):
            continue
        inputs = [trace[i] for i in node.inputs]
        bad = find_inconsistent_element(node, inputs, trace[node.id])
        if bad is not None:
            if is_long(node):
                return FinalProof("reduction", open_reduction_args(game, dispute_id, data, node.id, bad),
                                  f"node {node.id} ({node.op}, {reduction_length(node)} terms) element {bad}")
            return FinalProof("element", element_args(game, dispute_id, data, node.id, bad),
                              f"node {node.id} ({node.op}) element {bad}")
    return None


# ---------------------------------------------------------------------------------------------
# The dissection inside a long reduction (ReductionChecker, Arbitration.post_partials / pick_partial)


def open_reduction_args(game: str, dispute_id: int, data: StepData, node_id: int, index: int) -> tuple:
    """`open_reduction` (challenger): element ``index`` of long matmul / sum_rows node ``node_id``."""
    if not is_long(data.graph.nodes[node_id]):
        raise MoveError(f"node {node_id} is not a reduction longer than the judge's cap")
    return (game, dispute_id, data.trace_root, commitments(data.task), node_id, index,
            graph_opening(data.graph, [node_id]), trace_opening(data.roots, [node_id]),
            tensor_opening(data.trace[node_id], [index]))


def reduction_call(graph: TrainingGraph, trace: Sequence[torch.Tensor], node_id: int, index: int):
    """The whole reduction of element ``index`` of a compiled graph's long node (`judge.LinearCall`)."""
    from offchain.dispute.judge import LinearCall, judge_inputs

    node = graph.nodes[node_id]
    call = judge_inputs(node, [trace[i] for i in node.inputs], trace[node_id], index)
    return LinearCall(call.op, call.a, call.b, call.claimed)


def chunk_partials(graph: TrainingGraph, trace: Sequence[torch.Tensor], node_id: int, index: int,
                   top: int | None = None) -> list:
    """`judge.LinearCall.partials` of element ``index``'s reduction."""
    return reduction_call(graph, trace, node_id, index).partials(top)


def partial_leaf(partial) -> bytes:
    """Leaf of a partial in a post's root: keccak256(abi.encode(int256 x, uint256 abs, int256 top))."""
    from eth_abi import encode as abi_encode

    x, total, top = partial
    return keccak256(abi_encode(["int256", "uint256", "int256"], [x, total, top]))


def partial_points(chunks: int) -> int:
    return min(chunks, MAX_PARTIALS)


def partial_range(first: int, chunks: int, index: int) -> tuple[int, int]:
    """Chunks [lo, hi) partial ``index`` of a post over chunks [first, first + chunks) covers."""
    points = partial_points(chunks)
    return first + index * chunks // points, first + (index + 1) * chunks // points


def post_partials_args(dispute_id: int, node_id: int, first: int, chunks: int, partials: Sequence) -> tuple:
    """`post_partials` (solver): the partials of chunks [first, first + chunks) from the partial of
    every chunk of the reduction (`chunk_partials`), grouped as the game expects."""
    from offchain.dispute.judge import group_partials

    leaves = group_partials(partials, first, chunks, partial_points(chunks))
    return (dispute_id, node_id, first, [p.as_tuple() for p in leaves])


def pick_partial_args(dispute_id: int, posted: Sequence[tuple], index: int) -> tuple:
    """`pick_partial` (challenger): partial ``index`` of the last post (``posted``: its tuples)."""
    leaves = [partial_leaf(p) for p in posted]
    return (dispute_id, merkle_root(leaves), index, tuple(posted[index]), multiproof(leaves, [index]))


def prove_chunk_args(game: str, dispute_id: int, data: StepData, node_id: int, index: int, posted: Sequence[tuple],
                     leaf: int, first: int, chunks: int) -> tuple:
    """`prove_chunk` (challenger): partial ``leaf`` of the last post covers one chunk and is wrong."""
    lo, hi = partial_range(first, chunks, leaf)
    if hi - lo != 1:
        raise MoveError("the partial covers more than one chunk: pick it")
    graph = data.graph
    node = graph.nodes[node_id]
    (a0, a_stride, a_count), (b0, b_stride, b_count) = chunk_operands(graph, node_id, index, lo)
    first_opening = tensor_opening(data.trace[node.inputs[0]], strided(a0, a_stride, a_count))
    second = (tensor_opening(data.trace[node.inputs[1]], strided(b0, b_stride, b_count)) if b_count
              else ([], [], []))
    leaves = [partial_leaf(p) for p in posted]
    ids = [node_id, *node.inputs]
    return (game, dispute_id, data.trace_root, commitments(data.task), graph_opening(graph, ids),
            trace_opening(data.roots, ids), leaf, tuple(posted[leaf]), multiproof(leaves, [leaf]),
            first_opening, second)


def prove_fold_args(game: str, dispute_id: int, posted: Sequence[tuple]) -> tuple:
    """`prove_fold` (challenger): the claim is outside the bound of the whole post's totals."""
    return (game, dispute_id, merkle_root([partial_leaf(p) for p in posted]))


@dataclass(frozen=True)
class ReductionMove:
    """The challenger's answer to a post: ``kind`` pick (Arbitration.pick_partial), chunk or fold
    (ReductionChecker.prove_chunk / prove_fold; a program node's chunk:
    ProgramReductionChecker.prove_program_chunk, a softmax-family row's fold
    ProgramReductionChecker.prove_program_row), with its arguments."""

    kind: str
    args: tuple
    detail: str
    chunk_function: str = "prove_chunk"
    fold_function: str = "prove_fold"

    @property
    def function(self) -> str:
        return {"pick": "pick_partial", "chunk": self.chunk_function, "fold": self.fold_function}[self.kind]

    @property
    def contract(self) -> str:
        """Which contract takes it: "game", "reducer" (ReductionChecker) or "program_reducer"."""
        if self.kind == "pick":
            return "game"
        return "program_reducer" if self.function in ("prove_program_chunk", "prove_program_row") else "reducer"


def answer_partials(game: str, dispute_id: int, data: StepData, node_id: int, index: int, posted: Sequence[tuple],
                    first: int, chunks: int, whole: bool, top: int) -> ReductionMove | None:
    """The honest challenger's answer to the partials ``posted`` over chunks [first, first +
    chunks) of a compiled graph's node (:func:`answer_posted`)."""
    def chunk_args(leaf: int) -> tuple:
        return prove_chunk_args(game, dispute_id, data, node_id, index, posted, leaf, first, chunks)

    return answer_posted(game, dispute_id, reduction_call(data.graph, data.trace, node_id, index), posted, first,
                         chunks, whole, top, chunk_args)


def answer_posted(game: str, dispute_id: int, call, posted: Sequence[tuple], first: int, chunks: int,
                  whole: bool, top: int, chunk_args: Callable[[int], tuple],
                  chunk_function: str = "prove_chunk", fold: tuple[str, tuple] | None = None) -> ReductionMove | None:
    """The honest challenger's answer to the partials ``posted`` over chunks [first, first +
    chunks) of the reduction or row ``call`` from the solver's trace: the first partial that
    differs from the exact one at the scale (or pivot) the posted overall ``top`` sets (one
    chunk: prove it, with ``chunk_args(leaf)``; several: pick it), else, on the whole reduction,
    the fold check (``fold``: its function and arguments, by default `prove_fold`'s); None if
    nothing is wrong (the claim is within the bound)."""
    from offchain.dispute import judge as J

    exact = call.partials(top)
    for i, value in enumerate(posted):
        lo, hi = partial_range(first, chunks, i)
        group = exact[lo:hi]
        expected = None
        if all(p is not None for p in group):
            expected = group[0]
            for p in group[1:]:
                expected = expected + p
        if expected is not None and expected.as_tuple() == tuple(value):
            continue
        if hi - lo == 1:
            return ReductionMove("chunk", chunk_args(i), f"chunk {lo}", chunk_function)
        return ReductionMove("pick", pick_partial_args(dispute_id, posted, i), f"chunks {lo}..{hi - 1}")
    if whole:
        total = J.Partial(sum(p[0] for p in posted), sum(p[1] for p in posted), top)
        if not call.holds(total):
            function, args = fold or ("prove_fold", prove_fold_args(game, dispute_id, posted))
            return ReductionMove("fold", args, "fold", chunk_function, function)
    return None
