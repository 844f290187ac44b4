from __future__ import annotations

import importlib
import logging

import numpy as np
import pytest
import torch

from offchain.log import Progress
from offchain.ml import (
    DEFAULT_POLICY,
    VerificationPolicy,
    build_proof,
    cheats,
    profile_threshold,
    select_segments,
    verify,
)
from offchain.ml.train import NORM_CHUNK, update_norm
from offchain.ml.verify import state_distance


@pytest.fixture(scope="module")
def threshold(tiny):
    return profile_threshold(tiny.graph, tiny.task, tiny.spec, tiny.dataset, tiny.weights).value


def run_verify(demo, run, threshold, seed=5, policy=DEFAULT_POLICY):
    return verify(demo.task, demo.spec, demo.dataset, run.proof, run.checkpoint_blobs(demo), threshold, seed,
                  policy=policy, graph=demo.graph, stop_at_first=False)


def test_threshold_profile(tiny):
    profile = profile_threshold(tiny.graph, tiny.task, tiny.spec, tiny.dataset, tiny.weights, segments=2)
    assert {name for _, name, _ in profile.observations} == {"threads", "float64"}  # a program has no chunked variant
    assert profile.value >= profile.safety_factor * profile.max_observed
    assert 0 < profile.value < 1e-3


def test_honest_proof_accepted_for_any_seed(tiny, threshold):
    honest = cheats.honest_run(tiny)
    for seed in range(5):
        verdict = run_verify(tiny, honest, threshold, seed)
        assert verdict.accept, verdict.reason
        assert all(d == 0.0 for d in verdict.distances.values())  # same machine: bitwise
        assert verdict.replayed_steps <= 0.25 * tiny.task.steps + tiny.task.checkpoint_interval


def test_verify__reports_each_replayed_segment_and_progress_logs_it(tiny, threshold, caplog):
    """`on_segment` counts the replayed segments; `Progress` turns them into log lines, the last
    one naming the whole sample and the time left before the deadline."""
    honest = cheats.honest_run(tiny)
    total = sum(DEFAULT_POLICY.counts(tiny.task.num_segments))
    caplog.set_level(logging.INFO, logger="progress-test")
    progress = Progress(logging.getLogger("progress-test"), "task 7 replay", total, "segments", every=0.0,
                        seconds_left=lambda: 42)
    seen = []
    verdict = verify(tiny.task, tiny.spec, tiny.dataset, honest.proof, honest.checkpoint_blobs(tiny), threshold, 5,
                     graph=tiny.graph, on_segment=lambda n: (seen.append(n), progress.advance(n)))
    progress.close()
    assert verdict.accept and seen == list(range(1, len(verdict.distances) + 1)) and len(seen) == total
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == total
    assert lines[-1].startswith(f"task 7 replay: {total}/{total} segments, ") and lines[-1].endswith("(deadline in 42 s)")
    assert "done in ~" in lines[0] and "done in ~" not in lines[-1]


@pytest.mark.parametrize(
    "make",
    [
        lambda d: cheats.skip_steps(d, every=2),
        lambda d: cheats.skip_steps(d, every=4),
        lambda d: cheats.wrong_data(d, "seed"),
        lambda d: cheats.wrong_data(d, "dataset"),
        lambda d: cheats.forced_error(d),
    ],
    ids=["skip-half", "skip-3-of-4", "wrong-seed", "wrong-dataset", "forced-error"],
)
def test_cheats_are_flagged_by_default_policy(tiny, threshold, make):
    run = make(tiny)
    for seed in range(3):
        verdict = run_verify(tiny, run, threshold, seed)
        assert not verdict.accept
        assert verdict.failing_segment in run.bad_segments


