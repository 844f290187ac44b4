from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from Crypto.Hash import keccak as crypto_keccak
from eth_abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.ml import (
    LEAF_BYTES,
    CommitmentError,
    checkpoint_root,
    dataset_root,
    dataset_row_proof,
    keccak256,
    merkle_proof,
    merkle_range_proof,
    merkle_root,
    synthetic_dataset,
    tensor_range_proof,
    tensor_root,
    verify_proof,
    verify_range_proof,
    verify_row_proof,
    verify_tensor_range,
)
from offchain.ml.commit import ZERO_HASH, TensorRangeProof, _hashing_threads, hashing_threads, leaf_hashes, tensor_buffer


def k(data: bytes) -> bytes:
    return crypto_keccak.new(digest_bits=256, data=data).digest()


def reference_root(leaves: list[bytes]) -> bytes:
    """Independent textbook implementation: pad to a power of two with bytes32(0), hash pairs."""
    if not leaves:
        return bytes(32)
    width = 1
    while width < len(leaves):
        width *= 2
    level = list(leaves) + [bytes(32)] * (width - len(leaves))
    while len(level) > 1:
        level = [k(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_keccak_is_ethereum_keccak():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc" * 100) == k(b"abc" * 100)


leaf_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_single_proofs_verify_and_tampering_fails(leaves, data):
    root = merkle_root(leaves)
    assert root == reference_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    assert verify_proof(root, leaves[index], index, proof, len(leaves))
    forged = bytes([leaves[index][0] ^ 1]) + leaves[index][1:]
    assert not verify_proof(root, forged, index, proof, len(leaves))
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        if leaves[other] != leaves[index]:
            assert not verify_proof(root, leaves[index], other, proof, len(leaves))
        bad_proof = list(proof)
        bad_proof[0] = bytes([bad_proof[0][0] ^ 0x80]) + bad_proof[0][1:]
        assert not verify_proof(root, leaves[index], index, bad_proof, len(leaves))
        assert not verify_proof(root, leaves[index], index, proof[:-1], len(leaves))
    assert not verify_proof(root, leaves[index], index, proof + [ZERO_HASH], len(leaves))


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_range_proofs(leaves, data):
    root = merkle_root(leaves)
    start = data.draw(st.integers(0, len(leaves) - 1))
    stop = data.draw(st.integers(start + 1, len(leaves)))
    proof = merkle_range_proof(leaves, start, stop)
    assert verify_range_proof(root, leaves[start:stop], start, proof, len(leaves))
    tampered = list(leaves[start:stop])
    tampered[-1] = k(tampered[-1])
    assert not verify_range_proof(root, tampered, start, proof, len(leaves))
    assert not verify_range_proof(root, leaves[start:stop], start, proof, len(leaves) + 10**6)


def test_leaf_layout_matches_spec_by_hand():
    assert LEAF_BYTES == 2048
    tensor = torch.arange(600, dtype=torch.float32)  # 2400 bytes -> leaves of 2048 and 352 bytes
    raw = np.arange(600, dtype="<f4").tobytes()
    leaves = [k(raw[:2048]), k(raw[2048:])]  # 352 is already a multiple of 32
    data_root = k(leaves[0] + leaves[1])
    assert tensor_root(tensor) == k(abi_encode(["bytes32", "uint256"], [data_root, 600]))
    three = torch.arange(3, dtype=torch.float32)  # 12 bytes -> one 32-byte leaf
    raw3 = np.arange(3, dtype="<f4").tobytes() + bytes(20)
    assert tensor_root(three) == k(k(raw3) + (3).to_bytes(32, "big"))
    five_leaves = torch.ones(4 * 512 + 1)  # 5 leaves -> tree padded to 8 with bytes32(0)
    raw5 = np.ones(4 * 512 + 1, dtype="<f4").tobytes()
    hashes = [k(raw5[i * 2048 : (i + 1) * 2048]) for i in range(4)] + [k(raw5[8192:] + bytes(28))]
    assert tensor_root(five_leaves) == k(reference_root(hashes) + (2049).to_bytes(32, "big"))
    assert merkle_root([]) == ZERO_HASH


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_leaf_hashes__on_several_threads_are_the_leaves_in_order(threads):
    """Large tensors hash their leaves on several threads; the leaves, and so the root, are those
    of one thread hashing in order (sizes around the split points and a ragged last leaf)."""
    raw = np.random.default_rng(threads).standard_normal(512 * 64 * 5 + 77).astype("<f4").tobytes()
    by_hand = [k(raw[i : i + 2048]) for i in range(0, len(raw) - len(raw) % 2048, 2048)]
    by_hand.append(k(raw[len(raw) - len(raw) % 2048 :] + bytes(-(len(raw) % 2048) % 32)))
    with hashing_threads(threads):
        assert leaf_hashes(raw) == by_hand
        tensor = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        assert tensor_root(tensor) == k(reference_root(by_hand) + tensor.numel().to_bytes(32, "big"))


def test_tensor_buffer__reads_a_contiguous_tensor_without_a_copy():
    tensor = torch.arange(1000, dtype=torch.float32)
    view = tensor_buffer(tensor)
    assert len(view) == 4000 and bytes(view) == tensor.numpy().tobytes()
    tensor[0] = 7.0  # the view is the tensor's own memory
    assert bytes(view[:4]) == np.float32(7.0).tobytes()
    strided = torch.arange(12, dtype=torch.int64).reshape(3, 4).t()  # C order of the transposed values
    assert bytes(tensor_buffer(strided)) == strided.contiguous().numpy().astype("<i8").tobytes()
    assert bytes(tensor_buffer(torch.tensor(2.5))) == np.float32(2.5).tobytes()


def test_hashing_threads__applies_within_its_block_and_thread_only():
    with hashing_threads(1):
        assert _hashing_threads() == 1
        with hashing_threads(3):
            assert _hashing_threads() == 3
        assert _hashing_threads() == 1
    assert _hashing_threads() == (os.cpu_count() or 1)


def test_tensor_root_binds_length_and_dtype_bytes():
    a = torch.zeros(10)
    b = torch.zeros(11)
    assert tensor_root(a) != tensor_root(b)  # same padded bytes, different numel
    assert tensor_root(torch.zeros(3, dtype=torch.int64)) != tensor_root(torch.zeros(6))


@settings(max_examples=40, deadline=None)
@given(numel=st.integers(1, 5000), data=st.data())
def test_tensor_range_proofs(numel, data):
    tensor = torch.from_numpy(np.random.default_rng(numel).standard_normal(numel).astype(np.float32))
    root = tensor_root(tensor)
    start = data.draw(st.integers(0, numel - 1))
    stop = data.draw(st.integers(start + 1, min(numel, start + 600)))
    proof = tensor_range_proof(tensor, start, stop)
    values = verify_tensor_range(root, proof)
    assert np.array_equal(values, tensor[start:stop].numpy())
    leaf = bytearray(proof.leaves[0])
    leaf[(start * 4) % LEAF_BYTES] ^= 1
    forged = TensorRangeProof(proof.numel, 4, start, stop, proof.first_leaf, (bytes(leaf),) + proof.leaves[1:], proof.siblings)
    with pytest.raises(CommitmentError):
        verify_tensor_range(root, forged)
    lying = TensorRangeProof(proof.numel + 1, 4, start, stop, proof.first_leaf, proof.leaves, proof.siblings)
    with pytest.raises(CommitmentError):
        verify_tensor_range(root, lying)


def test_int64_label_tensor_range():
    labels = torch.arange(500, dtype=torch.int64)
    proof = tensor_range_proof(labels, 130, 131)
    assert verify_tensor_range(tensor_root(labels), proof, dtype="<i8").tolist() == [130]


def test_checkpoint_and_dataset_roots():
    state = {"b": torch.ones(3), "a": torch.zeros(2, 2)}
    root = checkpoint_root(state, ["a", "b"])
    assert root == reference_root([tensor_root(state["a"]), tensor_root(state["b"])])
    assert root != checkpoint_root(state, ["b", "a"])
    with pytest.raises(CommitmentError):
        checkpoint_root(state, ["a", "c"])

    data = synthetic_dataset(37, 5, 3, seed=2)
    rows = [k(data.x[i].numpy().astype("<f4").tobytes() + int(data.y[i]).to_bytes(8, "little")) for i in range(37)]
    assert dataset_root(data.x, data.y) == k(reference_root(rows) + (37).to_bytes(32, "big"))
    for index in (0, 17, 36):
        proof = dataset_row_proof(data.x, data.y, index)
        assert verify_row_proof(data.root(), proof)
    proof = dataset_row_proof(data.x, data.y, 17)
    wrong_label = type(proof)(proof.index, proof.n_rows, proof.x_row, (proof.label + 1) % 3, proof.siblings)
    assert not verify_row_proof(data.root(), wrong_label)
    wrong_index = type(proof)(18, proof.n_rows, proof.x_row, proof.label, proof.siblings)
    assert not verify_row_proof(data.root(), wrong_index)


def test_bad_ranges_raise():
    with pytest.raises(CommitmentError):
        merkle_range_proof([ZERO_HASH] * 3, 2, 2)
    with pytest.raises(CommitmentError):
        tensor_range_proof(torch.zeros(4), 0, 5)


# --------------------------------------------------------------------------------------------
# Native batch keccak: bitwise the per-call path's leaves, levels and roots


@pytest.fixture
def native_state(monkeypatch):
    """Restore the process's native-keccak state after a test that switches it."""
    from offchain.ml import commit

    monkeypatch.setattr(commit, "_native_state", commit._native_state)
    return commit


def _both_paths(commit, fn):
    commit.native_keccak(False)
    per_call = fn()
    assert commit.native_keccak(True), "numba is a dependency: the native kernels must load"
    return per_call, fn()


def test_native_keccak__loads_and_is_used_for_large_buffers(native_state):
    commit = native_state
    commit.native_keccak(False)
    assert not commit.native_keccak()
    assert commit.native_keccak(True)
    assert commit._native(2) is not None and commit._native(1) is None


def test_native_keccak__is_loaded_by_the_first_large_buffer_only(native_state, monkeypatch):
    commit = native_state
    monkeypatch.setattr(commit, "_native_state", "unloaded")
    monkeypatch.setattr(commit, "_native_module", None)
    tensor_root(torch.randn(1000, 100))  # 400 KB: the per-call path, nothing loaded
    merkle_root([ZERO_HASH] * 1000)
    assert commit._native_state == "unloaded"
    tensor_root(torch.randn(commit.NATIVE_LOAD_BYTES // 4))
    assert commit.native_keccak()


@pytest.mark.parametrize("leaf", [32, 40, 136, 272, 2048, 100])
def test_native_leaf_hashes_and_roots_match_the_per_call_path(native_state, leaf):
    """Empty, 1 byte, leaf-1, leaf, leaf+1, odd leaf counts, several threads' worth of leaves, and
    a leaf size that is not a whole number of 8-byte words (served by the per-call path)."""
    commit = native_state
    rng = np.random.default_rng(leaf)
    sizes = [0, 1, leaf - 1, leaf, leaf + 1, 3 * leaf, 5 * leaf + 7, 8 * leaf, 9 * leaf - 3,
             commit.MIN_LEAVES_PER_THREAD * 3 * leaf + 1, 1000 * leaf + 33]
    for size in sizes:
        raw = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        full = size - size % leaf
        by_hand = [k(raw[i : i + leaf]) for i in range(0, full, leaf)]
        if full < size:
            by_hand.append(k(raw[full:] + bytes(-(size - full) % 32)))
        for threads in (1, 2, 3):
            with hashing_threads(threads):
                per_call, native = _both_paths(
                    commit, lambda: (leaf_hashes(raw, leaf), commit.bytes_root(raw, size, leaf))
                )
                assert per_call == native
                assert native[0] == by_hand
                assert native[1] == k(reference_root(by_hand) + size.to_bytes(32, "big"))


def test_native_path_reads_unaligned_and_read_only_buffers(native_state):
    commit = native_state
    raw = np.random.default_rng(5).integers(0, 256, 2048 * 70 + 9, dtype=np.uint8).tobytes()
    views = (memoryview(raw)[1:], memoryview(raw)[3 : 3 + 2048 * 65], memoryview(bytearray(raw)))
    for view in views:
        per_call, native = _both_paths(commit, lambda: (leaf_hashes(view), commit.bytes_root(view, 7)))
        assert per_call == native


def test_native_tensor_roots_match_for_non_contiguous_and_int_tensors(native_state):
    commit = native_state
    torch.manual_seed(3)
    tensors = [
        torch.randn(300, 700).t(),  # transposed: serialized in C order of the transpose
        torch.randn(64, 1024)[:, ::2],  # strided columns
        torch.randn(10, 3000)[2:9],  # a contiguous slice at an offset
        torch.arange(70_001, dtype=torch.int64),
        torch.arange(4097, dtype=torch.int32),
        torch.randn(512 * 3),  # exactly three leaves
        torch.randn(1),
        torch.zeros(0),
    ]
    for tensor in tensors:
        per_call, native = _both_paths(commit, lambda: tensor_root(tensor))
        assert per_call == native
        assert native == tensor_root(tensor.contiguous().clone())


@pytest.mark.parametrize("count", [*range(1, 41), 63, 64, 65, 1000, 1023, 1025])
def test_native_merkle_root_and_levels_match_the_per_call_path(native_state, count):
    commit = native_state
    leaves = [k(i.to_bytes(4, "big")) for i in range(count)]
    per_call, native = _both_paths(commit, lambda: (merkle_root(leaves), commit._levels(leaves)))
    assert per_call == native
    assert native[0] == reference_root(leaves)
    stop = min(count, 5)
    start, stop = count // 3, max(stop, count // 3 + 1)
    per_call_proof, proof = _both_paths(commit, lambda: merkle_range_proof(leaves, start, stop))
    assert per_call_proof == proof
    assert verify_range_proof(native[0], leaves[start:stop], start, proof, count)


def test_native_merkle_root_keeps_the_per_call_rule_for_odd_sized_nodes(native_state):
    """Nodes that are not 32 bytes are hashed as the per-call path concatenates them."""
    commit = native_state
    leaves = [bytes([i]) * (32 + i % 2) for i in range(20)]
    per_call, native = _both_paths(commit, lambda: merkle_root(leaves))
    assert per_call == native


@pytest.mark.parametrize("features", [1, 2, 5, 64])
def test_native_dataset_roots_match_the_per_call_path(native_state, features):
    """Rows of an even feature count are whole 8-byte words (native), odd ones are not (per call)."""
    commit = native_state
    data = synthetic_dataset(301, features, 3, seed=features)
    per_call, native = _both_paths(
        commit, lambda: (commit.row_leaves(data.x, data.y), dataset_root(data.x, data.y))
    )
    assert per_call == native
    rows = [k(data.x[i].numpy().astype("<f4").tobytes() + int(data.y[i]).to_bytes(8, "little")) for i in range(301)]
    assert native[0] == rows
