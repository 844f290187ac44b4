"""The submitter: posts tasks with escrowed payment and collects the trained weights."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from offchain.chain.client import Market, TaskView
from offchain.chain.suite import TaskState
from offchain.distributed.group import GroupTask
from offchain.distributed.group_proof import GroupProofError, read_document, trained_model
from offchain.distributed.stage import heldout_loss
from offchain.ml import Checkpoint, Dataset, DemoTask, ProofDocument
from offchain.ml.artifacts import write_tensors
from offchain.ml.models import preset_model
from offchain.ml.program_training import ProgramTraining
from offchain.storage import MAX_ARTIFACT_BYTES, ContentStore
from offchain.workers.artifacts import (
    PublishedGroupTask,
    PublishedTask,
    fetch_any_task,
    fetch_proof,
    fetch_task,
)
from offchain.workers.base import Worker


@dataclass(frozen=True)
class Score:
    accuracy: float | None  # None for a program of the submitter's own model: its step names a loss, not the outputs
    loss: float  # mean softmax cross-entropy (such a program: the mean of its step's own loss)
    rows: int

    def figures(self) -> str:
        """``accuracy 83.3%  loss 0.4821``, or the loss alone where there is no accuracy."""
        accuracy = "" if self.accuracy is None else f"accuracy {100 * self.accuracy:.1f}%  "
        return f"{accuracy}loss {self.loss:.4f}"


@dataclass(frozen=True)
class TaskResult:
    proof: ProofDocument
    weights_cid: str
    weights: dict[str, torch.Tensor]
    training: Score  # on the task's (published) rows
    holdout: Score | None = None  # on the rows the submitter kept back, when it has them

    @property
    def accuracy(self) -> float | None:
        return self.training.accuracy


def holdout_path(home: Path, spec_cid: str) -> Path:
    """Where a submitter keeps the held-out rows of the task published as ``spec_cid``."""
    return home / "holdout" / f"{spec_cid}.safetensors"


@dataclass(frozen=True)
class GroupResult:
    proof_cid: str  # the group proof document the task was paid for
    weights: dict[str, torch.Tensor]  # the whole model, by the names of `build_gpt(spec)`
    heldout_loss: float  # mean loss per token on the spec's held-out rows of the corpus

    def figures(self) -> str:
        return f"held-out loss {self.heldout_loss:.4f}  perplexity {math.exp(self.heldout_loss):.2f}"


def fetch_result(market: Market, store: ContentStore, task_id: int, home: Path | None = None
                 ) -> TaskResult | GroupResult:
    """The final weights of a finalised task, checked against the proof it was paid for, and their
    score on the held-out rows kept under ``home`` (if any); for a group task, the whole model from
    its stages' last checkpoints (`trained_model`) and its held-out loss."""
    task = market.task(task_id)
    if task.state != TaskState.FINALISED:
        raise LookupError(f"task {task_id} is {task.state.name.lower()}, not finalised")
    [finalised] = market.events("TaskFinalised", market.deployment.block, task_id=task_id)
    proof_root = finalised["args"]["proof_root"]
    submitted = [e["args"] for e in market.events("ProofSubmitted", market.deployment.block, task_id=task_id)
                 if e["args"]["proof_root"] == proof_root]
    created = market.events("TaskCreated", market.deployment.block, task_id=task_id)[0]["args"]
    bundle = fetch_any_task(store, created["spec_cid"], task.spec_hash)
    if isinstance(bundle, GroupTask):
        return _group_result(store, bundle, submitted[-1]["proof_cid"], proof_root)
    proof = fetch_proof(store, submitted[-1]["proof_cid"], proof_root)
    weights_cid = proof.checkpoint_cids[-1]
    final = Checkpoint.from_bytes(store.cat(weights_cid, max_size=MAX_ARTIFACT_BYTES), bundle.spec,
                                  proof.count - 1, proof.checkpoint_interval)
    if final.root != proof.checkpoint_roots[-1]:
        raise ValueError("final weights do not match the proof's last checkpoint root")
    held = holdout_path(home, created["spec_cid"]) if home else None
    holdout = None
    if held and held.exists():
        kept = Dataset.from_bytes(held.read_bytes(), bundle.spec.input_dim)
        holdout = score(bundle.spec, final.params, kept)
    return TaskResult(proof, weights_cid, final.params, score(bundle.spec, final.params, bundle.dataset), holdout)


