"""contracts/arbitration/merkle.vy against offchain.ml.commit and offchain.dispute.moves."""

from __future__ import annotations

import functools
from pathlib import Path

import boa
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.chain.suite import CONTRACTS
from offchain.dispute.moves import multi_root, multiproof
from offchain.ml.commit import keccak256, merkle_range_proof, merkle_root, tree_depth

HERE = Path(__file__).parent
boa.interpret.set_search_paths([str(CONTRACTS)])


@functools.cache
def _deployer():
    return boa.load_partial(str(HERE / "MerkleHarness.vy"))


_deployed: list = []


def harness():
    """The harness, redeployed when a test anchor rolled it back."""
    if not _deployed or not boa.env.evm.get_code(_deployed[0].address):
        _deployed[:] = [_deployer().deploy()]
    return _deployed[0]


def leaves_of(n: int, salt: int = 0) -> list[bytes]:
    return [keccak256(bytes([salt]) + i.to_bytes(4, "big")) for i in range(n)]


@st.composite
def tree_and_subset(draw, max_leaves: int = 40, max_open: int = 8):
    n = draw(st.integers(1, max_leaves))
    k = draw(st.integers(1, min(n, max_open)))
    indices = sorted(draw(st.sets(st.integers(0, n - 1), min_size=k, max_size=k)))
    return n, indices


@settings(max_examples=60, deadline=None)
@given(tree_and_subset())
def test_multiproof__contract_equals_reference_and_root(case):
    n, indices = case
    leaves = leaves_of(n)
    proof = multiproof(leaves, indices)
    hashes = [leaves[i] for i in indices]
    ok, root = harness().multi_root(indices, hashes, proof, n)
    assert ok and root == merkle_root(leaves)
    assert multi_root(indices, hashes, proof, n) == merkle_root(leaves)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.data())
def test_multiproof__contiguous_range_is_the_commit_range_proof(n, data):
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    leaves = leaves_of(n, 1)
    assert multiproof(leaves, list(range(start, stop))) == merkle_range_proof(leaves, start, stop)
    stop = min(stop, start + 65)
    ok, root = harness().multi_root(list(range(start, stop)), leaves[start:stop],
                                    merkle_range_proof(leaves, start, stop), n)
    assert ok and root == merkle_root(leaves)


@settings(max_examples=40, deadline=None)
@given(tree_and_subset(max_leaves=20, max_open=4), st.sampled_from(["leaf", "sibling", "count", "extra", "short", "order"]))
def test_multiproof__tampering_never_yields_the_root(case, how):
    n, indices = case
    leaves = leaves_of(n, 2)
    proof = multiproof(leaves, indices)
    hashes = [leaves[i] for i in indices]
    count = n
    if how == "leaf":
        hashes[0] = keccak256(hashes[0])
    elif how == "sibling":
        if not proof:
            return
        proof[0] = keccak256(proof[0])
    elif how == "count":
        count = n * 2 + 1  # one level deeper
    elif how == "extra":
        proof = proof + [bytes(32)]
    elif how == "short":
        if not proof:
            return
        proof = proof[:-1]
    elif how == "order":
        if len(indices) < 2:
            return
        indices = [indices[1], indices[0], *indices[2:]]
        hashes = [hashes[1], hashes[0], *hashes[2:]]
    ok, root = harness().multi_root(indices, hashes, proof, count)
    assert not (ok and root == merkle_root(leaves))
    assert multi_root(indices, hashes, proof, count) != merkle_root(leaves)


def test_multiproof__index_out_of_range_and_empty_are_malformed():
    leaves = leaves_of(5)
    assert harness().multi_root([5], [leaves[0]], [], 5) == (False, bytes(32))
    assert harness().multi_root([], [], [], 5) == (False, bytes(32))
    assert harness().multi_root([0], [leaves[0]], [], 0) == (False, bytes(32))


def test_multiproof__single_leaf_tree_needs_no_siblings():
    leaf = leaves_of(1)[0]
    assert harness().multi_root([0], [leaf], [], 1) == (True, leaf)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 257))
def test_merkle_root__matches_commit(n):
    leaves = leaves_of(n, 3)
    assert harness().merkle_root(leaves) == merkle_root(leaves)


@given(st.integers(1, 2**40))
def test_depth__is_tree_depth(count):
    assert harness().depth(count) == tree_depth(count)
