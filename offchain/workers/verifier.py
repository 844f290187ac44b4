"""Verifiers and whistleblowers: replay sampled segments of a proof and challenge a bad one.

Both audit the same way (PROTOCOL §5): fetch the solver's checkpoints, check
them against the committed roots, replay the top-Q segments by update norm plus
segments drawn from randomness the solver could not predict, and compare with
a distance threshold profiled on this machine. The drawn verifier then accepts
or challenges; a whistleblower challenges only what a verifier let through.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Any

from eth_utils import keccak

from offchain.chain.client import TaskView
from offchain.chain.suite import TaskState
from offchain.dispute.player import Prosecution, TaskSteps
from offchain.distributed.group import GroupError, GroupTask, verify_group
from offchain.distributed.group_proof import GroupProof, GroupProofError, ParticipantSteps, read_document
from offchain.distributed.parts import PartsError
from offchain.log import Progress
from offchain.ml import DEFAULT_POLICY, DemoTask, MLError, Verdict, profile_threshold, verify
from offchain.storage import MAX_ARTIFACT_BYTES, StorageError
from offchain.workers.artifacts import (
    MAX_SPEC_BYTES,
    ArtifactMismatch,
    fetch_any_task,
    fetch_checkpoints,
    fetch_proof,
)
from offchain.workers.base import Worker


# A rejection this close to a graph's shared threshold is confirmed against the task's own profile
# before anyone is challenged; cheats land 1e3–3e4× over it (docs/proof-of-learning.md §10.3).
CONFIRM_FACTOR = 100
# participant segments of a group task replayed at most (drawn from the verifier's seed)
GROUP_SAMPLE = 16
# bytes of a group's published parts a verifier fetches at most
MAX_GROUP_BYTES = 4 * 1024**3


def needs_confirmation(verdict: Verdict) -> bool:
    """A rejection by replay whose distance is finite and under ``CONFIRM_FACTOR`` × the threshold."""
    distance = verdict.distances.get(verdict.failing_segment) if not verdict.accept else None
    return distance is not None and math.isfinite(distance) and distance < CONFIRM_FACTOR * verdict.threshold


class Auditor(Worker):
    """What a verifier and a whistleblower share: reaching a verdict on a proof."""

    def __init__(self, *, threads: int = 1, **kwargs: Any):
        """``threads``: intra-op threads to replay with (`dtm verifier run` gives every core but
        one, a worker alone in its process); a verdict needs no bitwise equality with the solver."""
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        super().__init__(**kwargs)
        self._nothing_to_prove: set[int] = set()
        self._groups: dict[int, GroupTask] = {}

    def _profile(self, bundle: DemoTask, own: bool = False) -> dict[str, float]:
        """The distance threshold on this machine and the replay time of one step, profiled once per
        training graph and thread count and shared by every task of that graph (``own``: profiled
        on this task's data and weights, to confirm a close rejection). Profiling runs four
        executions of each profiled segment; the slowest, float64, makes the time estimate safe."""
        task = bundle.task
        scope = (task.graph_root, task.dataset_root, task.weights_root) if own else (task.graph_root,)
        key = "profile:" + ":".join(root.hex() for root in scope) + f":{self.threads}"
        if (cached := self.state.get(key)) is None:
            started = time.perf_counter()
            threshold = profile_threshold(bundle.graph, task, bundle.spec, bundle.dataset, bundle.weights,
                                          num_threads=self.threads)
            steps = 4 * len(threshold.observations) // 3 * task.checkpoint_interval
            cached = {"threshold": threshold.value, "step_seconds": (time.perf_counter() - started) / max(steps, 1)}
            self.state.put(key, cached)
            self.log.info("profiled distance threshold %.3e, %.2f ms a replayed step (%s)", cached["threshold"],
                          1e3 * cached["step_seconds"], "this task's data" if own else "shared by its graph")
        return cached

    def prepare(self, task_id: int, spec_cid: str, spec_hash: bytes) -> None:
        """Profile a task's graph as soon as the task is posted, so no verify window pays for it (a
        group task's replays are exact: it is only derived)."""
        try:
            bundle = self._fetch(task_id, spec_cid, spec_hash)
            if isinstance(bundle, GroupTask):
                self.log.info("task %d: ready to verify (a group of %d)", task_id, bundle.spec.world)
                return
            profile = self._profile(bundle)
        except (StorageError, MLError, ArtifactMismatch) as exc:
            self.log.info("task %d: not profiling it yet: %s", task_id, exc)
        else:
            self.log.info("task %d: ready to verify (distance threshold %.3e)", task_id, profile["threshold"])

    def _fetch(self, task_id: int, spec_cid: str, spec_hash: bytes) -> DemoTask | GroupTask:
        """The task (a group task is derived once, then kept)."""
        if (kept := self._groups.get(task_id)) is not None and kept.hash() == spec_hash:
            return kept
        bundle = fetch_any_task(self.store, spec_cid, spec_hash)
        if isinstance(bundle, GroupTask):
            self._groups[task_id] = bundle
        return bundle

    def audit(self, task: TaskView, seed: bytes) -> Verdict:
        """Verdict on the task's current proof, remembered so a restart does not replay it."""
        record = self.state.task(task.task_id) or {}
        key = task.proof_root.hex()
        if (saved := (record.get("verdicts") or {}).get(key)) is not None:
            return Verdict(saved["accept"], saved["segment"], saved["reason"])
        bundle = self.bundle(task)
        submitted = self.latest_event("ProofSubmitted", task.task_id)
        if isinstance(bundle, GroupTask):
            verdict = self._audit_group(task, bundle, submitted["proof_cid"], seed)
        else:
            verdict = self._audit_task(task, bundle, submitted["proof_cid"], seed)
        if not verdict.accept and verdict.failing_segment is None:
            verdict.failing_segment = 0  # the proof is malformed as a whole; any segment exposes it
        self.log.info("task %d: %s (replayed %d steps) %s", task.task_id,
                      "accept" if verdict.accept else "REJECT", verdict.replayed_steps, verdict.reason)
        verdicts = {**(record.get("verdicts") or {}),
                    key: {"accept": verdict.accept, "segment": verdict.failing_segment, "reason": verdict.reason}}
        self.state.update_task(task.task_id, verdicts=verdicts)
        return verdict

    def _audit_group(self, task: TaskView, group: GroupTask, proof_cid: str, seed: bytes) -> Verdict:
        """Fetch the parts the group's proof names, check they give its proof root, and replay
        every participant's segments (a sample of `GROUP_SAMPLE` when there are more), each exactly
        as its participant ran it; the first that does not replay is challenged."""
        try:
            parts = self._group_parts(task, group, proof_cid)
            proof = GroupProof(group, parts)
            if proof.roots[1] != task.proof_root:
                return Verdict(False, 0, "the published parts do not give the proof root on chain")
            result = verify_group(group.spec, parts, sample=GROUP_SAMPLE, seed=int.from_bytes(seed, "big"))
        except (StorageError, MLError, PartsError, GroupError, OSError, ValueError, KeyError) as exc:
            return Verdict(False, 0, f"group proof unavailable or malformed: {exc}")
        steps = len(result.verdicts) * group.spec.checkpoint_interval
        failed = next((v for v in result.verdicts if not v.accept), None)
        if failed is None:
            return Verdict(True, None, f"{len(result.verdicts)} participant segments replay exactly",
                           replayed_steps=steps)
        return Verdict(False, group.segment(failed.rank, failed.segment),
                       f"participant {failed.rank} segment {failed.segment}: {failed.reason or 'does not replay'}",
                       replayed_steps=steps)

    def _group_parts(self, task: TaskView, group: GroupTask, proof_cid: str) -> Path:
        """The parts a group proof document names, fetched (each against its CID) under this
        worker's folder; kept for the dispute."""
        files = read_document(self.store.cat(proof_cid, max_size=MAX_SPEC_BYTES * 64), task.proof_root).files
        parts = self.folder / "audits" / f"{self.role}-{self.address.lower()}" / f"{task.task_id}-{task.proof_root.hex()[:16]}"
        total = 0
        for name, cid in files.items():
            path = parts / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".tmp").write_bytes(self.store.cat(cid, max_size=MAX_ARTIFACT_BYTES))
                path.with_suffix(".tmp").replace(path)
            total += path.stat().st_size
            if total > MAX_GROUP_BYTES:
                raise GroupProofError(f"the group's parts exceed {MAX_GROUP_BYTES:,} bytes")
        return parts

    def _audit_task(self, task: TaskView, bundle: DemoTask, proof_cid: str, seed: bytes) -> Verdict:
        try:
            proof = fetch_proof(self.store, proof_cid, task.proof_root)
            blobs = fetch_checkpoints(self.store, proof)
        except (StorageError, MLError, ArtifactMismatch) as exc:
            # the solver must publish what it committed to; the dispute game makes it
            verdict = Verdict(False, 0, f"proof unavailable or malformed: {exc}")
        else:
            profile = self._profile(bundle)
            policy = self._policy(task, bundle, profile)
            progress = Progress(self.log, f"task {task.task_id} replay", sum(policy.counts(bundle.task.num_segments)),
                                "segments", seconds_left=lambda: self.time_left(task.deadline))
            replay = functools.partial(verify, bundle.task, bundle.spec, bundle.dataset, proof, blobs,
                                       seed=int.from_bytes(seed, "big"), graph=bundle.graph, policy=policy,
                                       num_threads=self.threads)
            verdict = replay(profile["threshold"], on_segment=progress.advance)
            progress.close()
            if needs_confirmation(verdict):
                self.log.info("task %d: %s, within %d× of its graph's threshold: confirming against this "
                              "task's own profile", task.task_id, verdict.reason, CONFIRM_FACTOR)
                verdict = replay(self._profile(bundle, own=True)["threshold"])
        return verdict

    def _policy(self, view: TaskView, bundle: DemoTask, profile: dict[str, float]):
        """The default sample, or as many segments as can be replayed (twice as slow as profiled)
        before the window closes."""
        task = bundle.task
        seconds = self.time_left(view.deadline) - 2 * self.margin
        fit = int(seconds / (2 * profile["step_seconds"] * task.checkpoint_interval))
        policy = DEFAULT_POLICY.within(task.num_segments, fit)
        if policy is not DEFAULT_POLICY:
            self.log.warning("task %d: %d s left: replaying %d segments, fewer than the default sample",
                             view.task_id, seconds, sum(policy.counts(task.num_segments)))
        return policy

    def bundle(self, task: TaskView) -> DemoTask | GroupTask:
        created = self.latest_event("TaskCreated", task.task_id)
        return self._fetch(task.task_id, created["spec_cid"], task.spec_hash)

    def prosecute(self, task: TaskView) -> None:
        """Play the dispute this auditor opened (once it found nothing to prove, it stops looking)."""
        if task.dispute_id in self._nothing_to_prove:
            return
        submitted = self.latest_event("ProofSubmitted", task.task_id)
        bundle = self.bundle(task)
        if isinstance(bundle, GroupTask):
            segment = self.market.read(self.market.arbiter, "disputes", task.dispute_id)["segment"]
            proof = GroupProof(bundle, self._group_parts(task, bundle, submitted["proof_cid"]))
            steps = ParticipantSteps(proof, bundle.participant(segment))
        else:
            proof = fetch_proof(self.store, submitted["proof_cid"], task.proof_root)
            steps = TaskSteps(self.store, bundle, proof)
        done = Prosecution(self.market, self.store, steps).play(task)
        if done == Prosecution.NOTHING_TO_PROVE:
            self._nothing_to_prove.add(task.dispute_id)
        if done is not None:
            self.log.info("task %d: dispute %d: %s", task.task_id, task.dispute_id, done)

    def finish(self, task: TaskView) -> None:
        self.collect_credits()
        super().finish(task)


