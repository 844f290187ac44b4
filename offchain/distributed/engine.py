"""One training task over several processes: pipeline stages x data-parallel replicas.

The GPT preset (:class:`offchain.ml.models.GPT`) is cut into ``stages`` contiguous parts
(embeddings on the first, final LayerNorm + head + loss on the last; ``split`` says how many
transformer blocks each stage holds) and the pipeline is copied ``replicas`` times. Rank
``r * stages + s`` runs stage ``s`` of replica ``r``; processes talk through ``torch.distributed``
(gloo over 127.0.0.1).

Per step each replica takes its part of the global batch and runs it as ``micro_batches``
micro-batches under a GPipe (all forwards, then all backwards) or 1F1B schedule. Activations go
forward and their gradients backward between neighbouring stages as byte messages
(:mod:`offchain.distributed.compression`: raw float32, or AQ-SGD). The schedule is ours rather
than ``torch.distributed.pipelining``'s because every boundary message is encoded by a per-sample
codec whose size depends on the samples, which that package's fixed-shape stage buffers do not
allow. Data parallelism is either synchronous (gradients all-reduced in the stage's replica group
every step) or DiLoCo (each replica takes ``inner_steps`` steps alone, then the averaged
pseudo-gradients go through an outer Nesterov step).

The optimizer is the task's (:class:`offchain.ml.optim.OptimizerConfig`: its own update code and
learning-rate schedule); gradient clipping uses the global norm over all stages of a replica.

All choices are fixed by the :class:`TrainSpec`: initial weights (seeded), data order (seeded
per-epoch permutations of each replica's fixed shard, or batches drawn as a task draws them:
:func:`batch_ids`), codecs (deterministic). Training data is
the byte-level text corpus the project ships for the transformer (``text_dataset``); the
held-out rows are the corpus's last rows, never trained on.

Links can be emulated as slower than loopback (:class:`LinkConfig`, :class:`Transport`).

A rank's part of a step is :meth:`StageRunner.step`, which talks through any links: the process
group here, the published messages of the other participants in a replay
(:mod:`offchain.distributed.replay`). With ``TrainSpec.checkpoint_interval`` every rank publishes
its state every ``k`` steps and every message it sends (:mod:`offchain.distributed.parts`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from offchain.distributed import compression as C
from offchain.distributed import parts as P
from offchain.ml.artifacts import text_dataset
from offchain.ml.commit import keccak256, uint256
from offchain.ml.train import batch_indices
from offchain.ml.models import GPT
from offchain.ml.optim import OptimizerConfig

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
        if self.programs and (self.aqsgd is not None or self.diloco is not None):
            raise ValueError("AQ-SGD and DiLoCo are not captured as programs yet: programs needs neither")
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


# ── model ────────────────────────────────────────────────────────────
def build_gpt(spec: TrainSpec) -> GPT:
    torch.manual_seed(spec.seed)
    m = spec.model
    return GPT(m.vocab, m.seq_len, m.dim, m.heads, m.layers)


class Stage(nn.Module):
    """Blocks ``[first_block, first_block + n)`` of a GPT, with the embeddings on stage 0 and
    the final LayerNorm and head on the last stage."""

    def __init__(self, gpt: GPT, index: int, blocks_per_stage: tuple[int, ...]) -> None:
        super().__init__()
        self.first, self.last = index == 0, index == len(blocks_per_stage) - 1
        self.first_block = sum(blocks_per_stage[:index])
        if self.first:
            self.tokens, self.positions = gpt.tokens, gpt.positions
        self.blocks = nn.Sequential(*gpt.blocks[self.first_block:self.first_block + blocks_per_stage[index]])
        if self.last:
            self.ln, self.head = gpt.ln, gpt.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            x = self.tokens(x) + self.positions(torch.arange(x.shape[1], device=x.device))
        x = self.blocks(x)
        return self.head(self.ln(x)) if self.last else x

    def global_name(self, name: str) -> str:
        """The parameter's name in the whole GPT."""
        if name.startswith("blocks."):
            _, index, rest = name.split(".", 2)
            return f"blocks.{int(index) + self.first_block}.{rest}"
        return name


def lm_loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))


