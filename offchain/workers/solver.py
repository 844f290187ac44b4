"""The solver: claims open tasks, trains them with proof of learning, and collects payment.

It commits to a fresh secret when it claims. If the secret and the claim's
entropy drawn after the claim make a forced error, its first proof carries one
(indistinguishable from an honest proof) while it keeps the genuine proof ready:
when challenged it declares the forced error and plays the game out honestly, so
the challenger proves the error and is paid, and it submits the genuine proof
once the forced error is proven or revealed. It draws the randomness its claim
and its proofs committed to (anyone may; the solver answers for it).
`cheat` turns it into one of the dishonest solvers the verifiers must catch.

A task it does not claim is skipped with a reason, logged once: for good when the
task cannot be done here (unusable artifacts, a window too short for this
machine), retried when the reason may pass (its content not reachable yet, no
free stake, busy with another task).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

from eth_utils import keccak

from offchain.chain.client import TaskView
from offchain.chain.suite import TaskState
from offchain.dispute.player import Defence, TaskSteps
from offchain.distributed.engine import Tamper, run as run_group
from offchain.distributed.group import GroupTask
from offchain.distributed.group_proof import GroupProof, ParticipantSteps
from offchain.distributed.spec import TrainSpec
from offchain.distributed.stage_program import train_stage_programs
from offchain.log import Progress
from offchain.ml import Checkpoint, DemoTask, MLError, TrainingResult, build_proof, cheats, train
from offchain.ml.commit import checkpoint_root
from offchain.ml.program import Corruption
from offchain.ml.train import merge_results, replay, update_norm
from offchain.storage import ContentNotFound, FetchTimeout, StorageError, StorageUnavailable
from offchain.workers.artifacts import (
    ArtifactMismatch,
    fetch_any_task,
    fetch_proof,
    checkpoint_file,
    load_checkpoints,
    save_checkpoint,
)
from offchain.workers.base import Worker

CHEATS = {
    "skip": lambda bundle: cheats.skip_steps(bundle, every=2),
    "fabricate": lambda bundle: cheats.fabricate_fraction(bundle, 0.5, mode="noise"),
    "wrong-data": lambda bundle: cheats.wrong_data(bundle, mode="dataset"),
    "element": cheats.corrupt_element,  # program tasks: one wrong element, defended as trained
}


# a solver claims a task only if its measured training time, times this, fits the train window
TIME_SAFETY = 2.0
# content that may yet appear (not published or not propagated, the daemon down), and how long to wait
TRANSIENT_STORAGE = (ContentNotFound, FetchTimeout, StorageUnavailable)
CONTENT_RETRY = 10.0


def training_seconds(bundle: DemoTask, probe_steps: int = 4, threads: int = 1) -> float:
    """Training time of the whole task on this machine: a few measured steps (after one warm-up)
    times the step count, plus one checkpoint's root and serialisation per checkpoint."""
    task = bundle.task
    count = min(probe_steps, task.steps)
    replay(bundle.graph, task, bundle.dataset, bundle.weights, 0, 1, num_threads=threads)
    start = time.perf_counter()
    after = replay(bundle.graph, task, bundle.dataset, bundle.weights, 0, count, num_threads=threads)
    per_step = (time.perf_counter() - start) / count
    start = time.perf_counter()
    Checkpoint(1, count, after, checkpoint_root(after, bundle.spec.param_names)).to_bytes(bundle.spec)
    per_checkpoint = time.perf_counter() - start
    return per_step * task.steps + per_checkpoint * task.num_checkpoints


#: seconds to start a group's processes and set up its links, on top of its steps
GROUP_START = 20.0


def group_training_seconds(group: GroupTask, probe_steps: int = 2) -> float:
    """Training time of a group task on this machine, which runs every participant: a few steps
    of the group's programs (each participant on a thread) times the step count."""
    spec = group.spec
    probe = dataclasses.replace(spec, steps=probe_steps, checkpoint_interval=0, optimizer=spec.optimizer_config())
    start = time.perf_counter()
    train_stage_programs(probe)
    return (time.perf_counter() - start) / probe_steps * spec.steps + GROUP_START


def forced_tamper(spec: TrainSpec, secret: bytes) -> Tamper:
    """Where a group's forced error goes: a participant and a step drawn from the claim's secret,
    so that no verifier can check only where forced errors are put."""
    draw = int.from_bytes(keccak(b"dtm forced error" + secret), "big")
    rank, step = divmod(draw % (spec.world * spec.steps), spec.steps)
    return Tamper(rank, step)