class Verifier(Auditor):
    """`lazy` accepts without looking (the verifier whistleblowers exist to expose);
    `adversarial` challenges every proof (the verifier honest solvers must beat)."""

    role = "verifier"
    watches = ("TaskCreated", "VerifierDrawn")

    def __init__(self, *, lazy: bool = False, adversarial: bool = False, **kwargs: Any):
        self.lazy, self.adversarial = lazy, adversarial
        super().__init__(**kwargs)

    def event_filter(self, name: str) -> dict[str, Any]:
        return {"verifier": self.address} if name == "VerifierDrawn" else {}

    def on_event(self, name: str, args: Any) -> None:
        if name == "TaskCreated":
            if not (self.lazy or self.adversarial):
                self.prepare(args["task_id"], args["spec_cid"], args["spec_hash"])
            return
        super().on_event(name, args)

    def advance(self, task: TaskView) -> None:
        if task.state == TaskState.DISPUTED and task.challenger == self.address:
            self.prosecute(task)
            return
        if task.state != TaskState.SUBMITTED or task.verifier != self.address or not self.in_time(task.deadline):
            return  # not this verifier's move (it keeps watching until the task ends, for its fee)
        seed = self.latest_event("VerifierDrawn", task.task_id)["seed"]
        if self.lazy or self.adversarial:
            verdict = Verdict(self.lazy, None if self.lazy else 0, "not checked")
        else:
            verdict = self.audit(task, seed)
        if verdict.accept:
            self.market.transact("accept", task.task_id)
            self.log.info("task %d: accepted", task.task_id)
        else:
            self.market.challenge(task.task_id, task.proof_root, verdict.failing_segment)
            self.log.info("task %d: challenged segment %d", task.task_id, verdict.failing_segment)


class Whistleblower(Auditor):
    role = "whistleblower"
    watches = ("ProofAccepted",)

    def advance(self, task: TaskView) -> None:
        if task.state == TaskState.DISPUTED and task.challenger == self.address:
            self.prosecute(task)
            return
        if task.state != TaskState.ACCEPTED or not self.in_time(task.deadline):
            return
        if self.address in (task.solver, task.verifier):
            return
        # its own sample: random segments a lazy verifier might have skipped
        seed = keccak(self.latest_event("VerifierDrawn", task.task_id)["seed"] + bytes.fromhex(self.address[2:]))
        verdict = self.audit(task, seed)
        if not verdict.accept:
            self.market.challenge(task.task_id, task.proof_root, verdict.failing_segment)
            self.log.info("task %d: blew the whistle on segment %d", task.task_id, verdict.failing_segment)