@pytest.mark.parametrize("mode", ["stall", "noise"])
def test_fabricated_segment_flagged_when_replayed(tiny, threshold, mode):
    run = cheats.fabricate_segments(tiny, [6], mode)
    assert run.bad_segments == {6}
    everything = VerificationPolicy(replay_fraction=1.0)
    verdict = run_verify(tiny, run, threshold, policy=everything)
    assert not verdict.accept and verdict.failing_segment == 6
    assert [j for j, d in verdict.distances.items() if d > threshold] == [6]
    # The default (sampling) policy: seeds whose selection includes segment 6 reject it by name,
    # a seed whose selection misses it accepts.
    checkpoints = run.result.checkpoints
    norms = [update_norm(a.params, b.params) for a, b in zip(checkpoints, checkpoints[1:])]
    q_top, q_random = DEFAULT_POLICY.counts(len(norms))
    selections = {seed: select_segments(norms, q_top, q_random, seed) for seed in range(64)}
    assert all(len(set(chosen)) == q_top + q_random for chosen in selections.values())
    hits = [seed for seed, chosen in selections.items() if 6 in chosen][:2]
    miss = next(seed for seed, chosen in selections.items() if 6 not in chosen)
    assert hits, "no seed in range(64) selects segment 6"
    for seed in hits:
        verdict = run_verify(tiny, run, threshold, seed)
        assert verdict.selected == selections[seed]
        assert not verdict.accept and verdict.failing_segment == 6
        assert verdict.reason.startswith("segment 6: distance")
    verdict = run_verify(tiny, run, threshold, miss)
    assert verdict.selected == selections[miss]
    assert verdict.accept, verdict.reason


def test_forced_error_keeps_genuine_result(tiny, tiny_result):
    run = cheats.forced_error(tiny)
    assert run.genuine is not None and run.genuine.roots == tiny_result.roots
    segment = next(iter(run.bad_segments))
    assert run.result.roots[: segment + 1] == tiny_result.roots[: segment + 1]
    assert run.result.roots[segment + 1] != tiny_result.roots[segment + 1]
    assert run.proof.count == build_proof(tiny.task, tiny_result).count


def test_forced_error__a_solver_s_genuine_run_is_not_trained_again(tiny, tiny_result, monkeypatch):
    """The solver passes the run it trained: the forced error costs one more training, not two
    (its time check allows twice the training time)."""
    monkeypatch.setattr(cheats, "train", lambda *a, **k: pytest.fail("trained the genuine run again"))
    run = cheats.forced_error(tiny, genuine=tiny_result)
    assert run.genuine is tiny_result and run.bad_segments == {int(np.argmax(tiny_result.update_norms))}
    assert run.result.roots != tiny_result.roots


def test_commitment_failures(tiny, threshold):
    honest = cheats.honest_run(tiny)
    blobs = honest.checkpoint_blobs(tiny)
    swapped = list(blobs)
    swapped[3] = blobs[4]
    verdict = verify(tiny.task, tiny.spec, tiny.dataset, honest.proof, swapped, threshold, 1)
    assert not verdict.accept and "committed root" in verdict.reason and verdict.failing_segment == 2
    verdict = verify(tiny.task, tiny.spec, tiny.dataset, honest.proof, blobs[:-1], threshold, 1)
    assert not verdict.accept
    garbage = list(blobs)
    garbage[2] = b"\x00" * 40
    assert "unreadable" in verify(tiny.task, tiny.spec, tiny.dataset, honest.proof, garbage, threshold, 1).reason


def test_wrong_initial_weights_rejected(tiny, threshold):
    from offchain.ml import train
    from offchain.ml.exporter import mlp_preset

    _, _, weights = mlp_preset(8, (8,), 3, batch_size=tiny.task.batch_size, lr=tiny.task.lr, seed=99)
    other = train(tiny.task, tiny.spec, weights, tiny.dataset)
    proof = build_proof(tiny.task, other)
    blobs = [c.to_bytes(tiny.spec) for c in other.checkpoints]
    verdict = verify(tiny.task, tiny.spec, tiny.dataset, proof, blobs, threshold, 1)
    assert not verdict.accept and verdict.failing_segment == 0 and "initial weights" in verdict.reason


def test_proof_for_other_task_rejected(tiny, digits, threshold):
    honest = cheats.honest_run(tiny)
    verdict = verify(digits.task, digits.spec, digits.dataset, honest.proof, [], threshold, 1)
    assert not verdict.accept and "different task" in verdict.reason


