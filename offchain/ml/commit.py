"""keccak256 Merkle commitments to tensors, checkpoints, datasets and proofs.

Every rule here is chosen so that an EVM contract can verify a single element (or a contiguous
element range) of any committed tensor with nothing but ``keccak256`` and calldata:

* A tensor's bytes are its elements in C order, little-endian (float32 for parameters and
  activations, int64 for labels).  The bytes are cut into leaves of ``LEAF_BYTES`` bytes; the last
  leaf holds the remainder zero-padded to a multiple of 32 bytes (so a 10-element bias hashes 64
  bytes, not a whole leaf).  ``leaf_hash = keccak256(leaf_bytes)``.
* A Merkle tree over ``n`` leaf hashes is padded to the next power of two with ``bytes32(0)``
  leaves; an internal node is ``keccak256(left ‖ right)`` (64 bytes).  One leaf: the root is that
  leaf hash.  No leaves: the root is ``bytes32(0)``.
* ``tensor_root = keccak256(data_root ‖ uint256_be(numel))`` (== ``abi.encode(bytes32, uint256)``)
  so a root pins the element count and trailing zero elements cannot be confused with padding.
* Padding is canonical: proofs whose last leaf has non-zero padding bytes, or whose siblings put
  anything but the all-zero subtree where the tree holds only padding, are refused (here and on
  chain), so one tensor has exactly one root.
* ``checkpoint_root`` = Merkle root over the tensor roots in canonical parameter order.
* ``dataset_root = keccak256(rows_root ‖ uint256_be(n_rows))`` where ``rows_root`` is the Merkle
  root over ``row_leaf(i) = keccak256(x_i as float32 LE ‖ y_i as int64 LE)``.
* ``proof_root`` = Merkle root over the checkpoint roots; on chain it is stored with its count.

See docs/proof-of-learning.md for the range-proof verification algorithm in pseudo-code.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from .errors import CommitmentError

try:  # safe-pysha3: ~5x less per-call overhead than pycryptodome for short inputs.
    from sha3 import keccak_256 as _pysha3_keccak

    def keccak256(data: bytes | bytearray | memoryview) -> bytes:
        """Ethereum keccak256 (not NIST SHA3-256)."""
        return _pysha3_keccak(data).digest()

    def keccak256_with_prefix(prefix: bytes, suffixes: Sequence[bytes]) -> list[bytes]:
        """``[keccak256(prefix + s) for s in suffixes]``, absorbing the prefix only once."""
        base = _pysha3_keccak(prefix)
        digests = []
        for suffix in suffixes:
            state = base.copy()
            state.update(suffix)
            digests.append(state.digest())
        return digests

    KECCAK_BACKEND = "pysha3"
except ImportError:  # pragma: no cover - depends on the environment
    from Crypto.Hash import keccak as _pycryptodome_keccak

    def keccak256(data: bytes | bytearray | memoryview) -> bytes:
        """Ethereum keccak256 (not NIST SHA3-256)."""
        return _pycryptodome_keccak.new(digest_bits=256, data=bytes(data)).digest()

    def keccak256_with_prefix(prefix: bytes, suffixes: Sequence[bytes]) -> list[bytes]:
        """``[keccak256(prefix + s) for s in suffixes]``."""
        return [keccak256(prefix + suffix) for suffix in suffixes]

    KECCAK_BACKEND = "pycryptodome"

#: Leaf size in bytes (512 float32 elements).  Chosen by ``bench/commitment.py``: the smallest
#: power of two whose checkpoint Merkle root runs at >= 0.5x the speed of one flat keccak over the
#: same bytes on both the demo and a 5 MiB checkpoint; smaller leaves mean less one-step calldata.
LEAF_BYTES = 2048
ZERO_HASH = bytes(32)

_ZERO_SUBTREES: list[bytes] = [ZERO_HASH]
for _ in range(64):
    _ZERO_SUBTREES.append(keccak256(_ZERO_SUBTREES[-1] * 2))

_LE_DTYPES: dict[torch.dtype, str] = {
    torch.float32: "<f4",
    torch.int64: "<i8",
    torch.int32: "<i4",
}


def uint256(value: int) -> bytes:
    """``abi.encode(uint256 value)``: 32 bytes big-endian."""
    if not 0 <= value < 1 << 256:
        raise CommitmentError(f"value {value} does not fit in uint256")
    return value.to_bytes(32, "big")


def sized_root(root: bytes, count: int) -> bytes:
    """``keccak256(abi.encode(bytes32 root, uint256 count))``."""
    return keccak256(root + uint256(count))


def tree_depth(count: int) -> int:
    """Depth of the padded tree over ``count`` leaves (0 for one leaf)."""
    if count < 0:
        raise CommitmentError("negative leaf count")
    return max(0, (count - 1).bit_length())


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All tree levels bottom-up; a missing right child at level h is the all-zero subtree."""
    level = list(leaves)
    levels = [level]
    height = 0
    native = _native(len(level)) if len(level) >= _NATIVE_MIN_NODES else None
    while len(level) > 1:
        if len(level) & 1:
            level = level + [_ZERO_SUBTREES[height]]
            levels[-1] = level
        if native and len(level) >= _NATIVE_MIN_NODES and all(len(n) == 32 for n in level):
            level = _split32(_hash_pairs_native(native, level))
        else:
            level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
        height += 1
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root over 32-byte leaf hashes, padded to a power of two with ``bytes32(0)`` leaves."""
    if not leaves:
        return ZERO_HASH
    native = _native(len(leaves)) if len(leaves) >= _NATIVE_MIN_NODES else None
    if native is not None:
        joined = b"".join(leaves)
        if len(joined) == 32 * len(leaves):  # else nodes are hashed as the per-call path joins them
            nodes = np.empty((len(leaves) + 1, 4), dtype=np.uint64)
            nodes[:-1] = np.frombuffer(joined, dtype=np.uint64).reshape(-1, 4)
            native.merkle_root(nodes, len(leaves), _ZERO_WORDS)
            return nodes[0].tobytes()
    level = list(leaves)
    height = 0
    while len(level) > 1:
        if len(level) & 1:
            level.append(_ZERO_SUBTREES[height])
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        height += 1
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from the leaf up to (excluding) the root."""
    return merkle_range_proof(leaves, index, index + 1)


