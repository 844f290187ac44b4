"""What a group task is: its specification (:class:`TrainSpec`: model shape, layout, optimizer,
compression, links, sampling) and what follows from it alone: the training rows each replica
reads at each step, the micro-batch schedule of each stage and the ranks of each group. The
engine's processes (:mod:`offchain.distributed.engine`), a participant's modules
(:mod:`offchain.distributed.stage`) and its step program (:mod:`offchain.distributed.stage_program`)
all read it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from offchain.ml.artifacts import text_dataset
from offchain.ml.commit import keccak256, uint256
from offchain.ml.optim import OptimizerConfig
from offchain.ml.train import batch_indices


SCHEDULES = ("1f1b", "gpipe")
SAMPLINGS = ("epochs", "task")


# ── specification ────────────────────────────────────────────────────
@dataclass(frozen=True)
class GPTShape:
    vocab: int = 256
    seq_len: int = 32
    dim: int = 64
    heads: int = 4
    layers: int = 4


@dataclass(frozen=True)
class AQSGDConfig:
    """Activation deltas in ``bits``; backward gradients in ``grad_bits`` (0: raw float32)."""

    bits: int = 4
    grad_bits: int = 8
    warmup_epochs: int = 1


@dataclass(frozen=True)
class QuantizeConfig:
    """Messages quantised directly (no per-sample caches) in the participants' step programs:
    forward activations in ``bits`` and backward gradients in ``grad_bits``, each sample's row with
    its own max-abs scale, and a replica's contribution to the gradient all-reduce in ``sum_bits``
    (0: float32), a scale per ``stage_program.SUM_ROW`` values (``stage_program.quantize``)."""

    bits: int = 8
    grad_bits: int = 8
    sum_bits: int = 0


@dataclass(frozen=True)
class DiLoCoConfig:
    """Outer Nesterov defaults for short tasks (tens of outer steps): ``lr 1, momentum 0.5``.
    The 0.7 / 0.9 of long DiLoCo runs overshoots there (docs/distributed-training.md)."""

    inner_steps: int = 10
    outer_lr: float = 1.0
    outer_momentum: float = 0.5
    compress: str = "none"  # none | quant | topk
    bits: int = 8
    fraction: float = 0.1
    error_feedback: bool = True


@dataclass(frozen=True)
class LinkConfig:
    """Emulated link between any two ranks: one-way ``latency_s`` and ``bandwidth`` bytes/s
    (0: no emulation, the loopback as it is)."""

    latency_s: float = 0.0
    bandwidth: float = 0.0

    @property
    def emulated(self) -> bool:
        return self.latency_s > 0 or self.bandwidth > 0

    def wire_time(self, nbytes: float) -> float:
        return nbytes / self.bandwidth if self.bandwidth > 0 else 0.0


def default_optimizer(steps: int) -> OptimizerConfig:
    return OptimizerConfig("adamw", 3e-3, weight_decay=0.01, schedule="cosine", warmup_steps=max(1, steps // 10),
                           min_lr_ratio=0.1, clip_norm=1.0)


@dataclass(frozen=True)
class TrainSpec:
    model: GPTShape = GPTShape()
    stages: int = 1
    replicas: int = 1
    split: tuple[int, ...] | None = None  # blocks per stage; default: as even as possible
    schedule: str = "1f1b"
    batch_size: int = 16  # global: rows per step over all replicas
    micro_batches: int = 2
    steps: int = 20
    train_rows: int = 256
    holdout_rows: int = 256
    seed: int = 0
    optimizer: OptimizerConfig | None = None  # None: default_optimizer(steps)
    aqsgd: AQSGDConfig | None = None
    diloco: DiLoCoConfig | None = None
    link: LinkConfig = LinkConfig()
    threads: int = 1  # torch threads per process
    checkpoint_interval: int = 0  # k > 0: every participant publishes its parts (offchain/distributed/parts.py)
    sampling: str = "epochs"  # how a replica draws its rows: "epochs" or "task" (see batch_ids)
    programs: bool = False  # participants run their captured step programs (stage_program.ProgramRunner)
    quantize: QuantizeConfig | None = None  # stage messages quantised in the programs (needs programs)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}")
        if self.stages < 1 or self.replicas < 1:
            raise ValueError("stages and replicas must be >= 1")
        if len(self.blocks_per_stage()) != self.stages or sum(self.blocks_per_stage()) != self.model.layers:
            raise ValueError(f"split {self.split} does not cut {self.model.layers} blocks into {self.stages} stages")
        if self.stages > 1 and min(self.blocks_per_stage()) < 1:
            raise ValueError("every stage needs at least one block")
        if self.batch_size % (self.replicas * self.micro_batches):
            raise ValueError("batch_size must be a multiple of replicas * micro_batches")
        if self.train_rows % self.replicas or (self.train_rows // self.replicas) % self.replica_batch:
            raise ValueError("each replica's shard must be a whole number of its batches")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}")
        if self.sampling == "task" and self.aqsgd is not None:
            raise ValueError("AQ-SGD's caches need each sample on one replica: sampling must be 'epochs'")
        if self.programs and self.aqsgd is not None:
            raise ValueError("AQ-SGD's caches are not captured as programs yet: programs needs aqsgd None")
        if self.programs and self.diloco is not None:
            d = self.diloco
            if d.compress not in ("none", "quant"):
                raise ValueError(f"DiLoCo's {d.compress!r} pseudo-gradients are not captured as programs "
                                 "(top-k sorts by magnitude): compress must be 'none' or 'quant'")
            if d.compress == "quant" and (type(d.bits) is not int or not 2 <= d.bits <= 8):
                raise ValueError(f"DiLoCo bits must be an integer in [2, 8], got {d.bits!r}")
            if self.steps % d.inner_steps:
                raise ValueError(f"with programs every DiLoCo round is whole: steps ({self.steps}) must be a "
                                 f"multiple of inner_steps ({d.inner_steps})")
        if self.quantize is not None:
            if not self.programs:
                raise ValueError("quantize is done by the participants' programs: it needs programs")
            q = self.quantize
            for bits in (q.bits, q.grad_bits, *([q.sum_bits] if q.sum_bits else [])):
                if type(bits) is not int or not 2 <= bits <= 8:
                    raise ValueError(f"quantize bits must be integers in [2, 8], got {bits!r}")
        if self.checkpoint_interval < 0 or (self.checkpoint_interval and self.steps % self.checkpoint_interval):
            raise ValueError("steps must be a multiple of checkpoint_interval")

    def blocks_per_stage(self) -> tuple[int, ...]:
        if self.split is not None:
            return tuple(self.split)
        base, extra = divmod(self.model.layers, self.stages)
        return tuple(base + (s < extra) for s in range(self.stages))

    @property
    def world(self) -> int:
        return self.stages * self.replicas

    @property
    def replica_batch(self) -> int:
        return self.batch_size // self.replicas

    @property
    def micro_size(self) -> int:
        return self.replica_batch // self.micro_batches

    @property
    def activation_shape(self) -> tuple[int, int, int]:
        """What crosses a stage boundary for one micro-batch, either way."""
        return (self.micro_size, self.model.seq_len, self.model.dim)

    def optimizer_config(self) -> OptimizerConfig:
        return self.optimizer or default_optimizer(self.steps)

    @property
    def commits(self) -> bool:
        """Participants publish their parts; collectives then sum in rank order (any replay can
        reproduce them), which equals gloo's sum wherever a collective has two ranks."""
        return self.checkpoint_interval > 0


