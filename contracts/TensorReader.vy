# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize codesize
"""
@title TensorReader
@notice Stateless tensor openings of the dispute game (docs/arbitration.md §4):
        verifies that 2 KiB leaves belong to a committed tensor root
        (docs/proof-of-learning.md §4.2) and reads elements or bytes from them.
        Only canonical commitments open: the padding bytes of the last leaf
        and every padding leaf of the tree must be zero, so a tensor has one
        root.
@dev    The checkers call it with static calls, each in a fresh memory
        frame, so no frame holds more than one opening.
"""

from arbitration import merkle
from arbitration import structs

LEAF_BYTES: constant(uint256) = structs.LEAF_BYTES
MAX_OPEN_LEAVES: constant(uint256) = structs.MAX_OPEN_LEAVES
MAX_ROW_BYTES: constant(uint256) = structs.MAX_ROW_BYTES
# elements one read returns (a demand of 512; a softmax row of 256; a column of 64)
MAX_READ: constant(uint256) = 512
# elements one index read returns (a read of the program judge)
MAX_INDICES: constant(uint256) = 64
# largest dimension accepted from a descriptor
MAX_DIM: constant(uint256) = 2**32

@external
@pure
def open_elements(
    root: bytes32,
    numel: uint256,
    itemsize: uint256,
    opening: structs.TensorOpening,
    start: uint256,
    stride: uint256,
    count: uint256,
) -> DynArray[uint256, MAX_READ]:
    """
    @notice Verify that the leaves of `opening` belong to the tensor committed
            as `root` (`numel` elements of `itemsize` bytes), then read elements
            start, start + stride, ... (`count` of them) as little-endian
            unsigned integers (float32 or int64 bit patterns). Reverts if the
            opening is invalid or misses an element. Valid leaves are those of
            the canonical commitment: each is min(2048, ceil32(remaining
            bytes)) long, the bytes past the tensor's end are zero, and the
            multiproof holds with zero padding leaves.
    """
    self._verify(root, numel, itemsize, opening)
    values: DynArray[uint256, MAX_READ] = []
    current: uint256 = max_value(uint256)
    leaf: Bytes[LEAF_BYTES] = b""
    for t: uint256 in range(MAX_READ):
        if t == count:
            break
        element: uint256 = start + t * stride
        assert element < numel, "arbitration: element not opened"
        offset: uint256 = element * itemsize
        if offset // LEAF_BYTES != current:
            current = offset // LEAF_BYTES
            leaf = opening.leaves[self._slot(opening.leaf_indices, current)]
        if itemsize == 8:
            values.append(self._swap(convert(slice(leaf, offset % LEAF_BYTES, 8), uint256), 8))
        else:
            values.append(self._swap(convert(slice(leaf, offset % LEAF_BYTES, 4), uint256), 4))
    return values


@external
@pure
def open_indices(
    root: bytes32,
    numel: uint256,
    itemsize: uint256,
    opening: structs.TensorOpening,
    indices: DynArray[uint256, MAX_INDICES],
) -> DynArray[uint256, MAX_INDICES]:
    """
    @notice Verify the opening as `open_elements` does, then read the elements at the flat
            `indices` (any order, repeats allowed) as little-endian unsigned integers.
    """
    self._verify(root, numel, itemsize, opening)
    values: DynArray[uint256, MAX_INDICES] = []
    current: uint256 = max_value(uint256)
    leaf: Bytes[LEAF_BYTES] = b""
    for element: uint256 in indices:
        assert element < numel, "arbitration: element not opened"
        offset: uint256 = element * itemsize
        if offset // LEAF_BYTES != current:
            current = offset // LEAF_BYTES
            leaf = opening.leaves[self._slot(opening.leaf_indices, current)]
        if itemsize == 8:
            values.append(self._swap(convert(slice(leaf, offset % LEAF_BYTES, 8), uint256), 8))
        else:
            values.append(self._swap(convert(slice(leaf, offset % LEAF_BYTES, 4), uint256), 4))
    return values