def heldout_loss(spec: TrainSpec, state: dict[str, torch.Tensor], batch: int = 64) -> float:
    model = build_gpt(spec)
    model.load_state_dict(state)
    _, held = corpus_rows(spec)
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(held), batch):
            rows = held[start:start + batch]
            total += lm_loss(model(rows[:, :-1]), rows).item() * len(rows)
    return total / len(held)


# ── optimizer ────────────────────────────────────────────────────────
class Optimizer:
    """The task's optimizer (``OptimizerConfig.update``) on a list of parameters, with clipping
    by a norm the caller computes (global over stages)."""

    def __init__(self, config: OptimizerConfig, params: list[nn.Parameter], steps: int) -> None:
        self.config = dataclasses.replace(config, clip_norm=0.0)
        self.clip_norm, self.params, self.steps = config.clip_norm, params, steps
        self.buffers = [[torch.zeros_like(p) for _ in self.config.buffers()] for p in params]

    def step(self, step: int, grad_sq_sum: torch.Tensor | None) -> None:
        grads = [p.grad for p in self.params]
        if self.clip_norm:
            coef = torch.clamp(self.clip_norm / (grad_sq_sum.sqrt() + 1e-6), max=1.0)
            grads = [g * coef for g in grads]
        hyper = torch.tensor(self.config.hyper_row(step, self.steps), dtype=torch.float64).float()
        with torch.no_grad():
            new, self.buffers = self.config.update([p.detach() for p in self.params], grads, self.buffers, hyper)
            for p, value in zip(self.params, new):
                p.copy_(value)
                p.grad = None


def grad_sq_sum(params: list[nn.Parameter]) -> torch.Tensor:
    return sum((p.grad * p.grad).sum() for p in params)


# ── transport ────────────────────────────────────────────────────────
def sum_in_rank_order(parts: list[torch.Tensor]) -> torch.Tensor:
    """``((parts[0] + parts[1]) + parts[2]) + ...``: one order on every rank and in every replay."""
    total = parts[0].clone()
    for part in parts[1:]:
        total += part
    return total


class Transport:
    """Point-to-point messages and collectives with byte counts and, when the link is emulated,
    user-space delays. A stage talks to it (or to any object with the same methods: a recorder,
    a replay's published messages) through ``send``, ``recv``, ``all_reduce``, ``all_gather``,
    ``at_step`` and ``flush``; collectives name their group by its ranks.

    Emulation: every directed pair of ranks is a wire of ``bandwidth`` bytes/s and one-way
    ``latency_s``. A message of ``n`` bytes starts when the wire is free, occupies it ``n /
    bandwidth`` seconds and arrives ``latency_s`` later; the sender stamps the arrival time
    (machine-wide monotonic clock, 8 header bytes not counted as payload) and does not wait;
    the receiver sleeps until that time after the loopback delivered the message, so compute
    overlaps with transfers as on a real link. A collective over ``R`` ranks is priced as a ring:
    all-reduce of ``n`` bytes = ``2 (R - 1)`` hops of ``n / R`` bytes, all-gather of ``n`` bytes
    per rank = ``R - 1`` hops of ``n``; each rank sleeps that time after the loopback operation.
    Byte counts are the payload each rank sends under these algorithms, also without emulation.

    ``ordered``: an all-reduce is an all-gather summed in rank order (:func:`sum_in_rank_order`)
    instead of gloo's ring, whose order of additions depends on the chunk (with two ranks both
    are the one addition ``a + b``).
    """

    def __init__(self, link: LinkConfig, groups: dict[tuple[int, ...], Any], *, ordered: bool = False) -> None:
        self.link, self.groups, self.ordered = link, groups, ordered
        self.p2p_bytes = 0
        self.collective_bytes = 0
        self.wire_free: dict[int, float] = {}
        self.pending: list[tuple[Any, torch.Tensor]] = []

    def at_step(self, step: int) -> None:
        pass

    def send(self, payload: torch.Tensor, dst: int) -> None:
        self.p2p_bytes += payload.numel()
        if self.link.emulated:
            start = max(time.monotonic(), self.wire_free.get(dst, 0.0))
            self.wire_free[dst] = start + self.link.wire_time(payload.numel())
            arrival = torch.tensor([self.wire_free[dst] + self.link.latency_s], dtype=torch.float64)
            payload = torch.cat([arrival.view(torch.uint8), payload])
        self.pending.append((dist.isend(payload, dst), payload))

    def recv(self, size: int, src: int) -> torch.Tensor:
        header = 8 if self.link.emulated else 0
        buffer = torch.empty(size + header, dtype=torch.uint8)
        dist.recv(buffer, src)
        if header:
            arrival = buffer[:8].clone().view(torch.float64).item()
            delay = arrival - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return buffer[header:]

    def flush(self) -> None:
        for handle, _ in self.pending:
            handle.wait()
        self.pending.clear()

    def _price(self, hops: int, hop_bytes: float) -> None:
        if self.link.emulated and hops:
            time.sleep(hops * (self.link.latency_s + self.link.wire_time(hop_bytes)))

    def all_reduce(self, tensor: torch.Tensor, ranks: tuple[int, ...]) -> None:
        """Sum in place over ``ranks``."""
        size = len(ranks)
        if size == 1:
            return
        if self.ordered:
            tensor.copy_(sum_in_rank_order(self.all_gather(tensor, ranks)))
            return
        nbytes = tensor.numel() * tensor.element_size()
        self.collective_bytes += 2 * (size - 1) * nbytes // size
        dist.all_reduce(tensor, group=self.groups[ranks])
        self._price(2 * (size - 1), nbytes / size)

    def all_gather(self, message: torch.Tensor, ranks: tuple[int, ...]) -> list[torch.Tensor]:
        """Every rank's ``message``, in rank order."""
        size = len(ranks)
        if size == 1:
            return [message]
        nbytes = message.numel() * message.element_size()
        self.collective_bytes += (size - 1) * nbytes
        out = [torch.empty_like(message) for _ in range(size)]
        dist.all_gather(out, message, group=self.groups[ranks])
        self._price(size - 1, nbytes)
        return out


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


