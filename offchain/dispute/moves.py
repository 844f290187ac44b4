"""Calldata of the moves of the dispute game (`contracts/Arbitration.vy`) that do not depend on the
program: the narrowing moves, data availability, the dissection inside a reduction, and the
openings every proof is made of (`program_moves` builds the final proofs over a program's step).

Every proof follows the commitment rules of docs/proof-of-learning.md §4 and is built with
`offchain.ml.commit` (`merkle_range_proof`, `tensor_range_proof`, `dataset_row_proof`, ...);
the one addition is the *multiproof* (`multiproof`): a sorted set of leaves with the siblings
level by level, bottom-up, left to right. For a contiguous range it is exactly
`merkle_range_proof`; the contract verifies both with one routine (`arbitration/merkle.vy`).

Each builder returns a tuple of arguments in the order of the contract function it is named
after, with structs as tuples, ready for `contract.fn(*args)` (titanoboa) or web3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from offchain.ml.commit import (
    LEAF_BYTES,
    ZERO_HASH,
    keccak256,
    leaf_hashes,
    leaf_length,
    merkle_root,
    tensor_bytes,
    tree_depth,
)
from offchain.ml.program import trace_roots
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


def reveal_participant_segment_args(dispute_id: int, segment: int, group: Sequence, participants: Sequence[TrainingTask],
                                    state_roots: Sequence[bytes], checkpoint_roots: Sequence[Sequence[bytes]],
                                    mail_root: bytes) -> tuple:
    """`reveal_participant_segment`: segment ``segment`` of a group task (its ``group``
    commitments) is segment j of participant p (``segment = p · per + j``, ``per`` segments
    each); ``state_roots`` are that segment's k + 1 roots, ``checkpoint_roots`` every
    participant's checkpoint roots in rank order."""
    task = participants[0]
    k, per = task.checkpoint_interval, task.steps // task.checkpoint_interval
    if len(state_roots) != k + 1:
        raise MoveError(f"need {k + 1} state roots, got {len(state_roots)}")
    rank, j = divmod(segment, per)
    flat = [root for roots in checkpoint_roots for root in roots]
    first = rank * (per + 1) + j
    return (dispute_id, segment, tuple(group), [t.hash() for t in participants], commitments(participants[rank]),
            [state_roots[p] for p in dissection_points(k)], multiproof(flat, [first, first + 1]), merkle_root(flat),
            mail_root)


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
# Data availability (ProofChecker.post_elements; the game's address comes first)


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


def demand_fee(count: int, basefee: int) -> int:
    """Wei `Arbitration.demand_fee(count)` asks in a block of base fee ``basefee``."""
    return (ANSWER_GAS + count * ANSWER_ELEMENT_GAS) * basefee * FEE_MARGIN


def demand_value(count: int, basefee: int) -> int:
    """Value a challenger sends with `demand_elements` when the next block's base fee is not known
    yet: the fee at ``basefee`` raised by the most one block can raise it (1/8); the game credits
    back what exceeds the fee of the block the demand lands in (`Arbitration.withdraw`)."""
    return demand_fee(count, basefee + (basefee + 7) // 8)


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


def prove_fold_args(game: str, dispute_id: int, posted: Sequence[tuple]) -> tuple:
    """`prove_fold` (challenger): the claim is outside the bound of the whole post's totals."""
    return (game, dispute_id, merkle_root([partial_leaf(p) for p in posted]))


@dataclass(frozen=True)
class ReductionMove:
    """The challenger's answer to a post: ``kind`` pick (`Arbitration.pick_partial`), chunk
    (`ProgramReductionChecker.prove_program_chunk`) or fold (its `prove_fold`, or `prove_program_row`
    for a softmax-family row), with its arguments."""

    kind: str
    args: tuple
    detail: str
    fold_function: str = "prove_fold"

    @property
    def function(self) -> str:
        return {"pick": "pick_partial", "chunk": "prove_program_chunk", "fold": self.fold_function}[self.kind]

    @property
    def contract(self) -> str:
        """Which contract takes it: "game" or "program_reducer" (the ProgramReductionChecker)."""
        return "game" if self.kind == "pick" else "program_reducer"
