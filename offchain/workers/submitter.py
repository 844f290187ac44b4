"""The submitter: posts tasks with escrowed payment and collects the trained weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from offchain.chain.client import Market, TaskView
from offchain.chain.suite import TaskState
from offchain.ml import Checkpoint, DemoTask, ProofDocument
from offchain.storage import ContentStore
from offchain.workers.artifacts import MAX_ARTIFACT_BYTES, PublishedTask, fetch_proof, fetch_task
from offchain.workers.base import Worker


@dataclass(frozen=True)
class TaskResult:
    proof: ProofDocument
    weights_cid: str
    weights: dict[str, torch.Tensor]
    accuracy: float


def fetch_result(market: Market, store: ContentStore, task_id: int) -> TaskResult:
    """The final weights of a finalised task, checked against the proof it was paid for."""
    task = market.task(task_id)
    if task.state != TaskState.FINALISED:
        raise LookupError(f"task {task_id} is {task.state.name.lower()}, not finalised")
    [finalised] = market.events("TaskFinalised", market.deployment.block, task_id=task_id)
    proof_root = finalised["args"]["proof_root"]
    submitted = [e["args"] for e in market.events("ProofSubmitted", market.deployment.block, task_id=task_id)
                 if e["args"]["proof_root"] == proof_root]
    created = market.events("TaskCreated", market.deployment.block, task_id=task_id)[0]["args"]
    bundle = fetch_task(store, created["spec_cid"], task.spec_hash)
    proof = fetch_proof(store, submitted[-1]["proof_cid"], proof_root)
    weights_cid = proof.checkpoint_cids[-1]
    final = Checkpoint.from_bytes(store.cat(weights_cid, max_size=MAX_ARTIFACT_BYTES), bundle.spec,
                                  proof.count - 1, proof.checkpoint_interval)
    if final.root != proof.checkpoint_roots[-1]:
        raise ValueError("final weights do not match the proof's last checkpoint root")
    return TaskResult(proof, weights_cid, final.params, accuracy(bundle, final.params))


def logits(bundle: DemoTask, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's outputs on the whole dataset (a plain forward pass of the MLP)."""
    x = bundle.dataset.x
    names = bundle.spec.param_names
    for index in range(0, len(names), 2):
        x = x @ params[names[index]].T + params[names[index + 1]]
        if index + 2 < len(names):
            x = torch.relu(x)
    return x


def accuracy(bundle: DemoTask, params: dict[str, torch.Tensor]) -> float:
    """Share of dataset rows the model classifies correctly."""
    return float((logits(bundle, params).argmax(1) == bundle.dataset.y).float().mean())


class Submitter(Worker):
    role = "submitter"

    def post(self, published: PublishedTask, *, payment: int, solver_stake: int, expires_in: int,
             train_window: int) -> int:
        task = published.bundle.task
        task_id = self.market.create_task(
            spec_cid=published.spec_cid, commitments=task.commitments(), payment=payment,
            solver_stake=solver_stake, expires=self.market.now() + expires_in, train_window=train_window,
        )
        self.track(task_id, spec_cid=published.spec_cid)
        self.log.info("task %d: posted %s (%d steps, k=%d)", task_id, published.spec_cid, task.steps,
                      task.checkpoint_interval)
        return task_id

    def advance(self, task: TaskView) -> None:
        """Nothing to do while others work: every deadline is enforced by whoever cares first."""

    def finish(self, task: TaskView) -> None:
        if task.state == TaskState.FINALISED:
            result = fetch_result(self.market, self.store, task.task_id)
            out = self.home / "results" / f"task-{task.task_id}.safetensors"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(self.store.cat(result.weights_cid, max_size=MAX_ARTIFACT_BYTES))
            self.state.update_task(task.task_id, result=str(out), accuracy=result.accuracy)
            self.log.info("task %d: trained weights %s (accuracy %.1f%%) saved to %s", task.task_id,
                          result.weights_cid, 100 * result.accuracy, out)
        self.collect_credits()
        super().finish(task)