@external
@pure
def range_root(
    root: bytes32,
    numel: uint256,
    itemsize: uint256,
    opening: structs.TensorOpening,
    start: uint256,
    count: uint256,
) -> bytes32:
    """
    @notice Verify the opening, then return the canonical root of elements [start, start +
            count) taken as a tensor of their own (a row of the hyper table): at most one
            leaf, `keccak256(abi.encode(keccak256(bytes zero-padded to 32), count))`.
    """
    self._verify(root, numel, itemsize, opening)
    length: uint256 = count * itemsize
    assert count > 0 and length <= LEAF_BYTES and start + count <= numel, "arbitration: element not opened"
    at: uint256 = start * itemsize
    padded: uint256 = (length + 31) // 32 * 32
    first: Bytes[LEAF_BYTES] = opening.leaves[self._slot(opening.leaf_indices, at // LEAF_BYTES)]
    piece: uint256 = min(LEAF_BYTES - at % LEAF_BYTES, length)
    body: bytes32 = empty(bytes32)
    if piece == length:
        body = keccak256(slice(concat(slice(first, at % LEAF_BYTES, piece), empty(bytes32)), 0, padded))
    else:
        second: Bytes[LEAF_BYTES] = opening.leaves[self._slot(opening.leaf_indices, at // LEAF_BYTES + 1)]
        body = keccak256(slice(concat(slice(first, at % LEAF_BYTES, piece), slice(second, 0, length - piece), empty(bytes32)), 0, padded))
    return keccak256(abi_encode(body, count))


@external
@view
def bytes_equal(
    root: bytes32,
    numel: uint256,
    itemsize: uint256,
    opening: structs.TensorOpening,
    offset: uint256,
    data: Bytes[MAX_ROW_BYTES],
) -> bool:
    """
    @notice Verify the opening, then whether the tensor bytes [offset, offset
            + len(data)) equal `data` (a dataset row of a data_x node), leaf
            piece by leaf piece.
    """
    self._verify(root, numel, itemsize, opening)
    return self._bytes_equal(numel * itemsize, opening, offset, data)


@external
@pure
def row_differs(
    root: bytes32,
    numel: uint256,
    itemsize: uint256,
    opening: structs.TensorOpening,
    row: uint256,
    index: uint256,
    dataset_root: bytes32,
    dataset_rows: uint256,
    data: structs.DataRow,
) -> bool:
    """
    @notice Verify that `data` is dataset row `index` (leaf keccak256(x_row ‖
            label as int64 LE), dataset_root = keccak256(abi.encode(rows_root,
            dataset_rows))) and the opening, then whether row `row` of the
            tensor differs from it: the label of a (B,) int64 tensor
            (itemsize 8) or the len(x_row) bytes of row `row` of a (B, D)
            float32 tensor (the caller checks len(x_row) = 4·D).
    """
    assert data.label < 2**63, "arbitration: dataset row invalid"
    label: Bytes[8] = slice(convert(self._swap(data.label, 8) << 192, bytes32), 0, 8)
    ok: bool = False
    inner: bytes32 = empty(bytes32)
    ok, inner = merkle._multi_root([index], [keccak256(concat(data.x_row, label))], data.siblings, dataset_rows)
    assert ok and merkle._sized_root(inner, dataset_rows) == dataset_root, "arbitration: dataset row invalid"
    self._verify(root, numel, itemsize, opening)
    if itemsize == 8:
        assert row < numel, "arbitration: element not opened"
        at: uint256 = row * 8
        leaf: Bytes[LEAF_BYTES] = opening.leaves[self._slot(opening.leaf_indices, at // LEAF_BYTES)]
        return self._swap(convert(slice(leaf, at % LEAF_BYTES, 8), uint256), 8) != data.label
    return not self._bytes_equal(numel * itemsize, opening, row * len(data.x_row), data.x_row)


@internal
@pure
def _bytes_equal(total: uint256, opening: structs.TensorOpening, offset: uint256, data: Bytes[MAX_ROW_BYTES]) -> bool:
    """
    @notice Whether bytes [offset, offset + len(data)) of a verified opening (of a tensor of
            `total` bytes) equal `data`.
    """
    length: uint256 = len(data)
    assert offset + length <= total, "arbitration: element not opened"
    done: uint256 = 0
    for i: uint256 in range(MAX_ROW_BYTES // LEAF_BYTES + 1):
        if done == length:
            break
        at: uint256 = offset + done
        piece: uint256 = min(LEAF_BYTES - at % LEAF_BYTES, length - done)
        leaf: Bytes[LEAF_BYTES] = opening.leaves[self._slot(opening.leaf_indices, at // LEAF_BYTES)]
        if slice(leaf, at % LEAF_BYTES, piece) != slice(data, done, piece):
            return False
        done += piece
    return True


@internal
@pure
def _verify(root: bytes32, numel: uint256, itemsize: uint256, opening: structs.TensorOpening):
    """
    @notice Revert unless the leaves of `opening` belong to the canonical commitment `root`
            of `numel` elements of `itemsize` bytes.
    """
    n: uint256 = len(opening.leaf_indices)
    total: uint256 = numel * itemsize
    leaf_count: uint256 = (total + LEAF_BYTES - 1) // LEAF_BYTES
    hashes: DynArray[bytes32, MAX_OPEN_LEAVES] = []
    valid: bool = n == len(opening.leaves) and numel <= MAX_DIM * MAX_DIM
    for i: uint256 in range(MAX_OPEN_LEAVES):
        if i == n or not valid:
            break
        position: uint256 = opening.leaf_indices[i]
        size: uint256 = 0
        remaining: uint256 = 0
        if position < leaf_count:
            remaining = total - position * LEAF_BYTES
            size = min(LEAF_BYTES, (remaining + 31) // 32 * 32)
        valid = size > 0 and len(opening.leaves[i]) == size
        if valid and remaining < size:
            # the padding of the last leaf: the low (size - remaining) bytes of its last word
            last: uint256 = convert(slice(opening.leaves[i], size - 32, 32), uint256)
            valid = last % (1 << ((size - remaining) * 8)) == 0
        hashes.append(keccak256(opening.leaves[i]))
    inner: bytes32 = empty(bytes32)
    if valid:
        valid, inner = merkle._multi_root(opening.leaf_indices, hashes, opening.siblings, leaf_count)
    assert valid and merkle._sized_root(inner, numel) == root, "arbitration: tensor opening invalid"


@internal
@pure
def _slot(indices: DynArray[uint256, MAX_OPEN_LEAVES], leaf: uint256) -> uint256:
    """
    @notice Position of leaf `leaf` among the opened (increasing) leaf indices.
    """
    lo: uint256 = 0
    hi: uint256 = len(indices)
    for i: uint256 in range(8):
        if lo >= hi:
            break
        mid: uint256 = (lo + hi) // 2
        if indices[mid] < leaf:
            lo = mid + 1
        else:
            hi = mid
    assert lo < len(indices) and indices[lo] == leaf, "arbitration: element not opened"
    return lo


@internal
@pure
def _swap(word: uint256, size: uint256) -> uint256:
    """
    @notice Reverse the byte order of a `size`-byte word (little-endian bytes to integer).
    """
    out: uint256 = 0
    w: uint256 = word
    for i: uint256 in range(8):
        if i == size:
            break
        out = (out << 8) | (w & 255)
        w >>= 8
    return out