# ── one rank ─────────────────────────────────────────────────────────
def _codecs(spec: TrainSpec) -> tuple[Any, Any]:
    """(activation codec, gradient codec) of one side of one boundary."""
    if spec.aqsgd is None:
        return C.RawCodec(), C.RawCodec()
    a = spec.aqsgd
    return C.DeltaCodec(a.bits, a.warmup_epochs), (C.DirectCodec(a.grad_bits) if a.grad_bits else C.RawCodec())


def pipeline_ranks(spec: TrainSpec, replica: int) -> tuple[int, ...]:
    return tuple(replica * spec.stages + s for s in range(spec.stages))


def replica_ranks(spec: TrainSpec, stage: int) -> tuple[int, ...]:
    return tuple(r * spec.stages + stage for r in range(spec.replicas))


def _groups(spec: TrainSpec) -> dict[tuple[int, ...], Any]:
    """Process group of each replica's pipeline and of each stage's replicas, by their ranks
    (every rank creates all, in the same order)."""
    groups = {}
    for r in range(spec.replicas):
        groups[pipeline_ranks(spec, r)] = dist.new_group(list(pipeline_ranks(spec, r))) if spec.stages > 1 else None
    for s in range(spec.stages):
        groups[replica_ranks(spec, s)] = dist.new_group(list(replica_ranks(spec, s))) if spec.replicas > 1 else None
    return groups


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _unflat(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    out, offset = [], 0
    for t in like:
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


class StageRunner:
    """One participant: stage ``s`` of replica ``r`` (rank ``r * stages + s``) with its
    optimizer, its AQ-SGD caches and its DiLoCo state. :meth:`step` runs one training step and
    talks through whatever ``links`` it is given: the process group while training, the
    published messages in a replay (offchain/distributed/replay.py), the same code either way.

    Its committed state (:meth:`state`) is every tensor a later step depends on, in a fixed
    order of ``group/name`` keys: ``param/<global name>``; ``<optimizer buffer>/<global name>``;
    with DiLoCo ``diloco.global/``, ``diloco.velocity/`` and (compressed) ``diloco.residual/``;
    with AQ-SGD the caches of the boundary it sends on (``aqsgd.sent/<sample>``) and receives
    on (``aqsgd.received/<sample>``), by sample id."""

    def __init__(self, spec: TrainSpec, rank: int) -> None:
        self.spec, self.rank = spec, rank
        self.replica, self.index = divmod(rank, spec.stages)
        self.stage = Stage(build_gpt(spec), self.index, spec.blocks_per_stage())
        self.names = [self.stage.global_name(n) for n, _ in self.stage.named_parameters()]
        self.params = list(self.stage.parameters())
        self.optimizer = Optimizer(spec.optimizer_config(), self.params, spec.steps)
        self.fwd_send, self.bwd_recv = _codecs(spec)  # boundary to stage index + 1
        self.fwd_recv, self.bwd_send = _codecs(spec)  # boundary to stage index - 1
        self.train = corpus_rows(spec)[0] if (self.stage.first or self.stage.last) else None
        self.act_shape = (spec.micro_size, spec.model.seq_len, spec.model.dim)
        self.pipeline_group, self.replica_group = pipeline_ranks(spec, self.replica), replica_ranks(spec, self.index)
        self.diloco = spec.diloco
        if self.diloco is not None:
            d = self.diloco
            self.global_params = [p.detach().clone() for p in self.params]
            self.outer = C.OuterNesterov(d.outer_lr, d.outer_momentum)
            self.outer.velocity = [torch.zeros_like(p) for p in self.params]  # what its first step starts from
            self.pg_codec = C.PseudoGradCodec(d.compress, d.bits, d.fraction, d.error_feedback)
            if d.compress != "none":
                self.pg_codec.residual = [torch.zeros_like(p) for p in self.params]
            self.shapes = [tuple(p.shape) for p in self.params]

    # state ─────────────────────────────────────────────────────────
    def _state_lists(self) -> list[tuple[str, list[torch.Tensor]]]:
        lists = [("param", self.params)]
        lists += [(buffer, [b[j] for b in self.optimizer.buffers])
                  for j, buffer in enumerate(self.optimizer.config.buffers())]
        if self.diloco is not None:
            lists += [("diloco.global", self.global_params), ("diloco.velocity", self.outer.velocity)]
            if self.pg_codec.residual is not None:
                lists.append(("diloco.residual", self.pg_codec.residual))
        return lists

    def _caches(self) -> list[tuple[str, Any]]:
        return [(group, codec) for group, codec in (("aqsgd.sent", self.fwd_send), ("aqsgd.received", self.fwd_recv))
                if isinstance(codec, C.DeltaCodec)]

    def state(self) -> dict[str, torch.Tensor]:
        """The committed state, in its fixed order (copies)."""
        state = {f"{group}/{name}": t.detach().clone()
                 for group, tensors in self._state_lists() for name, t in zip(self.names, tensors)}
        for group, codec in self._caches():
            state.update({f"{group}/{sample}": codec.cache[sample].clone() for sample in sorted(codec.cache)})
        return state

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for group, tensors in self._state_lists():
                for name, t in zip(self.names, tensors):
                    t.copy_(state[f"{group}/{name}"])
        for group, codec in self._caches():
            prefix = f"{group}/"
            codec.cache = {int(key[len(prefix):]): t.clone() for key, t in state.items() if key.startswith(prefix)}

    def parameters_by_name(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in zip(self.names, self.params)}

    # one step ──────────────────────────────────────────────────────
    def step(self, step: int, links: Any) -> float | None:
        """Training step ``step``; the replica's training loss on the last stage, else None."""
        spec, stage, S, R, M = self.spec, self.stage, self.spec.stages, self.spec.replicas, self.spec.micro_batches
        prev_rank, next_rank = self.rank - 1, self.rank + 1
        links.at_step(step)
        epoch = epoch_of(spec, step)
        micro_ids = batch_ids(spec, step, self.replica).split(spec.micro_size)
        saved: dict[int, tuple[torch.Tensor | None, torch.Tensor]] = {}
        step_loss = 0.0
        for op, m in schedule_ops(spec.schedule, self.index, S, M):
            mids = micro_ids[m]
            if op == "F":
                if stage.first:
                    inp = self.train[mids][:, :-1]
                else:
                    size = self.fwd_recv.message_size(mids, self.act_shape, epoch)
                    message = links.recv(size, prev_rank)
                    inp = self.fwd_recv.decode(message, mids, self.act_shape, epoch).requires_grad_()
                out = stage(inp)
                if stage.last:
                    out = lm_loss(out, self.train[mids]) / M
                    step_loss += out.item()
                else:
                    links.send(self.fwd_send.encode(out, mids, epoch)[0], next_rank)
                saved[m] = (None if stage.first else inp, out)
            else:
                inp, out = saved.pop(m)
                if stage.last:
                    out.backward()
                else:
                    size = self.bwd_recv.message_size(mids, self.act_shape, epoch)
                    out.backward(self.bwd_recv.decode(links.recv(size, next_rank), mids, self.act_shape, epoch))
                if inp is not None:
                    links.send(self.bwd_send.encode(inp.grad, mids, epoch)[0], prev_rank)
        params = self.params
        if self.diloco is None and R > 1:
            flat = _flat([p.grad for p in params])
            links.all_reduce(flat, self.replica_group)
            for p, g in zip(params, _unflat(flat / R, params)):
                p.grad = g.clone()
        sq = None
        if self.optimizer.clip_norm:
            sq = grad_sq_sum(params).reshape(1)
            links.all_reduce(sq, self.pipeline_group)
        self.optimizer.step(step, sq)
        if self.diloco is not None and ((step + 1) % self.diloco.inner_steps == 0 or step == spec.steps - 1):
            pseudo = [g - p.detach() for g, p in zip(self.global_params, params)]
            if self.diloco.compress == "none":
                flat = _flat(pseudo)
                links.all_reduce(flat, self.replica_group)
                mean = _unflat(flat / R, pseudo)
            else:
                message, _ = self.pg_codec.encode(pseudo)
                mean = C.average(links.all_gather(message, self.replica_group), self.pg_codec, self.shapes)
            self.outer.step(self.global_params, mean)
            with torch.no_grad():
                for p, g in zip(params, self.global_params):
                    p.copy_(g)
        return step_loss if stage.last else None


@dataclass(frozen=True)
class Tamper:
    """A cheating participant: rank ``rank`` adds ``amount`` to its first parameter tensor right
    after its step ``step`` (and trains on from there, publishing what it then holds)."""

    rank: int
    step: int
    amount: float = 1e-3

    def apply(self, runner: StageRunner, step: int) -> None:
        if runner.rank == self.rank and step == self.step:
            with torch.no_grad():
                runner.params[0].add_(self.amount)


def _worker(rank: int, specs: list[TrainSpec], out_dir: str, parts_dirs: list[str | None],
            tamper: Tamper | None) -> None:
    """Rank ``rank`` of every spec whose world includes it, one process group after another. The
    ranks meet in a file of ``out_dir``: no port to pick (another run could take it), and no
    store served by a thread of the driver (a rank forked while that thread resolves a peer's
    address inherits libc's resolver lock held, and hangs)."""
    _forget_process_groups()
    for index, (spec, parts_dir) in enumerate(zip(specs, parts_dirs)):
        if rank >= spec.world:
            continue
        torch.set_num_threads(spec.threads)
        store = Path(out_dir) / f"rendezvous{index}"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=spec.world)
        try:
            result = _train_rank(rank, spec, parts_dir, tamper)
            _save_result(result, Path(out_dir) / f"run{index}-rank{rank}.safetensors")
        finally:
            dist.destroy_process_group()


