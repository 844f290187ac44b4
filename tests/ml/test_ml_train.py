from __future__ import annotations

import pytest
import torch
from Crypto.Hash import keccak as crypto_keccak
from eth_abi import encode as abi_encode

from offchain.ml import (
    BatchSampler,
    Checkpoint,
    ProofDocument,
    ProofError,
    TrainingError,
    batch_indices,
    build_proof,
    checkpoint_root,
    merge_results,
    proof_root,
    segment_state_roots,
    step_trace,
    synthetic_dataset,
    train,
)
from offchain.ml.demo import mlp_task


def test_batch_indices_match_independent_abi_keccak():
    seed = (1 << 255) + 12345
    for step in (0, 1, 999):
        expected = [
            int.from_bytes(
                crypto_keccak.new(digest_bits=256, data=abi_encode(["uint256"] * 3, [seed, step, i])).digest(), "big"
            ) % 1797
            for i in range(32)
        ]
        assert batch_indices(seed, step, 32, 1797) == expected


def test_sampler_matches_reference(tiny):
    sampler = BatchSampler(tiny.task.seed, tiny.task.batch_size, tiny.dataset)
    for step in (0, 5):
        idx = batch_indices(tiny.task.seed, step, tiny.task.batch_size, tiny.dataset.n_rows)
        assert sampler.indices(step) == idx
        x, y = sampler.batch(step)
        assert torch.equal(x, tiny.dataset.x[idx]) and torch.equal(y, tiny.dataset.y[idx])


def test_training_learns_and_checkpoints(tiny, tiny_result):
    task = tiny.task
    assert len(tiny_result.checkpoints) == task.num_checkpoints == 11
    assert [c.step for c in tiny_result.checkpoints] == list(range(0, 41, 4))
    assert len(tiny_result.losses) == task.steps and len(tiny_result.update_norms) == task.num_segments
    assert tiny_result.checkpoints[0].root == task.weights_root
    assert sum(tiny_result.losses[-8:]) < sum(tiny_result.losses[:8])
    for checkpoint in tiny_result.checkpoints:
        assert checkpoint.root == checkpoint_root(checkpoint.params, tiny.spec.param_names)


def test_training_is_bitwise_reproducible(tiny, tiny_result):
    again = train(tiny.task, tiny.spec, tiny.weights, tiny.dataset)
    assert again.roots == tiny_result.roots
    assert again.losses == tiny_result.losses


def test_callback_and_resume_bitwise(tiny, tiny_result):
    stored: dict[int, bytes] = {}
    train(tiny.task, tiny.spec, tiny.weights, tiny.dataset,
          on_checkpoint=lambda c: stored.__setitem__(c.index, c.to_bytes(tiny.spec)))
    assert sorted(stored) == list(range(tiny.task.num_checkpoints))
    for j in (0, 4, 9):
        start = Checkpoint.from_bytes(stored[j], tiny.spec, j, tiny.task.checkpoint_interval)
        seen: list[int] = []
        resumed = train(tiny.task, tiny.spec, tiny.weights, tiny.dataset, resume_from=start,
                        on_checkpoint=lambda c: seen.append(c.index))
        assert seen == list(range(j + 1, tiny.task.num_checkpoints))
        assert resumed.roots == tiny_result.roots[j:]
        assert resumed.losses == tiny_result.losses[j * tiny.task.checkpoint_interval:]
        merged = merge_results(tiny_result, resumed)
        assert build_proof(tiny.task, merged) == build_proof(tiny.task, tiny_result)
    bad = Checkpoint(11, 44, tiny.weights, tiny.task.weights_root)
    with pytest.raises(TrainingError):
        train(tiny.task, tiny.spec, tiny.weights, tiny.dataset, resume_from=bad)


def test_keep_params_false_keeps_roots(tiny, tiny_result):
    lean = train(tiny.task, tiny.spec, tiny.weights, tiny.dataset, keep_params=False)
    assert lean.roots == tiny_result.roots
    assert lean.checkpoints[5].params == {} and lean.final_params


def test_proof_document(tiny, tiny_result):
    cids = [f"cid{j}" for j in range(tiny.task.num_checkpoints)]
    proof = build_proof(tiny.task, tiny_result, cids)
    assert proof.root == proof_root(tiny_result.roots) and proof.count == 11
    blob = proof.to_bytes()
    assert ProofDocument.from_bytes(blob) == proof
    assert proof.task_hash == tiny.task.hash()
    with pytest.raises(ProofError, match="canonical"):
        ProofDocument.from_bytes(blob.replace(b",", b", ", 1))
    with pytest.raises(ProofError):
        ProofDocument.from_bytes(blob.replace(b'"steps":40', b'"steps":44'))
    with pytest.raises(ProofError):
        ProofDocument(proof.task_hash, 4, 40, proof.checkpoint_roots[:-1], tuple(cids[:-1]), proof.update_norms[:-1], 0.1)
    with pytest.raises(ProofError):
        ProofDocument(proof.task_hash, 4, 40, proof.checkpoint_roots, tuple(cids), proof.update_norms, float("nan"))