def verify_proof(root: bytes, leaf: bytes, index: int, proof: Sequence[bytes], count: int) -> bool:
    """Check a single-leaf proof in a tree of ``count`` leaves (pins depth and ``index < count``)."""
    return verify_range_proof(root, [leaf], index, proof, count)


def merkle_range_proof(leaves: Sequence[bytes], start: int, stop: int) -> list[bytes]:
    """Siblings proving the contiguous leaves ``[start, stop)``.

    Order of consumption per level, bottom-up: the left neighbour (if the range starts on a right
    child), then the right neighbour (if the range ends on a left child).
    """
    if not 0 <= start < stop <= len(leaves):
        raise CommitmentError(f"bad leaf range [{start}, {stop}) of {len(leaves)} leaves")
    levels = _levels(leaves)
    low, high = start, stop - 1
    proof: list[bytes] = []
    for level in levels[:-1]:
        if low & 1:
            proof.append(level[low - 1])
        if not high & 1:
            proof.append(level[high + 1])
        low >>= 1
        high >>= 1
    return proof


def verify_range_proof(
    root: bytes, range_leaves: Sequence[bytes], start: int, proof: Sequence[bytes], count: int
) -> bool:
    """Recompute the root from leaves ``[start, start+len)`` and the siblings of ``merkle_range_proof``."""
    if not range_leaves or start < 0:
        return False
    return _root_from_range(range_leaves, start, proof, count) == root


# --------------------------------------------------------------------------------------------
# Tensors


def tensor_buffer(tensor: torch.Tensor) -> memoryview:
    """The canonical bytes (C order, little-endian, dtype float32 / int64 / int32 as stored) as a
    view of the tensor's own memory where it already is canonical (contiguous, on the CPU): no copy."""
    if tensor.dtype not in _LE_DTYPES:
        raise CommitmentError(f"cannot commit dtype {tensor.dtype}")
    array = tensor.detach().cpu().contiguous().reshape(-1).numpy()
    return memoryview(array.astype(_LE_DTYPES[tensor.dtype], copy=False)).cast("B")


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """Canonical bytes of a tensor, as ``bytes``."""
    return tensor_buffer(tensor).tobytes()