# ── data ─────────────────────────────────────────────────────────────
def corpus_rows(spec: TrainSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) token rows (int64, ``seq_len + 1`` wide): the first ``train_rows`` rows
    and the last ``holdout_rows`` rows of the corpus."""
    rows = text_dataset(spec.model.seq_len).x.long()
    if spec.train_rows + spec.holdout_rows > len(rows):
        raise ValueError(f"the corpus has {len(rows)} rows of {spec.model.seq_len + 1} tokens")
    return rows[: spec.train_rows], rows[len(rows) - spec.holdout_rows:]


def epoch_of(spec: TrainSpec, step: int) -> int:
    return step * spec.replica_batch // (spec.train_rows // spec.replicas)


def replica_seed(spec: TrainSpec, replica: int) -> int:
    """The seed ``replica`` draws its rows with under ``sampling="task"``:
    ``uint256(keccak256(abi.encode(seed, replica)))``."""
    return int.from_bytes(keccak256(uint256(spec.seed % 2**256) + uint256(replica)), "big")


def batch_ids(spec: TrainSpec, step: int, replica: int) -> torch.Tensor:
    """Training-row ids of ``replica`` at ``step``. ``sampling="epochs"``: its shard (rows
    ``replica + k * replicas``) in the seeded permutation of the step's epoch, so a sample always
    meets the same replica (AQ-SGD's caches rely on it). ``sampling="task"``: drawn as a task
    draws its batch (`batch_indices`) with the replica's seed, so the rows a participant's step
    reads are the rows a task bound to it commits (`stage_program.participant_task`)."""
    if spec.sampling == "task":
        return torch.tensor(batch_indices(replica_seed(spec, replica), step, spec.replica_batch, spec.train_rows))
    shard = spec.train_rows // spec.replicas
    epoch = epoch_of(spec, step)
    order = torch.randperm(shard, generator=torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch))
    start = step * spec.replica_batch - epoch * shard
    return order[start:start + spec.replica_batch] * spec.replicas + replica


# ── schedules ────────────────────────────────────────────────────────
def schedule_ops(kind: str, stage: int, stages: int, micro: int) -> list[tuple[str, int]]:
    """The order of forward (``F``) and backward (``B``) passes of one stage over ``micro``
    micro-batches. Backwards always run in micro-batch order, so both schedules accumulate the
    same gradients bit for bit."""
    if kind == "gpipe":
        return [("F", m) for m in range(micro)] + [("B", m) for m in range(micro)]
    warm = min(stages - stage - 1, micro)
    ops = [("F", m) for m in range(warm)]
    for i in range(micro - warm):
        ops += [("F", warm + i), ("B", i)]
    return ops + [("B", m) for m in range(micro - warm, micro)]


def pipeline_ranks(spec: TrainSpec, replica: int) -> tuple[int, ...]:
    return tuple(replica * spec.stages + s for s in range(spec.stages))


def replica_ranks(spec: TrainSpec, stage: int) -> tuple[int, ...]:
    return tuple(r * spec.stages + stage for r in range(spec.replicas))