def test_segment_roots_and_step_trace_link_to_checkpoints(tiny, tiny_result):
    graph, task, names = tiny.graph, tiny.task, tiny.spec.param_names
    segment = 3
    start = tiny_result.checkpoints[segment].params
    roots = segment_state_roots(graph, task, tiny.dataset, start, segment)
    assert len(roots) == task.checkpoint_interval + 1
    assert roots[0] == tiny_result.roots[segment] and roots[-1] == tiny_result.roots[segment + 1]
    output = step_trace(graph, task, tiny.dataset, start, segment * task.checkpoint_interval)
    after = dict(zip(names, output.params))
    assert checkpoint_root(after, names) == roots[1]
    assert output.trace is not None
    state_nodes = [node.id for node in graph.program.nodes if node.op == "state"]
    assert [output.trace[i] for i in state_nodes] == [start[n] for n in names]


def test_replay__is_bitwise_the_run_only_with_its_thread_count():
    """Why a solver keeps its thread count with each task (its dispute replays use it): on shapes
    where BLAS splits work by thread, 2-thread training is reproduced bitwise by a 2-thread replay
    and not by a 1-thread one. (A long contraction: MKL leaves a 256-term one whole on some CPUs.)"""
    demo = mlp_task(4096, (256,), 10, synthetic_dataset(512, 4096, 10, seed=1), steps=8, k=4,
                     batch_size=128, lr=0.1, seed=1)
    two = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, num_threads=2)
    start = two.checkpoints[0].params
    same = segment_state_roots(demo.graph, demo.task, demo.dataset, start, 0, num_threads=2)
    other = segment_state_roots(demo.graph, demo.task, demo.dataset, start, 0, num_threads=1)
    assert same[-1] == two.roots[1]
    assert other[-1] != two.roots[1]


def test_train__checkpoint_hooks_run_in_order_and_a_failing_one_ends_training():
    """Bookkeeping overlaps the next segment: hooks still see checkpoints in order, and after a
    hook raises (a full disk, a killed upload) no later checkpoint is handed over."""
    demo = mlp_task(8, (8,), 3, synthetic_dataset(64, 8, 3, seed=11), steps=40, k=4, batch_size=8,
                     lr=0.2, seed=7)
    seen = []

    def hook(checkpoint):
        seen.append(checkpoint.index)
        if checkpoint.index == 5:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, on_checkpoint=hook)
    assert seen == list(range(6))
    seen.clear()

    def first_fails(checkpoint):  # checkpoint 0 is booked while the first segment trains
        seen.append(checkpoint.index)
        raise OSError("no store")

    with pytest.raises(OSError, match="no store"):
        train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph, on_checkpoint=first_fails)
    assert seen == [0]
    ordered = []
    result = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph,
                   on_checkpoint=lambda c: ordered.append((c.index, c.root)))
    assert ordered == list(enumerate(result.roots))


def test_train__hashes_the_last_checkpoint_on_every_core_and_the_others_beside_training(monkeypatch):
    """While a segment trains, a checkpoint's root is hashed on one thread (the other cores train);
    after the last segment nothing trains, so the last checkpoint is hashed on every core."""
    import importlib

    from offchain.ml import commit

    train_module = importlib.import_module("offchain.ml.train")
    demo = mlp_task(8, (8,), 3, synthetic_dataset(64, 8, 3, seed=11), steps=16, k=4, batch_size=8,
                     lr=0.2, seed=7)
    monkeypatch.setattr(train_module.os, "cpu_count", lambda: 6)
    threads = []

    def counting_root(tensors, names):
        threads.append(commit._hashing_threads())
        return checkpoint_root(tensors, names)

    monkeypatch.setattr(train_module, "checkpoint_root", counting_root)
    result = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph)
    assert threads == [1, 1, 1, 1, 6]
    assert result.roots == train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph).roots


@pytest.mark.parametrize("overlap_bytes, thread", [(1 << 20, "MainThread"), (0, "checkpoint")])
def test_train__books_a_small_state_on_the_training_thread_and_a_large_one_beside_it(
        monkeypatch, overlap_bytes, thread):
    """A small state's roots and norms are Python-bound work: on a second thread it would only
    contend for the interpreter lock with training, so it is booked between segments; a state of
    `OVERLAP_BYTES` or more is booked on the bookkeeping thread while the next segment trains.
    The checkpoints are the same either way."""
    import importlib
    import threading

    train_module = importlib.import_module("offchain.ml.train")
    demo = mlp_task(8, (8,), 3, synthetic_dataset(64, 8, 3, seed=11), steps=16, k=4, batch_size=8,
                     lr=0.2, seed=7)
    monkeypatch.setattr(train_module, "OVERLAP_BYTES", overlap_bytes)
    threads = set()
    result = train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph,
                   on_checkpoint=lambda c: threads.add(threading.current_thread().name.split("_")[0]))
    assert threads == {thread}
    monkeypatch.setattr(train_module, "OVERLAP_BYTES", (1 << 20) - overlap_bytes)
    assert result.roots == train(demo.task, demo.spec, demo.weights, demo.dataset, graph=demo.graph).roots
