"""One participant of a group task as PyTorch modules: stage ``s`` of replica ``r`` of the GPT
(:class:`Stage`), the task's optimizer over its parameters, and :class:`StageRunner`, which runs
its part of a step (the schedule's forwards and backwards, the boundary messages through their
codecs, the data-parallel and clipping collectives, DiLoCo's outer step) through whatever links
it is given: the engine's process group, or a replay's published messages."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from offchain.distributed import compression as C
from offchain.distributed.spec import (
    TrainSpec,
    batch_ids,
    corpus_rows,
    epoch_of,
    pipeline_ranks,
    replica_ranks,
    schedule_ops,
)
from offchain.ml.models import GPT
from offchain.ml.program import seeded
from offchain.ml.optim import OptimizerConfig


# ── model ────────────────────────────────────────────────────────────
def build_gpt(spec: TrainSpec) -> GPT:
    m = spec.model
    with seeded(spec.seed):
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


def sum_in_rank_order(parts: list[torch.Tensor]) -> torch.Tensor:
    """``((parts[0] + parts[1]) + parts[2]) + ...``: one order on every rank and in every replay."""
    total = parts[0].clone()
    for part in parts[1:]:
        total += part
    return total


# ── one rank ─────────────────────────────────────────────────────────
def _codecs(spec: TrainSpec) -> tuple[Any, Any]:
    """(activation codec, gradient codec) of one side of one boundary."""
    if spec.aqsgd is None:
        return C.RawCodec(), C.RawCodec()
    a = spec.aqsgd
    return C.DeltaCodec(a.bits, a.warmup_epochs), (C.DirectCodec(a.grad_bits) if a.grad_bits else C.RawCodec())


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
        self.act_shape = spec.activation_shape
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