def leaf_length(total_bytes: int, leaf_index: int, leaf_bytes: int = LEAF_BYTES) -> int:
    """Byte length of leaf ``leaf_index``: ``leaf_bytes``, or the remainder rounded up to 32."""
    remaining = total_bytes - leaf_index * leaf_bytes
    return min(leaf_bytes, remaining + (-remaining % 32))


# Hashing threads: keccak releases the GIL on a whole leaf (the native kernels on a whole run of
# leaves), so the leaves of a large tensor hash on every core at once.  A caller whose cores are
# busy (bookkeeping that overlaps training) asks for fewer with `hashing_threads`.
_hashing = threading.local()
_POOL: ThreadPoolExecutor | None = None
# leaves one thread hashes at least (below this a thread costs more than it saves)
MIN_LEAVES_PER_THREAD = 64


@contextmanager
def hashing_threads(count: int) -> Iterator[None]:
    """Within the block, this thread's tensor roots hash on at most ``count`` threads."""
    before = getattr(_hashing, "count", None)
    _hashing.count = max(1, count)
    try:
        yield
    finally:
        _hashing.count = before


def _hashing_threads() -> int:
    return getattr(_hashing, "count", None) or os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="keccak")
    return _POOL


# Native batch keccak (offchain/ml/keccak_batch.py, compiled by numba): all leaves of a tensor in
# one call per thread, and each Merkle level in one call, without the GIL and reading the tensor's
# memory in place.  The digests are bitwise those of the per-call path below, which stays the
# fallback when numba cannot be imported or compiled.  Loading numba costs a process about 0.4 s
# (the kernels are compiled once per machine, about 1.5 s, and cached), so it is loaded by the first
# buffer of at least NATIVE_LOAD_BYTES (or by `native_keccak(True)`); once loaded it serves every
# buffer of two leaves or more, and every Merkle tree of _NATIVE_MIN_NODES leaves or more.
NATIVE_LOAD_BYTES = 1 << 20
_NATIVE_MIN_NODES = 8  # below this many tree nodes the per-call path is as fast
_native_lock = threading.Lock()
_native_module = None  # the kernel module once loaded
_native_state = "unloaded"  # "unloaded" | "loaded" | "off" (disabled, or loading failed)
_ZERO_WORDS = np.frombuffer(b"".join(_ZERO_SUBTREES), dtype=np.uint64).reshape(-1, 4)


def _native(count: int, load: bool = False):
    """The native kernel module if it is loaded (or ``load`` and it loads) and ``count`` leaves or
    nodes are worth a native call, else None."""
    global _native_module, _native_state
    if _native_state == "loaded":
        return _native_module if count >= 2 else None
    if _native_state == "off" or not load:
        return None
    with _native_lock:
        if _native_state == "unloaded":
            try:
                from . import keccak_batch

                _warm(keccak_batch)
                _native_module, _native_state = keccak_batch, "loaded"
            except Exception:  # pragma: no cover - numba missing or unusable here
                _native_state = "off"
    return _native_module if _native_state == "loaded" and count >= 2 else None


def _warm(module) -> None:
    """Compile (or load from the cache) each kernel once, on this thread, and check it against
    the per-call keccak before anything is committed with it."""
    words = np.frombuffer(bytes(range(256)) * 2, dtype=np.uint64)
    out = np.empty((3, 4), dtype=np.uint64)
    module.hash_chunks(words, 32, 0, 2, out)
    if out[:2].tobytes() != keccak256(bytes(range(256))) * 2:
        raise CommitmentError("native keccak disagrees with keccak256")
    module.merkle_root(out, 2, _ZERO_WORDS)
    if out[0].tobytes() != keccak256(keccak256(bytes(range(256))) * 2):
        raise CommitmentError("native keccak disagrees with keccak256")


