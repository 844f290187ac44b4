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

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from offchain.ml.commit import (
    LEAF_BYTES,
    ZERO_HASH,
    dataset_row_proof,
    keccak256,
    leaf_hashes,
    leaf_length,
    merkle_range_proof,
    merkle_root,
    sized_root,
    tensor_bytes,
    tensor_root,
    tree_depth,
    uint256,
)
from offchain.ml.graph import OP_CODES, Node, TrainingGraph, trace_roots
from offchain.ml.task import TrainingTask

# mirror of contracts/Arbitration.vy constants
MAX_POINTS = 256            # intervals one dissection move reveals (k + 1 <= 257 roots)
MAX_OPEN_NODES = 65         # nodes one graph / trace opening proves
MAX_OPEN_LEAVES = 64        # tensor leaves one opening proves
MAX_DEMAND = 512            # elements one data-availability demand may ask for
MAX_DEMANDS = 64            # demands per dispute

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


def multiproof(leaves: Sequence[bytes], indices: Sequence[int]) -> list[bytes]:
    """Siblings proving the leaves at the strictly increasing ``indices`` of the tree over ``leaves``."""
    if not indices or any(b <= a for a, b in zip(indices, indices[1:])) or indices[-1] >= len(leaves):
        raise MoveError("multiproof indices must be increasing and inside the tree")
    levels = _levels(leaves)
    known = list(indices)
    proof: list[bytes] = []
    for level in levels[:-1]:
        parents = []
        i = 0
        while i < len(known):
            position = known[i]
            if position % 2 == 0 and i + 1 < len(known) and known[i + 1] == position + 1:
                i += 2
            else:
                proof.append(level[position ^ 1])
                i += 1
            parents.append(position // 2)
        known = parents
    return proof


def multi_root(indices: Sequence[int], hashes: Sequence[bytes], siblings: Sequence[bytes], count: int) -> bytes | None:
    """Reference of `merkle._multi_root`: the implied root, or None when the proof is malformed."""
    n = len(indices)
    if n == 0 or n != len(hashes) or count == 0 or count >= 1 << 64 or indices[-1] >= count:
        return None
    if any(b <= a for a, b in zip(indices, indices[1:])):
        return None
    idx, nodes, used = list(indices), list(hashes), 0
    for _ in range(tree_depth(count)):
        new_idx, new_nodes, read = [], [], 0
        while read < len(idx):
            position, node = idx[read], nodes[read]
            if position % 2 == 0:
                if read + 1 < len(idx) and idx[read + 1] == position + 1:
                    parent = keccak256(node + nodes[read + 1])
                    read += 2
                else:
                    if used >= len(siblings):
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
    if used != len(siblings) or len(nodes) != 1:
        return None
    return nodes[0]