def test_select_segments():
    norms = [float(n) for n in [5, 1, 9, 3, 9, 2, 7, 0, 4, 6]]
    chosen = select_segments(norms, 2, 3, seed=42)
    assert chosen[:2] == [2, 4]  # ties broken by index
    assert len(chosen) == len(set(chosen)) == 5
    assert chosen == select_segments(norms, 2, 3, seed=42)
    assert sorted(select_segments(norms, 3, 100, seed=1)) == list(range(10))
    seen = {tuple(select_segments(norms, 0, 2, seed=s)) for s in range(30)}
    assert len(seen) > 10
    assert DEFAULT_POLICY.counts(200) == (6, 44)
    assert sum(DEFAULT_POLICY.counts(200)) <= 0.25 * 200
    assert DEFAULT_POLICY.counts(1) == (1, 0)


def test_policy_within__keeps_the_default_when_it_fits_else_the_largest_sample_that_does():
    from offchain.ml.verify import DEFAULT_POLICY

    assert DEFAULT_POLICY.within(40, 100) is DEFAULT_POLICY
    assert sum(DEFAULT_POLICY.counts(40)) == 10
    for fit in (1, 3, 7):
        smaller = DEFAULT_POLICY.within(40, fit)
        assert sum(smaller.counts(40)) == fit and smaller.counts(40)[0] >= 1
    assert sum(DEFAULT_POLICY.within(40, 0).counts(40)) == 1


def test_needs_confirmation__only_a_finite_rejection_by_replay_close_to_the_threshold():
    """A verdict against a graph's shared threshold is confirmed on the task's own profile only when
    its failing distance is finite and under CONFIRM_FACTOR × the threshold."""
    from offchain.ml import Verdict
    from offchain.workers.verifier import CONFIRM_FACTOR, needs_confirmation

    def rejected(distance):
        return Verdict(False, 3, "segment 3", distances={1: 0.0, 3: distance}, threshold=1e-6)

    assert needs_confirmation(rejected(2e-6))
    assert not needs_confirmation(rejected(CONFIRM_FACTOR * 1e-6))  # a cheat's distance: act on it
    assert not needs_confirmation(rejected(float("nan"))) and not needs_confirmation(rejected(float("inf")))
    assert not needs_confirmation(Verdict(False, 0, "checkpoint 0 is not the task's initial weights", threshold=1e-6))
    assert not needs_confirmation(Verdict(True, distances={1: 0.0}, threshold=1e-6))