def _forget_process_groups() -> None:
    """Name the next process group as a fresh process would. torch names a default group by a
    count of the groups this process has made: a failed ``init_process_group`` raises it with no
    group to destroy (which resets it), and a forked rank inherits it, so ranks forked from a
    process that once failed to join would wait under another name than ranks that reset it."""
    dist.distributed_c10d._world.group_count = 0


def make_runner(spec: TrainSpec, rank: int) -> Any:
    """Participant ``rank``'s runner: a :class:`StageRunner`, or with ``spec.programs`` the
    :class:`~offchain.distributed.stage_program.ProgramRunner` that runs its captured step program
    (the same ``step``/``state`` interface, so training, publishing and replays are unchanged)."""
    if spec.programs:
        from offchain.distributed.stage_program import ProgramRunner

        return ProgramRunner(spec, rank)
    return StageRunner(spec, rank)


def _train_rank(rank: int, spec: TrainSpec, parts_dir: str | None = None, tamper: Tamper | None = None
                ) -> dict[str, Any]:
    runner = make_runner(spec, rank)
    transport = Transport(spec.link, _groups(spec), ordered=spec.commits)
    links, publisher = transport, None
    if spec.commits:
        publisher = P.Publisher(Path(parts_dir), rank, spec.checkpoint_interval)
        links = publisher.recorder(transport)
    losses: list[float] = []
    step_ends: list[float] = []
    dist.barrier()
    start = time.perf_counter()
    for step in range(spec.steps):
        if publisher is not None and step % spec.checkpoint_interval == 0:
            publisher.checkpoint(runner.state())
        loss = runner.step(step, links)
        if tamper is not None:
            tamper.apply(runner, step)
        if loss is not None:
            losses.append(loss)
        if publisher is not None and (step + 1) % spec.checkpoint_interval == 0:
            publisher.close_segment()
        step_ends.append(time.perf_counter())
    transport.flush()
    if publisher is not None:
        publisher.checkpoint(runner.state())
        publisher.finish()
    dist.barrier()
    seconds = time.perf_counter() - start
    return {"rank": rank, "stage": runner.index, "replica": runner.replica, "seconds": seconds, "losses": losses,
            "step_ends": [end - start for end in step_ends],
            "p2p_bytes": transport.p2p_bytes, "collective_bytes": transport.collective_bytes,
            "state": runner.parameters_by_name()}


