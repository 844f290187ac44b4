"""Whether the dispute game can judge a task: every element of every node must be openable and
checkable on chain, with the leaf geometry of `contracts/TensorReader.vy` and the bounds of
`contracts/arbitration/structs.vy`, `contracts/ProofChecker.vy` and `contracts/Judge.vy`, and the
checkpoint interval must fit one dissection (the solver worker never sends a `bisect`).

A task outside these limits would let a solver commit wrong values that no final proof can reach,
so it is refused where it is built and posted and where a solver or verifier fetches it.
"""

from __future__ import annotations

from offchain.dispute.judge import MAX_CLASSES, MAX_LONG_REDUCTION, MAX_REDUCTION
from offchain.dispute.moves import (
    MAX_OPEN_LEAVES,
    MAX_POINTS,
    chunk_operands,
    is_long,
    judge_operands,
    reduction_length,
)
from offchain.ml.commit import LEAF_BYTES
from offchain.ml.errors import TaskError
from offchain.ml.graph import TrainingGraph
from offchain.ml.task import TrainingTask

#: mirrors of the on-chain bounds not used elsewhere off chain
MAX_PARAMS = 64             # structs.MAX_PARAMS: parameter tensors a link proof opens
MAX_ROW_BYTES = 16_384      # structs.MAX_ROW_BYTES: widest dataset row a data proof compares


class UnjudgeableTask(TaskError):
    """The dispute game could not judge some element of this task; the message names why."""


def operand_leaves(start: int, stride: int, count: int, itemsize: int = 4) -> int:
    """Leaves that elements start, start + stride, ... (`count` of them) lie in."""
    return len({(start + t * stride) * itemsize // LEAF_BYTES for t in range(count)})


def _indices(shape: tuple[int, ...] | list[int]) -> list[int]:
    """Flat indices covering every row i (at column 0) and every column j (at row 0): the operands
    the judge reads depend on an element only through its row or its column."""
    cols = shape[-1]
    rows = shape[0] if len(shape) == 2 else 1
    return sorted({i * cols for i in range(rows)} | set(range(cols)))


def unjudgeable_reason(graph: TrainingGraph, task: TrainingTask) -> str | None:
    """One line naming the first limit the task exceeds, or None if every element can be judged."""
    if task.is_program:
        return "the chain cannot judge the nodes of a training program yet (docs/programs.md §6)"
    k = task.checkpoint_interval
    if k > MAX_POINTS:
        return (f"checkpoint interval {k} exceeds {MAX_POINTS}: disputing a segment would need a "
                f"bisect move that the solver worker does not make")
    if len(graph.param_nodes) > MAX_PARAMS:
        return f"{len(graph.param_nodes)} parameter tensors exceed the {MAX_PARAMS} a link proof opens"
    for node in graph.nodes:
        if node.op == "data_x" and node.shape[1] * 4 > MAX_ROW_BYTES:
            return (f"dataset rows of {node.shape[1]} features exceed the {MAX_ROW_BYTES // 4} "
                    f"a data proof compares")
        if node.op in ("param", "data_x", "data_y"):
            continue
        if is_long(node):
            # dissected in a dispute: every chunk of MAX_REDUCTION terms must open
            n = reduction_length(node)
            if n > MAX_LONG_REDUCTION:
                return (f"node {node.id} ({node.op}) reduces {n} terms; the dissection inside a reduction "
                        f"takes at most {MAX_LONG_REDUCTION}")
            operands = [(index, chunk) for chunk in range(-(-n // MAX_REDUCTION)) for index in _indices(node.shape)]
        else:
            (_, _, a_count), (_, _, b_count) = judge_operands(graph, node.id, 0)
            if a_count > MAX_CLASSES or b_count > MAX_REDUCTION:
                return f"node {node.id} ({node.op}) needs {max(a_count, b_count)} operand elements; the judge takes fewer"
            operands = [(index, None) for index in _indices(node.shape)]
        sizes = [8 if graph.nodes[i].op == "data_y" else 4 for i in (node.inputs[0], node.inputs[-1])]
        for index, chunk in operands:
            reads = (judge_operands(graph, node.id, index) if chunk is None
                     else chunk_operands(graph, node.id, index, chunk))
            for (start, stride, count), itemsize in zip(reads, sizes):
                if stride == 1 and count * itemsize <= LEAF_BYTES:
                    continue  # within two leaves
                leaves = operand_leaves(start, stride, count, itemsize)
                if leaves > MAX_OPEN_LEAVES:
                    what = "an element" if chunk is None else f"chunk {chunk} of an element"
                    return (f"layer width {stride} with batch {count if chunk is None else reduction_length(node)}: "
                            f"{what} of node {node.id} ({node.op}) reads a column that spans {leaves} leaves; "
                            f"the dispute game opens at most {MAX_OPEN_LEAVES}")
    return None


def check_judgeable(graph: TrainingGraph, task: TrainingTask) -> None:
    """Raise `UnjudgeableTask` with the reason when the dispute game could not judge the task."""
    reason = unjudgeable_reason(graph, task)
    if reason is not None:
        raise UnjudgeableTask(reason)