class Solver(Worker):
    role = "solver"
    watches = ("TaskCreated", "TaskReopened")

    def __init__(self, *, cheat: str | None = None, corrupt_op: str | None = None, threads: int = 1, **kwargs: Any):
        """``threads``: intra-op threads to train with (`dtm solver run` gives every core but one,
        a worker alone in its process); kept with each task, since the solver's replays in a
        dispute are bitwise its training only with the count it trained with. ``corrupt_op``:
        the element cheat corrupts the last node of this op."""
        if cheat is not None and cheat not in CHEATS:
            raise ValueError(f"unknown cheat {cheat!r}; choose from {', '.join(CHEATS)}")
        if corrupt_op is not None and cheat != "element":
            raise ValueError("corrupt_op is the element cheat's")
        self.corrupt_op = corrupt_op
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.cheat = cheat
        self.threads = 1 if cheat else threads  # the cheats train on one
        if cheat:
            self.role = f"solver-{cheat}"
        super().__init__(**kwargs)
        self._bundles: dict[int, DemoTask] = {}

    def on_event(self, name: str, args: Any) -> None:
        if name == "TaskCreated":
            self.track(args["task_id"], spec_cid=args["spec_cid"])
        else:
            self.state.update_task(args["task_id"], done=False)

    # ── the task's life, as seen by its solver ──────────────────────
    def advance(self, task: TaskView) -> None:
        record = self.state.task(task.task_id) or {}
        mine = task.solver == self.address
        if task.state == TaskState.OPEN:
            if (busy := self._busy_elsewhere(task.task_id)) is not None:
                self._skip(task.task_id, f"busy with task {busy}, one task at a time")
            else:
                self._claim(task)
        elif not mine:
            if task.state not in (TaskState.FINALISED, TaskState.CANCELLED, TaskState.REFUNDED):
                self.state.update_task(task.task_id, done=True, outcome="taken by another solver")
        elif task.draw_block and task.state in (TaskState.CLAIMED, TaskState.SUBMITTED):
            # its own block is mined, so the next one can read its hash
            self.market.transact("draw", task.task_id)
            self.log.info("task %d: drew the randomness committed at block %d", task.task_id, task.draw_block)
        elif task.state == TaskState.CLAIMED:
            self._submit(task, record)
        elif task.state == TaskState.ACCEPTED and self.market.now() > task.deadline:
            self.market.transact("finalise", task.task_id, bytes.fromhex(record["secret"]))
            self.log.info("task %d: revealed secret and finalised", task.task_id)
        elif task.state == TaskState.DISPUTED:
            if record.get("forced") and task.round == 0 and not task.forced_declared:
                self.market.transact("declare_forced_error", task.task_id, bytes.fromhex(record["secret"]))
                self.log.info("task %d: the challenged proof is a forced error; declared it", task.task_id)
            self._defend(task, record)

    def _defend(self, task: TaskView, record: dict[str, Any]) -> None:
        submitted = self.latest_event("ProofSubmitted", task.task_id)
        bundle = self.bundle(task.task_id)
        mine = next((p for p in (record.get("proofs") or {}).values() if p["cid"] == submitted["proof_cid"]), {})
        if isinstance(bundle, GroupTask):
            proof = GroupProof(bundle, Path(mine["parts"]))
            segment = self.market.read(self.market.arbiter, "disputes", task.dispute_id)["segment"]
            steps = ParticipantSteps(proof, bundle.participant(segment))
        else:
            proof = fetch_proof(self.store, submitted["proof_cid"], task.proof_root)
            if "corruption" in mine:  # the element cheat replays its own corruption
                bundle = cheats.corrupted(bundle, Corruption(**mine["corruption"]))
            steps = TaskSteps(self.store, bundle, proof, record.get("threads", 1))
        defence = Defence(self.market, self.store, steps)
        if (done := defence.play(task)) is not None:
            self.log.info("task %d: dispute %d: %s", task.task_id, task.dispute_id, done)

    def finish(self, task: TaskView) -> None:
        if task.state == TaskState.FINALISED and task.solver == self.address:
            self.collect_credits()
        super().finish(task)

    def _busy_elsewhere(self, task_id: int) -> int | None:
        """One task at a time: a laptop's cores are the capacity. The task this solver holds, if any."""
        for other_id, record in self.state.tasks().items():
            if other_id != task_id and not record.get("done") and record.get("secret"):
                if self.market.task(other_id).solver == self.address:
                    return other_id
        return None

    def _skip(self, task_id: int, reason: str, *, final: str | None = None, detail: str = "") -> None:
        """Not claiming `task_id` for `reason`, logged once however often it is met. `final` (the
        outcome's prefix) closes the task for this solver; otherwise the next round looks again."""
        record = self.state.task(task_id) or {}
        if record.get("skip") != reason:
            self.log.warning("task %d: not claiming: %s%s%s", task_id, reason, f": {detail}" if detail else "",
                             "" if final else " (will look again)")
        changes: dict[str, Any] = {"skip": reason}
        if final:
            changes.update(done=True, outcome=f"{final}: {reason}" + (f": {detail}" if detail else ""))
        self.state.update_task(task_id, **changes)

    def _claim(self, task: TaskView) -> None:
        record = self.state.task(task.task_id) or {}
        if record.get("retry_at", 0) > time.time():
            return
        if self.market.events("TaskClaimed", self.market.deployment.block, task_id=task.task_id, solver=self.address):
            self._skip(task.task_id, "reopened after our attempt (one attempt per task)", final="skipped")
            return
        free = self.market.call("free_stake", self.address)
        if free < task.solver_stake:
            self._skip(task.task_id, f"no free stake: {free / 1e18:g} ETH free, the task needs "
                       f"{task.solver_stake / 1e18:g} ETH")
            return
        try:
            bundle = self.bundle(task.task_id)  # fetch and check everything before staking on it
        except TRANSIENT_STORAGE as exc:
            self.state.update_task(task.task_id, retry_at=time.time() + CONTENT_RETRY)
            self._skip(task.task_id, f"its content is not reachable yet ({type(exc).__name__})", detail=str(exc))
            return
        except (StorageError, MLError, ArtifactMismatch) as exc:
            self._skip(task.task_id, "its artifacts are unusable or unsupported here", final="rejected",
                       detail=str(exc))
            return
        group = isinstance(bundle, GroupTask)
        if self.corrupt_op and (group or not any(node.op == self.corrupt_op for node in bundle.graph.program.nodes)):
            self._skip(task.task_id, f"the element cheat corrupts a {self.corrupt_op} node; this program has none",
                       final="skipped")
            return
        needed = group_training_seconds(bundle) if group else training_seconds(bundle, threads=self.threads)
        if needed * TIME_SAFETY > task.train_window:
            self._skip(task.task_id, f"window too short: training needs ~{needed:.0f} s here, the window is "
                       f"{task.train_window} s", final="skipped")
            return
        secret = os.urandom(32)
        # written before sending
        self.state.update_task(task.task_id, secret=secret.hex(), forced=None, proofs=None, skip=None,
                               threads=self.threads)
        self.market.transact("claim", task.task_id, keccak(secret))
        self.log.info("task %d: claimed", task.task_id)

    def _submit(self, task: TaskView, record: dict[str, Any]) -> None:
        if keccak(bytes.fromhex(record["secret"])) != task.secret_hash:
            return  # claimed by this address under a secret this worker never saved
        if not self.in_time(task.deadline):
            self.log.warning("task %d: too late to submit", task.task_id)
            return
        proofs = record.get("proofs") or self._prove(task, record)
        kind = "genuine" if task.round > 0 or "published" not in proofs else "published"
        proof = proofs[kind]
        self.market.transact("submit", task.task_id, bytes.fromhex(proof["root"]), proof["count"], proof["cid"])
        self.log.info("task %d: submitted %s proof %s", task.task_id, kind, proof["cid"])

    # ── training and publishing ─────────────────────────────────────
    def bundle(self, task_id: int) -> DemoTask | GroupTask:
        if task_id not in self._bundles:
            record = self.state.task(task_id)
            self._bundles[task_id] = fetch_any_task(self.store, record["spec_cid"], self.market.task(task_id).spec_hash)
        return self._bundles[task_id]

    def _prove(self, task: TaskView, record: dict[str, Any]) -> dict[str, Any]:
        bundle = self.bundle(task.task_id)
        terms = self.market.terms(task.terms_id)
        forced = task.round == 0 and self.market.call(
            "is_forced_error", bytes.fromhex(record["secret"]), task.entropy, terms.forced_error_ppm)
        if isinstance(bundle, GroupTask):
            return self._prove_group(task, bundle, bytes.fromhex(record["secret"]) if forced else None)
        genuine = self._train(task.task_id, bundle, task.deadline, record.get("threads", 1))
        proofs = {"genuine": self._publish(bundle, genuine, self._checkpoints(task.task_id, bundle))}
        if forced:
            self.log.info("task %d: forced error drawn; publishing a corrupted proof first", task.task_id)
            proofs["published"] = self._publish(bundle, cheats.forced_error(bundle, genuine=genuine).result)
        elif self.cheat:
            self.log.info("task %d: cheating (%s)", task.task_id, self.cheat)
            run = (cheats.corrupt_element(bundle, op=self.corrupt_op) if self.corrupt_op
                   else CHEATS[self.cheat](bundle))
            proofs["published"] = self._publish(bundle, run.result)
            if run.corruption is not None:  # kept with the proof, to defend it as trained
                proofs["published"]["corruption"] = dataclasses.asdict(run.corruption)
        self.state.update_task(task.task_id, forced=bool(forced), proofs=proofs, losses=genuine.losses)
        return proofs

    def _prove_group(self, task: TaskView, group: GroupTask, forced_by: bytes | None) -> dict[str, Any]:
        """Train the group task with every participant on this machine (its processes), and publish
        the parts. A forced error (``forced_by``: the claim's secret) makes one participant, at one
        step, both drawn from the secret, tamper with its state; a cheat makes the last participant
        tamper half way."""
        spec = group.spec
        proofs = {"genuine": self._train_group(task.task_id, group)}
        if forced_by is not None:
            tamper = forced_tamper(spec, forced_by)
            self.log.info("task %d: forced error drawn; participant %d tampers after its step %d",
                          task.task_id, tamper.rank, tamper.step)
            proofs["published"] = self._train_group(task.task_id, group, tamper)
        elif self.cheat:
            self.log.info("task %d: cheating (participant %d tampers with its state)", task.task_id, spec.world - 1)
            proofs["published"] = self._train_group(task.task_id, group, Tamper(spec.world - 1, spec.steps // 2))
        self.state.update_task(task.task_id, forced=forced_by is not None, proofs=proofs)
        return proofs

    def _train_group(self, task_id: int, group: GroupTask, tamper: Tamper | None = None) -> dict[str, Any]:
        parts = (self.folder / "groups" / f"{self.role}-{self.address.lower()}"
                 / f"{task_id}-{group.hash().hex()[:16]}-{'tampered' if tamper else 'genuine'}")
        if parts.exists():
            shutil.rmtree(parts)  # a run cut short: its processes start again
        self.log.info("task %d: training with %d processes (%s)", task_id, group.spec.world, parts)
        run_group(group.spec, parts_dir=parts, tamper=tamper)
        proof = GroupProof(group, parts)
        cids = {str(path): self.store.add_file(parts / path) for path in proof.files()}
        return {"cid": self.store.add_bytes(proof.document(cids)), "root": proof.roots[1].hex(),
                "count": group.checkpoints, "parts": str(parts)}

    def _train(self, task_id: int, bundle: DemoTask, deadline: int, threads: int) -> TrainingResult:
        """Honest training, resumed from the last checkpoint saved on disk, with its progress."""
        directory = self._checkpoints(task_id, bundle)
        saved = load_checkpoints(directory, bundle)
        last = bundle.task.num_checkpoints - 1
        resume = saved[min(len(saved), last) - 1] if len(saved) > 1 else None
        progress = Progress(self.log, f"task {task_id} training", last, "checkpoints",
                            initial=resume.index if resume else 0,
                            seconds_left=lambda: self.time_left(deadline))

        def on_checkpoint(checkpoint: Checkpoint) -> None:
            save_checkpoint(directory, checkpoint, bundle)
            loss = sum(checkpoint.losses) / len(checkpoint.losses) if checkpoint.losses else float("nan")
            progress.advance(checkpoint.index, f"loss {loss:.4f}")

        # every checkpoint is on disk once booked: the run keeps only the first and last in memory
        result = train(bundle.task, bundle.spec, bundle.weights, bundle.dataset, graph=bundle.graph,
                       on_checkpoint=on_checkpoint, resume_from=resume, num_threads=threads, keep_params=False)
        progress.close()
        if resume is not None:
            self.log.info("task %d: resumed training from checkpoint %d", task_id, resume.index)
            before = saved[: resume.index + 1]
            first = TrainingResult(before, [loss for c in before for loss in c.losses],
                                   [update_norm(a.params, b.params) for a, b in zip(before, before[1:])])
            result = merge_results(first, result)
        return result

    def _checkpoints(self, task_id: int, bundle: DemoTask) -> Path:
        """Where this solver saves a task's honest checkpoints (keyed by the spec too: a task id
        names another task on another chain or after a reset)."""
        return (self.folder / "checkpoints" / f"{self.role}-{self.address.lower()}"
                / f"{task_id}-{bundle.task.hash().hex()[:16]}")

    def _publish(self, bundle: DemoTask, result: TrainingResult, saved: Path | None = None) -> dict[str, Any]:
        """Add the run's checkpoints and its proof document to the store; ``saved``: the folder
        the run's checkpoints were saved to, published from their files."""
        cids = self._add_checkpoints(bundle, result, saved)
        proof = build_proof(bundle.task, result, cids)
        return {"cid": self.store.add_bytes(proof.to_bytes()), "root": proof.root.hex(), "count": proof.count}

    def _add_checkpoints(self, bundle: DemoTask, result: TrainingResult, saved: Path | None) -> list[str]:
        return [self.store.add_file(checkpoint_file(saved, c.index)) if saved
                else self.store.add_bytes(c.to_bytes(bundle.spec)) for c in result.checkpoints]