# ── driver ───────────────────────────────────────────────────────────
@dataclass
class RunResult:
    spec: TrainSpec
    state: dict[str, torch.Tensor]  # replica 0's whole model
    losses: list[float]  # training loss per step, mean over replicas
    heldout: float
    seconds: float  # training loop, slowest rank
    bytes_per_step: float  # payload sent by all ranks together
    replicas_equal: bool  # every replica ends with the same parameters
    ranks: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @property
    def steps_per_s(self) -> float:
        return self.spec.steps / self.seconds

    def steps_per_s_from(self, first: int) -> float:
        """Throughput of steps ``first..steps-1`` (e.g. after AQ-SGD's warm-up epochs), slowest rank."""
        if not self.ranks or first <= 0:
            return self.steps_per_s
        seconds = max(r["step_ends"][-1] - r["step_ends"][first - 1] for r in self.ranks)
        return (self.spec.steps - first) / seconds


def run(spec: TrainSpec, start_method: str = "fork", *, parts_dir: str | Path | None = None,
        tamper: Tamper | None = None) -> RunResult:
    """Train ``spec`` on ``spec.world`` new processes and collect the result; with
    ``spec.checkpoint_interval`` every participant publishes its parts under ``parts_dir``."""
    return run_many([spec], start_method, parts_dirs=[parts_dir], tamper=tamper)[0]