def native_keccak(enabled: bool | None = None) -> bool:
    """Whether this process hashes through the native kernels; ``enabled`` True loads them now,
    False turns them off (the per-call path then serves every buffer)."""
    global _native_state
    if enabled is False:
        _native_state = "off"
    elif enabled and _native_state != "loaded":
        _native_state = "loaded" if _native_module is not None else "unloaded"
        _native(0, load=True)
    return _native_state == "loaded"


def _split32(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _hash_pairs_native(native, level: Sequence[bytes]) -> bytes:
    nodes = np.frombuffer(b"".join(level), dtype=np.uint64).reshape(-1, 4)
    out = np.empty((len(level) // 2, 4), dtype=np.uint64)
    native.hash_pairs(nodes, len(level), out)
    return out.tobytes()


def _hash_leaves(view: memoryview, first: int, stop: int, leaf_bytes: int) -> list[bytes]:
    """Per-call path: one keccak256 call per leaf of ``view[first:stop]`` (whole leaves)."""
    return [keccak256(view[offset : offset + leaf_bytes]) for offset in range(first, stop, leaf_bytes)]


def _thread_bounds(count: int) -> list[int]:
    """Leaf indices splitting ``count`` leaves among this thread's hashing threads."""
    parts = max(1, min(_hashing_threads(), count // MIN_LEAVES_PER_THREAD))
    return [count * i // parts for i in range(parts + 1)]


def _native_leaves(native, view: memoryview, count: int, leaf_bytes: int, out: np.ndarray) -> None:
    """``out[:count]`` = the hashes of the first ``count`` whole leaves, read in place."""
    words = np.frombuffer(view, dtype=np.uint64, count=count * leaf_bytes // 8)
    step = leaf_bytes // 8
    bounds = _thread_bounds(count)
    futures = [
        _pool().submit(native.hash_chunks, words, step, a, b, out)
        for a, b in zip(bounds[1:-1], bounds[2:])
    ]
    native.hash_chunks(words, step, 0, bounds[1], out)
    for future in futures:
        future.result()


def leaf_hashes(data: bytes | memoryview, leaf_bytes: int = LEAF_BYTES) -> list[bytes]:
    """keccak256 of each ``leaf_bytes`` chunk; the last one zero-padded to a multiple of 32 bytes."""
    view = memoryview(data).cast("B")
    size = len(view)
    full = size - size % leaf_bytes
    count = full // leaf_bytes
    native = _native(count, full >= NATIVE_LOAD_BYTES) if leaf_bytes % 8 == 0 else None
    if native is not None:
        out = np.empty((count, 4), dtype=np.uint64)
        _native_leaves(native, view, count, leaf_bytes, out)
        hashes = _split32(out.tobytes())
    elif count < 2 * MIN_LEAVES_PER_THREAD:
        hashes = _hash_leaves(view, 0, full, leaf_bytes)
    else:
        bounds = [i * leaf_bytes for i in _thread_bounds(count)]
        futures = [
            _pool().submit(_hash_leaves, view, a, b, leaf_bytes)
            for a, b in zip(bounds[1:-1], bounds[2:])
        ]
        hashes = _hash_leaves(view, 0, bounds[1], leaf_bytes)
        for future in futures:
            hashes.extend(future.result())
    if full < size:
        hashes.append(keccak256(bytes(view[full:]) + bytes(-(size - full) % 32)))
    return hashes


def bytes_root(data: bytes | memoryview, numel: int, leaf_bytes: int = LEAF_BYTES) -> bytes:
    """``tensor_root`` from already-serialized element bytes."""
    view = memoryview(data).cast("B")
    size = len(view)
    if size < leaf_bytes:  # one zero-padded leaf (or none): the data root is its hash
        return sized_root(keccak256(bytes(view) + bytes(-size % 32)) if size else ZERO_HASH, numel)
    full = size - size % leaf_bytes
    count = full // leaf_bytes
    native = _native(count, full >= NATIVE_LOAD_BYTES) if leaf_bytes % 8 == 0 else None
    if native is None:
        return sized_root(merkle_root(leaf_hashes(view, leaf_bytes)), numel)
    # the whole tree in native calls: leaf hashes into one array, reduced in place
    leaves = count + (full < size)
    nodes = np.empty((leaves + 1, 4), dtype=np.uint64)
    _native_leaves(native, view, count, leaf_bytes, nodes)
    if full < size:
        last = keccak256(bytes(view[full:]) + bytes(-(size - full) % 32))
        nodes[count] = np.frombuffer(last, dtype=np.uint64)
    native.merkle_root(nodes, leaves, _ZERO_WORDS)
    return sized_root(nodes[0].tobytes(), numel)


def tensor_root(tensor: torch.Tensor, leaf_bytes: int = LEAF_BYTES) -> bytes:
    """``keccak256(merkle_root(leaves) ‖ uint256(numel))``."""
    return bytes_root(tensor_buffer(tensor), tensor.numel(), leaf_bytes)


@dataclass(frozen=True)
class TensorRangeProof:
    """Calldata needed to prove elements ``[start, stop)`` of a committed tensor."""

    numel: int
    itemsize: int
    start: int
    stop: int
    first_leaf: int
    leaves: tuple[bytes, ...]
    siblings: tuple[bytes, ...]


def tensor_range_proof(
    tensor: torch.Tensor, start: int, stop: int, leaf_bytes: int = LEAF_BYTES
) -> TensorRangeProof:
    """Leaves covering elements ``[start, stop)`` plus the Merkle siblings to the data root."""
    numel = tensor.numel()
    if not 0 <= start < stop <= numel:
        raise CommitmentError(f"bad element range [{start}, {stop}) of {numel} elements")
    data = tensor_bytes(tensor)
    itemsize = len(data) // numel
    first_leaf = start * itemsize // leaf_bytes
    last_leaf = (stop * itemsize - 1) // leaf_bytes
    padded = data + bytes(-len(data) % 32)
    raw = tuple(
        padded[i * leaf_bytes : (i + 1) * leaf_bytes] for i in range(first_leaf, last_leaf + 1)
    )
    siblings = merkle_range_proof(leaf_hashes(data, leaf_bytes), first_leaf, last_leaf + 1)
    return TensorRangeProof(numel, itemsize, start, stop, first_leaf, raw, tuple(siblings))


def verify_tensor_range(
    root: bytes, proof: TensorRangeProof, dtype: str = "<f4", leaf_bytes: int = LEAF_BYTES
) -> np.ndarray:
    """Return the proven elements, or raise :class:`CommitmentError` if the proof is invalid."""
    itemsize = np.dtype(dtype).itemsize
    if proof.itemsize != itemsize or not 0 <= proof.start < proof.stop <= proof.numel:
        raise CommitmentError("range proof header inconsistent")
    first_leaf = proof.start * itemsize // leaf_bytes
    last_leaf = (proof.stop * itemsize - 1) // leaf_bytes
    if proof.first_leaf != first_leaf or len(proof.leaves) != last_leaf - first_leaf + 1:
        raise CommitmentError("leaves do not cover the claimed range")
    total = proof.numel * itemsize
    count = -(-total // leaf_bytes)
    for offset, leaf in enumerate(proof.leaves):
        if len(leaf) != leaf_length(total, first_leaf + offset, leaf_bytes):
            raise CommitmentError("leaf of wrong size")
    if last_leaf == count - 1 and any(proof.leaves[-1][total - last_leaf * leaf_bytes:]):
        raise CommitmentError("non-zero padding in the last leaf")
    hashes = [keccak256(leaf) for leaf in proof.leaves]
    inner = _root_from_range(hashes, first_leaf, proof.siblings, count)
    if inner is None or sized_root(inner, proof.numel) != root:
        raise CommitmentError("range proof does not match the tensor root")
    blob = b"".join(proof.leaves)
    offset = proof.start * itemsize - first_leaf * leaf_bytes
    return np.frombuffer(blob, dtype=dtype, count=proof.stop - proof.start, offset=offset).copy()


def _root_from_range(
    hashes: Sequence[bytes], start: int, siblings: Sequence[bytes], count: int
) -> bytes | None:
    """Root implied by a range proof, or None when the proof is malformed (a right sibling that
    covers only padding must be the all-zero subtree)."""
    stop = start + len(hashes)
    if not hashes or start < 0 or stop > count:
        return None
    nodes = list(hashes)
    low, high = start, stop - 1
    it = iter(siblings)
    used = 0
    for level in range(tree_depth(count)):
        try:
            if low & 1:
                nodes.insert(0, next(it))
                used += 1
                low -= 1
            if not high & 1:
                sibling = next(it)
                if (high + 1) << level >= count and sibling != _ZERO_SUBTREES[level]:
                    return None
                nodes.append(sibling)
                used += 1
                high += 1
        except StopIteration:
            return None
        nodes = [keccak256(nodes[i] + nodes[i + 1]) for i in range(0, len(nodes), 2)]
        low >>= 1
        high >>= 1
    if used != len(siblings) or len(nodes) != 1:
        return None
    return nodes[0]


# --------------------------------------------------------------------------------------------
# Checkpoints, datasets, proofs


def state_roots(state: Mapping[str, torch.Tensor], order: Sequence[str]) -> list[bytes]:
    """Per-tensor roots in canonical parameter order."""
    missing = [name for name in order if name not in state]
    if missing:
        raise CommitmentError(f"state is missing tensors {missing}")
    return [tensor_root(state[name]) for name in order]


def checkpoint_root(state: Mapping[str, torch.Tensor], order: Sequence[str]) -> bytes:
    """Merkle root over the tensor roots, in canonical parameter order."""
    return merkle_root(state_roots(state, order))


def proof_root(checkpoint_roots: Sequence[bytes]) -> bytes:
    """Merkle root over checkpoint roots; the chain stores it together with the count."""
    return merkle_root(checkpoint_roots)


def row_leaves(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """``keccak256(x_row float32 LE ‖ y int64 LE)`` per dataset row."""
    xs = x.detach().cpu().contiguous().numpy().astype("<f4", copy=False)
    ys = y.detach().cpu().contiguous().numpy().astype("<i8", copy=False)
    row_size = xs.shape[1] * 4
    packed = np.empty((xs.shape[0], row_size + 8), dtype=np.uint8)
    packed[:, :row_size] = xs.view(np.uint8).reshape(xs.shape[0], row_size)
    packed[:, row_size:] = ys.view(np.uint8).reshape(xs.shape[0], 8)
    width = row_size + 8
    native = _native(len(packed), packed.nbytes >= NATIVE_LOAD_BYTES) if width % 8 == 0 else None
    if native is not None:
        out = np.empty((len(packed), 4), dtype=np.uint64)
        native.hash_chunks(packed.reshape(-1).view(np.uint64), width // 8, 0, len(packed), out)
        return _split32(out.tobytes())
    view = memoryview(packed.reshape(-1))
    return [keccak256(view[i : i + width]) for i in range(0, packed.nbytes, width)]


def dataset_root(x: torch.Tensor, y: torch.Tensor) -> bytes:
    """``keccak256(rows_root ‖ uint256(n_rows))``."""
    return sized_root(merkle_root(row_leaves(x, y)), x.shape[0])


@dataclass(frozen=True)
class RowProof:
    """One dataset row and its Merkle siblings (``rows_root`` is recomputed by the verifier)."""

    index: int
    n_rows: int
    x_row: bytes
    label: int
    siblings: tuple[bytes, ...]


def dataset_row_proof(x: torch.Tensor, y: torch.Tensor, index: int) -> RowProof:
    """Proof that row ``index`` of ``(x, y)`` is committed by ``dataset_root(x, y)``."""
    leaves = row_leaves(x, y)
    row = x[index].detach().contiguous().numpy().astype("<f4", copy=False).tobytes()
    siblings = merkle_proof(leaves, index)
    return RowProof(index, x.shape[0], row, int(y[index]), tuple(siblings))


def verify_row_proof(root: bytes, proof: RowProof) -> bool:
    """Check a dataset row against ``dataset_root``."""
    if not -(1 << 63) <= proof.label < 1 << 63:
        return False
    leaf = keccak256(proof.x_row + proof.label.to_bytes(8, "little", signed=True))
    inner = _root_from_range([leaf], proof.index, proof.siblings, proof.n_rows)
    return inner is not None and sized_root(inner, proof.n_rows) == root