def test_norms__accumulate_in_float64_chunk_by_chunk_like_one_pass():
    """Squares sum in float64 chunk by chunk as one float64 pass would; the float32 difference is
    exact for a replay beside its commitment (within a factor of two), and within one float32
    rounding (2^-24 relative) for an update that moves a weight further."""
    g = torch.Generator().manual_seed(4)
    after = {"w": torch.randn(3 * NORM_CHUNK + 5, generator=g) * 1e3,
             "t": torch.randn(NORM_CHUNK // 3, 7, generator=g).t()}  # not contiguous

    def exact(a, b):
        return sum(float(((a[n].double() - b[n].double()) ** 2).sum()) for n in a) ** 0.5

    replayed = {name: t * (1 + 1e-6 * torch.randn(t.shape, generator=g)) for name, t in after.items()}
    assert update_norm(replayed, after) == pytest.approx(exact(after, replayed), rel=1e-12)
    before = {name: t + torch.randn(t.shape, generator=g) for name, t in after.items()}
    exact_update = exact(after, before)
    assert update_norm(before, after) == pytest.approx(exact_update, rel=2 ** -24)
    exact_norm = sum(float((b.double() ** 2).sum()) for b in before.values()) ** 0.5
    assert state_distance(after, before) == pytest.approx(exact_update / exact_norm, rel=2 ** -24)
    assert state_distance(before, before) == 0.0


def test_verify__checks_norms_and_distances_on_the_callers_thread_count(tiny, threshold, monkeypatch):
    """Norm chunks run on the verifier's thread count, not the process default: a parallel kernel
    over a 64K-element chunk is all wake-up cost, and on a busy machine made a verification 1.5x
    slower (state distances 25x)."""
    train_module, verify_module = (importlib.import_module(f"offchain.ml.{name}") for name in ("train", "verify"))
    seen = []
    measured = train_module.squared_distance

    def recording(a, b, **options):
        seen.append(torch.get_num_threads())
        return measured(a, b, **options)

    monkeypatch.setattr(train_module, "squared_distance", recording)
    monkeypatch.setattr(verify_module, "squared_distance", recording)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        verdict = run_verify(tiny, cheats.honest_run(tiny), threshold)
        profile_threshold(tiny.graph, tiny.task, tiny.spec, tiny.dataset, tiny.weights, segments=1)
    finally:
        torch.set_num_threads(threads)
    assert verdict.accept and seen and set(seen) == {1}


@pytest.fixture(scope="module")
def wide():
    """A task whose checkpoints (1.07 MB) are checked on a second core while segments replay."""
    from offchain.ml import synthetic_dataset
    from offchain.ml.demo import mlp_task
    from offchain.ml.verify import OVERLAP_BYTES

    demo = mlp_task(512, (512,), 8, synthetic_dataset(64, 512, 8, seed=2), steps=12, k=2,
                     batch_size=8, lr=0.05, seed=3)
    run = cheats.honest_run(demo)
    assert len(run.checkpoint_blobs(demo)[0]) >= OVERLAP_BYTES
    return demo, run


def test_verify__replays_the_drawn_segments_while_the_checkpoints_are_checked(wide, monkeypatch):
    """The random draw's segments are selected whatever the norms: they replay before the update
    norms are known (each norm here waits for the first replay, which a check-first verifier never
    starts) on the verifier's thread count, and the verdict is the one of checking first."""
    import threading

    verify_module = importlib.import_module("offchain.ml.verify")
    demo, run = wide
    replaying, order = threading.Event(), []
    replay, measure = verify_module.replay_segment, verify_module.update_norm

    def replay_segment(*args, **kwargs):
        order.append(("replay", args[4]))
        replaying.set()
        return replay(*args, **kwargs)

    def update_norm(before, after):
        order.append(("norm", replaying.wait(timeout=20) and torch.get_num_threads() == 1))
        return measure(before, after)

    monkeypatch.setattr(verify_module, "replay_segment", replay_segment)
    monkeypatch.setattr(verify_module, "update_norm", update_norm)
    verdict = run_verify(demo, run, 1e-4, seed=9)
    assert order[0][0] == "replay" and all(ready for kind, ready in order if kind == "norm")
    q_top, q_random = DEFAULT_POLICY.counts(demo.task.num_segments)
    assert verdict.accept and verdict.selected == select_segments(run.result.update_norms, q_top, q_random, 9)
    assert sorted(verdict.distances) == sorted(verdict.selected) and set(verdict.distances.values()) == {0.0}
    assert sorted(s for kind, s in order if kind == "replay") == sorted(verdict.selected)  # each once


@pytest.mark.parametrize("damage", ["bytes", "unreadable"])
def test_verify__a_failed_commitment_wins_over_an_overlapped_replay(wide, damage):
    """A drawn segment replays from bytes still being checked: when they are not the committed
    ones, the verdict names the checkpoint, not the replay's distance."""
    import struct

    from offchain.ml.verify import random_draws

    demo, run = wide
    blobs = run.checkpoint_blobs(demo)
    segment = next(random_draws(demo.task.num_segments, 4))
    if damage == "bytes":
        blob = bytearray(blobs[segment])
        blob[-4:] = struct.pack("<f", 1e30)  # in the last tensor: every replay from it fails
        blobs[segment] = bytes(blob)
    else:
        blobs[segment] = blobs[segment][:100]
    verdict = verify(demo.task, demo.spec, demo.dataset, run.proof, blobs, 1e-4, 4, graph=demo.graph)
    expected = "bytes do not match its committed root" if damage == "bytes" else "unreadable"
    assert not verdict.accept and verdict.failing_segment == max(segment - 1, 0)
    assert verdict.reason.startswith(f"checkpoint {segment} ") and expected in verdict.reason