def run_many(specs: list[TrainSpec], start_method: str = "fork", *,
             parts_dirs: list[str | Path | None] | None = None, tamper: Tamper | None = None) -> list[RunResult]:
    """Train each spec in turn on one set of processes (as many as the largest world), which
    saves starting processes per run. ``fork`` starts them at once from this process (each sets
    its own thread count before any work); ``spawn`` starts fresh interpreters. A spec with a
    ``checkpoint_interval`` needs its ``parts_dirs`` entry: its participants' parts and
    ``group.json`` go there (offchain/distributed/parts.py). ``tamper`` makes one rank cheat."""
    import torch.multiprocessing as mp

    parts_dirs = [None if d is None else str(d) for d in (parts_dirs or [None] * len(specs))]
    if len(parts_dirs) != len(specs) or any(spec.commits and d is None for spec, d in zip(specs, parts_dirs)):
        raise ValueError("every spec with a checkpoint_interval needs a parts directory")
    with tempfile.TemporaryDirectory(prefix="dtm-engine-") as out_dir:
        mp.start_processes(_worker, args=(list(specs), out_dir, parts_dirs, tamper),
                           nprocs=max(spec.world for spec in specs), start_method=start_method)
        for spec, parts_dir in zip(specs, parts_dirs):
            if spec.commits:
                P.publish_group(Path(parts_dir), spec.world)
        return [_collect(spec, [_load_result(Path(out_dir) / f"run{i}-rank{r}.safetensors") for r in range(spec.world)])
                for i, spec in enumerate(specs)]


