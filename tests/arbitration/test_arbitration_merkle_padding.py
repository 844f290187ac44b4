"""A multi-proof cannot open a padding position beyond the leaf count, although siblings taken from
the padded tree hash to the committed root there."""

from __future__ import annotations

import pytest
from test_arbitration_merkle import harness, leaves_of

from offchain.dispute.moves import multi_root
from offchain.ml.commit import keccak256, merkle_root, tree_depth


def padded_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree with the leaves padded to a power of two by zero leaves."""
    depth = tree_depth(len(leaves))
    levels = [leaves + [bytes(32)] * ((1 << depth) - len(leaves))]
    for _ in range(depth):
        level = levels[-1]
        levels.append([keccak256(a + b) for a, b in zip(level[::2], level[1::2])])
    return levels


@pytest.mark.parametrize("n", [3, 5, 6, 7, 12, 33])
def test_multiproof__padding_position_beyond_count_is_malformed(n):
    leaves = leaves_of(n, 4)
    levels = padded_levels(leaves)
    root = merkle_root(leaves)
    assert levels[-1] == [root]

    def siblings(position: int) -> list[bytes]:
        return [levels[h][(position >> h) ^ 1] for h in range(len(levels) - 1)]

    # the construction opens the last real leaf ...
    assert harness().multi_root([n - 1], [leaves[n - 1]], siblings(n - 1), n) == (True, root)
    assert multi_root([n - 1], [leaves[n - 1]], siblings(n - 1), n) == root
    # ... and never a position of the padding
    for position in range(n, len(levels[0])):
        assert harness().multi_root([position], [bytes(32)], siblings(position), n) == (False, bytes(32))
        assert multi_root([position], [bytes(32)], siblings(position), n) is None
