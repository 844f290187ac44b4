# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title merkle
@notice Stateless keccak256 Merkle helpers of the dispute game, following the
        commitment rules of docs/proof-of-learning.md §4.1-§4.2 exactly:
        trees padded to a power of two with bytes32(0) leaves, internal node
        keccak256(left ‖ right), one leaf = root, no leaves = bytes32(0), and
        sized roots keccak256(abi.encode(root, count)).
@dev    `_multi_root` verifies any sorted set of leaves (a multiproof). Its
        sibling order is level by level, bottom-up, left to right; for a
        contiguous range it is exactly the order of
        `offchain.ml.commit.merkle_range_proof` (left neighbour, then right
        neighbour), so single-leaf and range proofs are special cases.
        A sibling whose subtree lies wholly in the padding must be the
        all-zero subtree hash, so every root a multiproof verifies is the
        canonical root of its leaves.
"""

# leaves one multiproof may open at once (a column of 64 elements in 64
# leaves; a block of 64 parameter nodes plus one)
MAX_OPEN: constant(uint256) = 65
# siblings of one multiproof (64 scattered leaves in a tree of 2^16 leaves)
MAX_SIBLINGS: constant(uint256) = 1024
# deepest tree (counts below 2^64)
MAX_DEPTH: constant(uint256) = 64
# leaves of a tree whose root the chain computes in full (k + 1 state roots; the
# state tensors of a training program, structs.MAX_STATE)
MAX_ROOT_LEAVES: constant(uint256) = 1024


@internal
@pure
def _depth(count: uint256) -> uint256:
    """
    @notice ceil(log2(count)): depth of the padded tree (0 for one leaf).
    """
    depth: uint256 = 0
    width: uint256 = 1
    for i: uint256 in range(MAX_DEPTH):
        if width >= count:
            break
        width <<= 1
        depth += 1
    return depth


@internal
@pure
def _sized_root(root: bytes32, count: uint256) -> bytes32:
    """
    @notice keccak256(abi.encode(bytes32 root, uint256 count)).
    """
    return keccak256(abi_encode(root, count))


@internal
@pure
def _multi_root(
    indices: DynArray[uint256, MAX_OPEN],
    hashes: DynArray[bytes32, MAX_OPEN],
    siblings: DynArray[bytes32, MAX_SIBLINGS],
    count: uint256,
) -> (bool, bytes32):
    """
    @notice Root implied by leaves `hashes` at strictly increasing positions
            `indices` of a tree over `count` leaves, and the `siblings`.
    @return (ok, root): ok is False when the proof is malformed (indices not
            increasing or out of range, too few or too many siblings, a
            padding sibling that is not the zero subtree).
    """
    n: uint256 = len(indices)
    if n == 0 or n != len(hashes) or count == 0 or count >= 2**64:
        return False, empty(bytes32)
    if indices[n - 1] >= count:
        return False, empty(bytes32)
    idx: DynArray[uint256, MAX_OPEN] = indices
    nodes: DynArray[bytes32, MAX_OPEN] = hashes
    for i: uint256 in range(1, MAX_OPEN):
        if i >= n:
            break
        if idx[i] <= idx[i - 1]:
            return False, empty(bytes32)
    used: uint256 = 0
    total: uint256 = len(siblings)
    depth: uint256 = self._depth(count)
    zero: bytes32 = empty(bytes32)
    for level: uint256 in range(MAX_DEPTH):
        if level >= depth:
            break
        read: uint256 = 0
        write: uint256 = 0
        for step: uint256 in range(MAX_OPEN):
            if read >= n:
                break
            position: uint256 = idx[read]
            node: bytes32 = nodes[read]
            parent: bytes32 = empty(bytes32)
            if position % 2 == 0:
                if read + 1 < n and idx[read + 1] == position + 1:
                    parent = keccak256(concat(node, nodes[read + 1]))
                    read += 2
                else:
                    if used >= total:
                        return False, empty(bytes32)
                    # a right sibling starting at or past `count` covers only padding
                    if ((position + 1) << level) >= count and siblings[used] != zero:
                        return False, empty(bytes32)
                    parent = keccak256(concat(node, siblings[used]))
                    used += 1
                    read += 1
            else:
                if used >= total:
                    return False, empty(bytes32)
                parent = keccak256(concat(siblings[used], node))
                used += 1
                read += 1
            idx[write] = position // 2
            nodes[write] = parent
            write += 1
        n = write
        zero = keccak256(concat(zero, zero))
    if used != total or n != 1:
        return False, empty(bytes32)
    return True, nodes[0]


@internal
@pure
def _verify(
    root: bytes32,
    indices: DynArray[uint256, MAX_OPEN],
    hashes: DynArray[bytes32, MAX_OPEN],
    siblings: DynArray[bytes32, MAX_SIBLINGS],
    count: uint256,
) -> bool:
    """
    @notice Whether the leaves at `indices` belong to the tree `root` over `count` leaves.
    """
    ok: bool = False
    computed: bytes32 = empty(bytes32)
    ok, computed = self._multi_root(indices, hashes, siblings, count)
    return ok and computed == root


@internal
@pure
def _merkle_root(leaves: DynArray[bytes32, MAX_ROOT_LEAVES]) -> bytes32:
    """
    @notice Root over up to 1,024 leaf hashes (zero-padded to a power of two).
    """
    n: uint256 = len(leaves)
    if n == 0:
        return empty(bytes32)
    level: DynArray[bytes32, MAX_ROOT_LEAVES] = leaves
    zero: bytes32 = empty(bytes32)
    for h: uint256 in range(MAX_DEPTH):
        if n <= 1:
            break
        half: uint256 = (n + 1) // 2
        for i: uint256 in range(MAX_ROOT_LEAVES):
            if i >= half:
                break
            right: bytes32 = zero
            if 2 * i + 1 < n:
                right = level[2 * i + 1]
            level[i] = keccak256(concat(level[2 * i], right))
        n = half
        zero = keccak256(concat(zero, zero))
    return level[0]