def join(spec: TrainSpec, rank: int, master: str, *, parts_dir: str | Path | None = None,
         tamper: Tamper | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Train rank ``rank`` of ``spec`` in this process: one machine's part of a group task. The
    ranks meet at ``master`` (``host:port``, which rank 0 listens on). With a
    ``checkpoint_interval`` the rank publishes its parts under ``parts_dir``, and rank 0 also
    writes ``group.json`` from the proof roots every rank sends it."""
    if not 0 <= rank < spec.world:
        raise ValueError(f"rank {rank} is not a rank of a {spec.stages} x {spec.replicas} group")
    if spec.commits and parts_dir is None:
        raise ValueError("a spec with a checkpoint_interval needs a parts directory")
    host, _, port = master.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"master {master!r} is not host:port")
    torch.set_num_threads(spec.threads)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://{host}:{port}", rank=rank, world_size=spec.world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except BaseException:
        _forget_process_groups()
        raise
    try:
        result = _train_rank(rank, spec, None if parts_dir is None else str(parts_dir), tamper)
        if spec.commits:
            own = P.load_participant(Path(parts_dir), rank).proof_root
            roots = [torch.empty(32, dtype=torch.uint8) for _ in range(spec.world)]
            dist.all_gather(roots, torch.tensor(list(own), dtype=torch.uint8))
            if rank == 0:
                P.write_group(Path(parts_dir), [bytes(root.tolist()) for root in roots])
    finally:
        dist.destroy_process_group()
    return result


def _save_result(result: dict[str, Any], path: Path) -> None:
    """A rank's result as safetensors: its parameters as tensors, everything else as JSON metadata."""
    numbers = {key: value for key, value in result.items() if key != "state"}
    save_file({name: t.contiguous() for name, t in result["state"].items()}, str(path),
              metadata={"result": json.dumps(numbers)})


def _load_result(path: Path) -> dict[str, Any]:
    """What `_save_result` wrote, parsed (nothing unpickled)."""
    with safe_open(str(path), framework="pt") as file:
        result = json.loads(file.metadata()["result"])
        result["state"] = {name: file.get_tensor(name) for name in file.keys()}
    return result


def _collect(spec: TrainSpec, ranks: list[dict[str, Any]]) -> RunResult:
    state: dict[str, torch.Tensor] = {}
    for result in ranks[: spec.stages]:
        state.update(result["state"])
    equal = all(torch.equal(result["state"][n], state[n]) for result in ranks for n in result["state"])
    last = [result["losses"] for result in ranks if result["stage"] == spec.stages - 1]
    losses = [sum(values) / len(values) for values in zip(*last)]
    total = sum(result["p2p_bytes"] + result["collective_bytes"] for result in ranks)
    return RunResult(spec, state, losses, heldout_loss(spec, state), max(r["seconds"] for r in ranks),
                     total / spec.steps, equal, ranks)


def run_single(spec: TrainSpec) -> RunResult:
    """The same training in this process on the whole model: same initial weights, same
    batches, micro-batches and optimizer; no compression, and synchronous (DiLoCo is ignored).

    Sums follow the engine's order: each replica's micro-batch gradients are accumulated on
    their own, then added in replica order and divided by the replica count; the squared norm
    for clipping is summed stage by stage. With two stages and two replicas (where a two-rank
    sum has one order) the engine's parameters then match these bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        model = build_gpt(spec)
        params = list(model.parameters())
        stage_params = [list(Stage(model, s, spec.blocks_per_stage()).parameters()) for s in range(spec.stages)]
        optimizer = Optimizer(spec.optimizer_config(), params, spec.steps)
        train, _ = corpus_rows(spec)
        losses = []
        start = time.perf_counter()
        for step in range(spec.steps):
            step_loss, total = 0.0, None
            for replica in range(spec.replicas):
                replica_loss = 0.0
                for mids in batch_ids(spec, step, replica).split(spec.micro_size):
                    loss = lm_loss(model(train[mids][:, :-1]), train[mids]) / spec.micro_batches
                    loss.backward()
                    replica_loss += loss.item()
                step_loss += replica_loss / spec.replicas
                grads = [p.grad for p in params]
                total = grads if total is None else [a + b for a, b in zip(total, grads)]
                for p in params:
                    p.grad = None
            for p, g in zip(params, total):
                p.grad = g / spec.replicas if spec.replicas > 1 else g
            losses.append(step_loss)
            sq = sum(grad_sq_sum(group) for group in stage_params) if optimizer.clip_norm else None
            optimizer.step(step, sq)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    return RunResult(spec, state, losses, heldout_loss(spec, state), seconds, 0.0, True)