def _group_result(store: ContentStore, group: GroupTask, proof_cid: str, proof_root: bytes) -> GroupResult:
    document = read_document(store.cat(proof_cid, max_size=MAX_ARTIFACT_BYTES), proof_root)
    with tempfile.TemporaryDirectory(prefix="dtm-group-result-") as folder:
        parts = Path(folder)

        def fetch(name: str) -> None:
            path = parts / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.cat(document.cid(name), max_size=MAX_ARTIFACT_BYTES))

        try:
            weights = trained_model(group.spec, document, parts, fetch)
        except (OSError, ValueError, KeyError) as exc:
            raise GroupProofError(f"the group's published parts cannot be read: {exc}") from None
    return GroupResult(proof_cid, weights, heldout_loss(group.spec, weights))


@dataclass(frozen=True)
class CurvePoint:
    step: int
    loss: float                  # on the task's (published) training rows
    holdout_loss: float | None   # on the rows the submitter kept back, when it has them


def loss_curve(market: Market, store: ContentStore, task_id: int, home: Path | None = None,
               points: int = 50) -> list[CurvePoint]:
    """The model's loss at the checkpoints of the task's current proof (`proof_curve`), on the
    held-out rows too where ``home`` keeps them."""
    task = market.task(task_id)
    if not any(task.proof_root):
        raise LookupError(f"task {task_id} has no published proof yet")
    submitted = [e["args"] for e in market.events("ProofSubmitted", market.deployment.block, task_id=task_id)
                 if e["args"]["proof_root"] == task.proof_root]
    created = market.events("TaskCreated", market.deployment.block, task_id=task_id)[0]["args"]
    bundle = fetch_task(store, created["spec_cid"], task.spec_hash)
    proof = fetch_proof(store, submitted[-1]["proof_cid"], task.proof_root)
    held = holdout_path(home, created["spec_cid"]) if home else None
    kept = (Dataset.from_bytes(held.read_bytes(), bundle.spec.input_dim)
            if held and held.exists() else None)
    return proof_curve(bundle, proof, store, kept, points)


def proof_curve(bundle: DemoTask, proof: ProofDocument, store: ContentStore, kept: Dataset | None = None,
                points: int | None = None) -> list[CurvePoint]:
    """The loss at the proof's checkpoints (all of them, or ``points`` evenly spread with the last
    included), each checked against its committed root first."""
    curve = []
    for index in curve_indices(proof.count, points):
        checkpoint = Checkpoint.from_bytes(store.cat(proof.checkpoint_cids[index], max_size=MAX_ARTIFACT_BYTES),
                                           bundle.spec, index, proof.checkpoint_interval)
        if checkpoint.root != proof.checkpoint_roots[index]:
            raise ValueError(f"checkpoint {index} does not match the proof's root")
        curve.append(CurvePoint(checkpoint.step, score(bundle.spec, checkpoint.params, bundle.dataset).loss,
                                kept and score(bundle.spec, checkpoint.params, kept).loss))
    return curve


def curve_indices(count: int, points: int | None = None) -> list[int]:
    """The checkpoints a curve shows: all ``count``, or ``points`` evenly spread with the first and
    the last (the web app's `curveIndices` too: tests/golden/commitments.json)."""
    last = count - 1
    shown = count if points is None else max(min(points, count), 2)
    return sorted({round(i * last / (shown - 1)) for i in range(shown)} if shown > 1 else {0})


