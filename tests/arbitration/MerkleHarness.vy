# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title MerkleHarness
@notice TEST ONLY. Exposes the internal functions of contracts/arbitration/merkle.vy.
"""

from arbitration import merkle


@external
@pure
def multi_root(
    indices: DynArray[uint256, merkle.MAX_OPEN],
    hashes: DynArray[bytes32, merkle.MAX_OPEN],
    siblings: DynArray[bytes32, merkle.MAX_SIBLINGS],
    count: uint256,
) -> (bool, bytes32):
    return merkle._multi_root(indices, hashes, siblings, count)


@external
@pure
def merkle_root(leaves: DynArray[bytes32, merkle.MAX_ROOT_LEAVES]) -> bytes32:
    return merkle._merkle_root(leaves)


@external
@pure
def depth(count: uint256) -> uint256:
    return merkle._depth(count)