def plot_curves(path: Path, curves: dict[str, list[CurvePoint]], title: str) -> None:
    """A PNG of labelled loss curves against the step (held-out losses too where there are some)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for label, curve in curves.items():
        steps = [p.step for p in curve]
        axes.plot(steps, [p.loss for p in curve], marker=".", label=label)
        if curve and curve[0].holdout_loss is not None:
            axes.plot(steps, [p.holdout_loss for p in curve], marker=".", label=f"{label} (held-out rows)")
    axes.set(xlabel="step", ylabel="loss", title=title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def score(training: ProgramTraining, params: dict[str, torch.Tensor], dataset: Dataset) -> Score:
    """Accuracy and mean cross-entropy of the model on ``dataset``: a classifier preset's program by
    the preset's forward pass in eval mode (any number of rows; BatchNorm by its running
    statistics), any other program by `program_loss`."""
    meta = training.program.meta
    shapes = {n: tuple(params[n].shape) for n in training.program.param_names}
    model = preset_model(meta, shapes) if meta.get("loss") == "cross_entropy" else None
    if model is None:
        return Score(None, program_loss(training, params, dataset), dataset.n_rows)
    with torch.no_grad():
        inputs = dataset.x.reshape(dataset.n_rows, *meta["input_shape"])
        tensors = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers() if n in params]
        out = torch.func.functional_call(model.eval(), {n: params[n] for n in tensors}, (inputs,))
    return Score(float((out.argmax(1) == dataset.y).float().mean()),
                 float(torch.nn.functional.cross_entropy(out, dataset.y)), dataset.n_rows)


def program_loss(training: ProgramTraining, state: dict[str, torch.Tensor], dataset: Dataset) -> float:
    """The loss a program's step computes (before its update) from ``state``, averaged over the
    dataset's rows: its whole batches in row order, then the rows left over (fewer than a batch),
    each as often, in batches cycled through them; a dropout program's masks are those of step 0."""
    batch, rows = training.batch_size, dataset.n_rows
    if rows == 0:
        raise ValueError("no rows to score")
    whole = rows // batch * batch
    run = training.executor().run
    values = [state[name].contiguous() for name in training.param_names]

    def mean_loss(picked: torch.Tensor) -> float:
        return float(run(values, dataset.x[picked], dataset.y[picked]).loss_rows.mean())

    total = sum(mean_loss(torch.arange(i, i + batch)) for i in range(0, whole, batch)) * batch
    if left := rows - whole:  # each of the `left` rows `batch` times, in `left` batches
        cycled = whole + torch.arange(left * batch) % left
        total += sum(mean_loss(cycled[i:i + batch]) for i in range(0, left * batch, batch))
    return total / rows


class Submitter(Worker):
    role = "submitter"

    def post(self, published: PublishedTask | PublishedGroupTask, *, payment: int, solver_stake: int, expires_in: int,
             train_window: int, holdout: Dataset | None = None) -> int:
        """Escrow the payment for a published task; ``holdout`` rows (never published) are saved
        first, so `fetch_result` can score the trained weights on them."""
        if holdout is not None:
            path = holdout_path(self.home, published.spec_cid)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_suffix(".tmp").write_bytes(holdout.to_bytes())
            path.with_suffix(".tmp").replace(path)
        task_id = self.market.create_task(
            spec_cid=published.spec_cid, commitments=published.commitments(), payment=payment,
            solver_stake=solver_stake, expires=self.market.now() + expires_in, train_window=train_window,
        )
        self.track(task_id, spec_cid=published.spec_cid)
        self.log.info("task %d: posted %s (%s)", task_id, published.spec_cid, published.summary)
        return task_id

    def advance(self, task: TaskView) -> None:
        """Nothing to do while others work: every deadline is enforced by whoever cares first."""

    def finish(self, task: TaskView) -> None:
        if task.state == TaskState.FINALISED:
            self._save_result(task.task_id)
        self.collect_credits()
        super().finish(task)

    def _save_result(self, task_id: int) -> None:
        result = fetch_result(self.market, self.store, task_id, self.home)
        out = self.home / "results" / f"task-{task_id}.safetensors"
        out.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(result, GroupResult):
            write_tensors(out, result.weights)
            self.state.update_task(task_id, result=str(out), proof_cid=result.proof_cid,
                                   holdout_loss=result.heldout_loss)
            self.log.info("task %d: trained by the group (%s); the whole model saved to %s", task_id,
                          result.figures(), out)
            return
        out.write_bytes(self.store.cat(result.weights_cid, max_size=MAX_ARTIFACT_BYTES))
        held = result.holdout
        self.state.update_task(task_id, result=str(out), accuracy=result.accuracy,
                               holdout_accuracy=held and held.accuracy, holdout_loss=held and held.loss)
        self.log.info("task %d: trained weights %s (%s%s) saved to %s", task_id, result.weights_cid,
                      result.training.figures(), f"; held-out {held.figures()}" if held else "", out)
