"""A group participant's training step as a program (docs/group-tasks.md §4.1).

``export_stage_program(spec, rank)`` captures what :class:`~offchain.distributed.stage.StageRunner`
does in one step, for one participant, as a :class:`~offchain.ml.program.Program` the existing
verifier and dispute game read: its stage's forward and backward over every micro-batch in the
schedule's order (``torch.func.vjp``, whose backward starts from the received gradient, or from
the loss on the last stage), the gradients summed over micro-batches in micro-batch order, the
data-parallel all-reduce and the clipping norm's all-reduce summed in rank order, and the task's
optimizer. Its inputs are the participant's state (in the checkpoint's order), its replica's batch
rows, the step's hyper row and one ``recv`` leaf per message it receives; its outputs are the next
state, the loss (the last stage's; 0 elsewhere) and one node per message it sends. Messages are
float32 tensors, so a message's root is the tensor root of the very value a send node computes
and a ``recv`` leaf reads.

``train_stage_programs(spec)`` trains a group by running every participant's program (one thread
each, messages passed as they are computed: a step takes a message when it first needs it), so
that what a participant commits is exactly what its program computes; :class:`ProgramRunner` runs
it in the engine's processes instead (``TrainSpec.programs``). ``participant_task`` binds a
participant's steps as a task the dispute game judges. Built for pipeline stages × data-parallel
replicas, with messages in float32 or quantised (``TrainSpec.quantize``: :func:`quantize`, traced
into the sender's program, and :func:`dequantize` into the receiver's; the all-reduce's
contributions in rows of SUM_ROW) and DiLoCo's rounds (:func:`_outer_step`: the replicas exchange
pseudo-gradients only on a round's last step; on the others that message is zero by definition and
never crosses a link, :func:`silent`); AQ-SGD's caches are not captured yet
(``export_stage_program`` refuses them in one line).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from offchain.distributed import compression as C
from offchain.distributed import parts as P
from offchain.distributed.spec import (
    TrainSpec,
    batch_ids,
    corpus_rows,
    pipeline_ranks,
    replica_ranks,
    replica_seed,
    schedule_ops,
)
from offchain.distributed.stage import Stage, StageRunner, lm_loss
from offchain.dispute.program_moves import MAX_READ
from offchain.ml.artifacts import Dataset, weights_to_bytes
from offchain.ml.capture import capture_step
from offchain.ml.commit import checkpoint_root, tensor_root
from offchain.ml.errors import GraphError
from offchain.ml.program import Corruption, Mail, Program, ProgramExecutor, StateSlot
from offchain.ml.program_training import ProgramTraining
from offchain.ml.task import TrainingTask
from offchain.storage import compute_cid


@dataclass(frozen=True)
class Message:
    """One message of a step: ``kind`` is ``activation`` (forward, to the next stage),
    ``gradient`` (backward, to the previous stage), ``grad_sum`` (the sender's gradients summed
    over its micro-batches, flat, to every other replica of its stage), ``grad_sq`` (its squared
    gradient norm, to every other stage of its pipeline) or ``outer`` (DiLoCo: its pseudo-gradient,
    flat, to every other replica of its stage); a message to several peers is sent once
    (``receiver`` −1 in the sender's list); ``micro`` the micro-batch (−1 for the collectives)."""

    kind: str
    sender: int
    receiver: int
    micro: int


@dataclass(frozen=True)
class StageProgram:
    """A participant's step program and what its ``recv`` leaves and sends are, in order."""

    rank: int
    program: Program
    receives: tuple[Message, ...]
    sends: tuple[Message, ...]

    @functools.cached_property
    def received_shapes(self) -> dict[int, tuple[int, ...]]:
        """The shape of each message the step reads, by its index."""
        return {node.attrs[0]: node.shape for node in self.program.nodes if node.op == "recv"}


def unsupported(spec: TrainSpec) -> str | None:
    """Why a spec's participant steps cannot be captured yet (None: they can)."""
    if spec.aqsgd is not None:
        return "AQ-SGD messages are not captured as programs yet"
    if spec.diloco is not None and spec.diloco.compress not in ("none", "quant"):
        return f"DiLoCo's {spec.diloco.compress!r} pseudo-gradients are not captured as programs (top-k sorts)"
    return None


def outer_slots(spec: TrainSpec, names: Sequence[str], params: Sequence[torch.Tensor]) -> list[StateSlot]:
    """DiLoCo's state after the optimizer's, each given by checkpoint 0 (kind ``stat``): the
    global parameters (the initial ones), the outer velocity, the round's step count and, for
    quantised pseudo-gradients with error feedback, what was not sent yet (zeros)."""
    d = spec.diloco
    if d is None:
        return []
    groups = ["diloco.global", "diloco.velocity"] + (["diloco.residual"] if _keeps_residual(d) else [])
    slots = [StateSlot(f"{group}/{name}", tuple(p.shape), "stat") for group in groups for name, p in zip(names, params)]
    return slots[:2 * len(names)] + [StateSlot("diloco/inner_steps_done", (1,), "stat")] + slots[2 * len(names):]


def _keeps_residual(d) -> bool:
    return d.compress == "quant" and d.error_feedback


def silent(spec: TrainSpec, step: int, message: Message) -> bool:
    """Whether ``message`` of step ``step`` is zero by definition and crosses no link: a DiLoCo
    pseudo-gradient on a step that does not end its round. Its sender's program computes zero
    there, its receivers read zero, the group's mail holds zero."""
    return message.kind == "outer" and (step + 1) % spec.diloco.inner_steps != 0


@functools.lru_cache(maxsize=64)
def export_stage_program(spec: TrainSpec, rank: int) -> StageProgram:
    """Participant ``rank``'s training step (see the module docstring); cached, as a verifier
    replays many segments of one participant (the program is immutable)."""
    reason = unsupported(spec)
    if reason:
        raise GraphError(f"group spec: {reason}")
    runner = StageRunner(spec, rank)
    stage, optimizer = runner.stage, runner.optimizer.config
    kinds = optimizer.buffers()
    local = [name for name, _ in stage.named_parameters()]
    slots = [StateSlot(f"param/{name}", tuple(p.shape), "param") for name, p in zip(runner.names, runner.params)]
    slots += [StateSlot(f"{kind}/{name}", tuple(p.shape), "buffer")
              for kind in kinds for name, p in zip(runner.names, runner.params)]
    slots += outer_slots(spec, runner.names, runner.params)
    receives, sends = messages_of(spec, rank)
    flat = (sum(p.numel() for p in runner.params),)
    bits = message_bits(spec)
    shapes = {"activation": runner.act_shape, "gradient": runner.act_shape, "grad_sum": flat, "grad_sq": (1,),
              "outer": flat}
    shapes.update({kind: (rows * (per_row + 1),)  # codes, then a scale a row
                   for kind, (rows, per_row) in quantised_layouts(spec, flat[0]).items() if bits[kind]})
    step = _step_function(spec, runner, local, receives)
    state = initial_state(spec, rank)
    x = torch.zeros(spec.replica_batch, spec.model.seq_len + 1)
    y = torch.zeros(spec.replica_batch, dtype=torch.int64)
    hyper = torch.tensor(optimizer.hyper_row(0, 1), dtype=torch.float32)
    received = [torch.zeros(shapes[m.kind]) for m in receives]
    program = capture_step(step, [*state, x, y, hyper, *received], slots, optimizer.hyper_names, receives=len(receives))
    if len(program.sends) != len(sends):
        raise GraphError("the captured step sends other messages than its schedule")
    program.meta.update({"group_rank": rank, "stages": spec.stages, "optimizer": optimizer.to_dict()})
    return StageProgram(rank, program, receives, sends)


# ── quantised messages (TrainSpec.quantize) ─────────────────────────
def levels(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x``'s message in ``bits``: each sample's row scaled by its max-abs ``s`` and rounded to an
    integer code in ``[-L, L]`` (``L = 2^(bits-1) - 1``), the codes as float32 then the row scales
    (``compression.pack_program_message`` puts it on the wire in ``bits`` a code). Traced into the
    sender's program: round is casts and masks, the max a tree of reductions the judge reads whole."""
    L = float(levels(bits))
    rows = x.reshape(x.shape[0], -1)
    scales = _max_abs(rows)
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    codes = torch.clamp(torch.round(rows / safe.unsqueeze(1) * L), -L, L) + 0.0  # + 0: a −0 code is 0
    return torch.cat([codes.reshape(-1), scales])


def dequantize(message: torch.Tensor, shape: Sequence[int], bits: int) -> torch.Tensor:
    """The tensor a message of :func:`quantize` stands for: ``code · (s / L)``."""
    count = math.prod(shape)
    codes, scales = message[:count].reshape(shape[0], -1), message[count:]
    return (codes * (scales / levels(bits)).unsqueeze(1)).reshape(tuple(shape))


#: values of a quantised all-reduce contribution per scale (the last row zero-padded)
SUM_ROW = 256


def sum_rows(count: int) -> int:
    return -(-count // SUM_ROW)


def quantize_sum(flat: torch.Tensor, bits: int) -> torch.Tensor:
    """A replica's flat gradient sum as a message of :func:`quantize`, in rows of SUM_ROW."""
    pad = sum_rows(flat.numel()) * SUM_ROW - flat.numel()
    padded = torch.cat([flat, torch.zeros(pad)]) if pad else flat
    return quantize(padded.reshape(-1, SUM_ROW), bits)


def dequantize_sum(message: torch.Tensor, count: int, bits: int) -> torch.Tensor:
    return dequantize(message, (sum_rows(count), SUM_ROW), bits).reshape(-1)[:count]


def quantised_layouts(spec: TrainSpec, params: int) -> dict[str, tuple[int, int]]:
    """(rows, values a row) of each kind's quantised message: a sample's activation or gradient a
    row; a replica's ``params`` gradients or pseudo-gradients in rows of SUM_ROW."""
    rows, *sample = spec.activation_shape
    return {"activation": (rows, math.prod(sample)), "gradient": (rows, math.prod(sample)),
            "grad_sum": (sum_rows(params), SUM_ROW), "outer": (sum_rows(params), SUM_ROW)}


def _max_abs(rows: torch.Tensor) -> torch.Tensor:
    """Each row's max |x| as maxima of at most MAX_READ terms (zero-padded), so every max the game
    can reach is one the judge reads whole (an amax is not dissected); a max of maxima is the same."""
    m = rows.abs()
    while m.shape[1] > MAX_READ:
        pad = -m.shape[1] % MAX_READ
        if pad:
            m = torch.cat([m, torch.zeros(m.shape[0], pad)], 1)
        m = m.reshape(m.shape[0], -1, MAX_READ).amax(2)
    return m.amax(1)


def messages_of(spec: TrainSpec, rank: int) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
    """(received, sent) messages of participant ``rank``'s step, each in the order its step
    reads or computes them: the schedule's order, then the gradient all-reduce, the clipping
    norm's and DiLoCo's pseudo-gradients."""
    index, stages = rank % spec.stages, spec.stages
    received, sent = [], []
    for op, m in schedule_ops(spec.schedule, index, stages, spec.micro_batches):
        if op == "F":
            if index > 0:
                received.append(Message("activation", rank - 1, rank, m))
            if index < stages - 1:
                sent.append(Message("activation", rank, rank + 1, m))
        else:
            if index < stages - 1:
                received.append(Message("gradient", rank + 1, rank, m))
            if index > 0:
                sent.append(Message("gradient", rank, rank - 1, m))
    exchanges = {"grad_sum": spec.diloco is None, "grad_sq": bool(spec.optimizer_config().clip_norm),
                 "outer": spec.diloco is not None}
    for kind, group in (("grad_sum", replica_ranks(spec, index)), ("grad_sq", pipeline_ranks(spec, rank // stages)),
                        ("outer", replica_ranks(spec, index))):
        if len(group) > 1 and exchanges[kind]:
            sent.append(Message(kind, rank, -1, -1))
            received += [Message(kind, peer, rank, -1) for peer in group if peer != rank]
    return tuple(received), tuple(sent)


def message_bits(spec: TrainSpec) -> dict[str, int | None]:
    """Bits a code of an ``activation``, a ``gradient``, a ``grad_sum`` and an ``outer`` message
    (None: float32)."""
    q, d = spec.quantize, spec.diloco
    return {"activation": q and q.bits, "gradient": q and q.grad_bits, "grad_sum": (q and q.sum_bits) or None,
            "outer": d.bits if d is not None and d.compress == "quant" else None}


def mail_layout(spec: TrainSpec) -> tuple[int, list[int], list[tuple[int, ...]]]:
    """The group's mail of one step (docs/group-tasks.md §4.1): every message sent, in rank
    order and each rank's in the order it sends them. Returns (messages a step, each rank's
    first position, each rank's inbox: the position of every message it receives)."""
    flows = [messages_of(spec, rank) for rank in range(spec.world)]
    offsets = [sum(len(sent) for _, sent in flows[:rank]) for rank in range(spec.world)]

    def position(m: Message) -> int:
        sent = flows[m.sender][1]
        return offsets[m.sender] + next(k for k, s in enumerate(sent)
                                        if (s.kind, s.micro) == (m.kind, m.micro) and s.receiver in (m.receiver, -1))

    return sum(len(sent) for _, sent in flows), offsets, [tuple(position(m) for m in received) for received, _ in flows]


def group_mail(records: Sequence[ParticipantRecord]) -> list[bytes]:
    """The leaves of the group's mail root: every message's tensor root, step by step, in the
    order of :func:`mail_layout`."""
    return [tensor_root(t) for step in range(len(records[0].sent)) for record in records for t in record.sent[step]]


def published_messages(spec: TrainSpec, parts_dir: str | Path) -> list[torch.Tensor]:
    """Every message the group sent, step by step in the order of :func:`mail_layout`, as
    float32 tensors, from the parts its processes published running their programs
    (``TrainSpec.programs``); each checked against its sender's commitments
    (`parts.load_messages`)."""
    per_step, offsets, _ = mail_layout(spec)
    mail: list[torch.Tensor | None] = [None] * (spec.steps * per_step)
    for rank in range(spec.world):
        participant, sp = P.load_participant(Path(parts_dir), rank), export_stage_program(spec, rank)
        sent = [m for segment in range(len(participant.message_roots))
                for m in P.load_messages(Path(parts_dir), participant, segment)]
        for step in range(spec.steps):
            payloads = [m.payload for m in sent if m.step == step]
            loud = [k for k, message in enumerate(sp.sends) if not silent(spec, step, message)]
            if len(payloads) != len(loud):
                raise P.PartsError(rank, f"step {step}: {len(payloads)} messages published, its program sends {len(loud)}")
            for k, node in enumerate(sp.program.sends):
                mail[step * per_step + offsets[rank] + k] = torch.zeros(sp.program.nodes[node].numel)
            for k, payload in zip(loud, payloads):
                mail[step * per_step + offsets[rank] + k] = payload.view(torch.float32)
    return mail


def published_mail(spec: TrainSpec, parts_dir: str | Path) -> list[bytes]:
    """The leaves of the group's mail root from the parts its processes published."""
    return [tensor_root(m) for m in published_messages(spec, parts_dir)]


def peers_of(spec: TrainSpec, message: Message) -> list[int]:
    """The ranks a sent message goes to."""
    if message.receiver >= 0:
        return [message.receiver]
    stage, replica = message.sender % spec.stages, message.sender // spec.stages
    group = pipeline_ranks(spec, replica) if message.kind == "grad_sq" else replica_ranks(spec, stage)
    return [r for r in group if r != message.sender]


def _in_rank_order(own: torch.Tensor, others: list[torch.Tensor], position: int) -> torch.Tensor:
    """``((x_0 + x_1) + x_2) + …`` over the group's contributions, ``own`` at ``position``."""
    parts = others[:position] + [own] + others[position:]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _step_function(spec: TrainSpec, runner: StageRunner, local: list[str], receives: Sequence[Message]) -> Callable:
    stage: Stage = runner.stage
    config = runner.optimizer.config  # clipping is done here, with the norm summed over stages
    clip_norm = runner.optimizer.clip_norm
    n_params, n_kinds = len(local), len(config.buffers())
    index, stages, micro, replicas = runner.index, spec.stages, spec.micro_size, spec.replicas
    bits = message_bits(spec)

    def encode(kind: str, x: torch.Tensor) -> torch.Tensor:
        return quantize(x, bits[kind]) if bits[kind] else x

    def decode(kind: str, message: torch.Tensor) -> torch.Tensor:
        return dequantize(message, runner.act_shape, bits[kind]) if bits[kind] else message

    n_outer = len(outer_slots(spec, local, runner.params))

    def step(*args):
        n_state = n_params * (1 + n_kinds) + n_outer
        params = dict(zip(local, args[:n_params]))
        buffers = [[args[n_params + k * n_params + i] for k in range(n_kinds)] for i in range(n_params)]
        reads_rows = stage.first or stage.last  # a middle stage's step names no data
        rows, hyper = args[n_state].to(torch.int64) if reads_rows else None, args[n_state + 2]
        inbox = iter(args[n_state + 3:])
        outbox: list[torch.Tensor] = []
        pending: dict[int, Callable] = {}
        grads: list[torch.Tensor] | None = None
        loss = torch.zeros(())
        for op, m in schedule_ops(spec.schedule, index, stages, spec.micro_batches):
            batch = rows[m * micro:(m + 1) * micro] if reads_rows else None
            if op == "F":
                def forward(p, inp=None, batch=batch):
                    out = torch.func.functional_call(stage, p, (batch[:, :-1] if inp is None else inp,))
                    return lm_loss(out, batch) / spec.micro_batches if stage.last else out
                inputs = (params,) if stage.first else (params, decode("activation", next(inbox)))
                out, pending[m] = torch.func.vjp(forward, *inputs)
                if stage.last:
                    loss = loss + out.detach()
                else:
                    outbox.append(encode("activation", out))
            else:
                cotangent = torch.ones(()) if stage.last else decode("gradient", next(inbox))
                result = pending.pop(m)(cotangent)
                if not stage.first:
                    outbox.append(encode("gradient", result[1]))
                micro_grads = [result[0][name] for name in local]
                grads = micro_grads if grads is None else [a + b for a, b in zip(grads, micro_grads)]
        if replicas > 1 and spec.diloco is None:  # the data-parallel mean, summed in replica order
            flat = torch.cat([g.reshape(-1) for g in grads])
            if bits["grad_sum"]:  # every replica sums what the messages stand for, its own too
                outbox.append(quantize_sum(flat, bits["grad_sum"]))
                own = dequantize_sum(outbox[-1], flat.numel(), bits["grad_sum"])
                others = [dequantize_sum(next(inbox), flat.numel(), bits["grad_sum"]) for _ in range(replicas - 1)]
            else:
                outbox.append(flat)
                own, others = flat, [next(inbox) for _ in range(replicas - 1)]
            total = _in_rank_order(own, others, runner.replica) / replicas
            grads = [part.view(g.shape) for part, g in zip(total.split([g.numel() for g in grads]), grads)]
        if clip_norm:
            # summed as (1,) tensors: the sent node is then computed, not a view taken where it is read,
            # so a participant sends its own norm before it reads the others' (all-gathered)
            own = sum((g * g).sum().reshape(1) for g in grads)
            if stages > 1:  # the global norm, summed in stage order
                outbox.append(own)
                total = _in_rank_order(own, [next(inbox) for _ in range(stages - 1)], index)
            else:
                total = own
            coef = torch.clamp(clip_norm / (total.sqrt() + 1e-6), max=1.0)
            grads = [g * coef for g in grads]
        new_params, new_buffers = config.update(list(params.values()), grads, buffers, hyper)
        outer = []
        if spec.diloco is not None:
            new_params, outer = _outer_step(spec, runner.replica, new_params, args[n_state - n_outer:n_state],
                                            outbox, inbox)
        state = new_params + [new_buffers[i][k] for k in range(n_kinds) for i in range(n_params)] + outer
        return (*state, loss, *outbox)

    return step


def _outer_step(spec: TrainSpec, replica: int, params: list[torch.Tensor], outer: Sequence[torch.Tensor],
                outbox: list[torch.Tensor], inbox) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """DiLoCo after the inner optimizer's step (``stage.StageRunner.step``'s, as nodes): on the
    last step of a round the replicas' pseudo-gradients ``global - params`` are averaged in replica
    order and the outer Nesterov step (``compression.OuterNesterov``) moves the global parameters,
    which every replica then takes; on the other steps the state passes through and the message
    sent is zero (:func:`silent`). The round's step count is state, so the step graph is the same
    every step and the choice is a ``where``. Returns (parameters, DiLoCo state in slot order)."""
    d, n = spec.diloco, len(params)
    bits = message_bits(spec)["outer"]
    glob, velocity, count, residual = outer[:n], outer[n:2 * n], outer[2 * n], outer[2 * n + 1:]
    counted = count + 1.0
    last = counted >= d.inner_steps

    def flat(tensors):
        return torch.cat([t.reshape(-1) for t in tensors])

    def split(vector, like):
        return [part.view(t.shape) for part, t in zip(vector.split([t.numel() for t in like]), like)]

    pseudo = flat(glob) - flat(params)
    size = pseudo.numel()
    if bits:
        target = pseudo + flat(residual) if residual else pseudo
        outbox.append(torch.where(last, quantize_sum(target, bits), 0.0))
        own = dequantize_sum(outbox[-1], size, bits)
        others = [dequantize_sum(next(inbox), size, bits) for _ in range(spec.replicas - 1)]
    else:
        outbox.append(torch.where(last, pseudo, 0.0))
        own, others = outbox[-1], [next(inbox) for _ in range(spec.replicas - 1)]
    mean = _in_rank_order(own, others, replica) / spec.replicas
    moved = d.outer_momentum * flat(velocity) + mean
    taken = flat(glob) - d.outer_lr * (mean + d.outer_momentum * moved)
    state = [torch.where(last, taken, flat(glob)), torch.where(last, moved, flat(velocity))]
    new_params = split(torch.where(last, taken, flat(params)), params)
    if residual:
        state.append(torch.where(last, target - own, flat(residual)))
    state = [tensor for vector in state for tensor in split(vector, params)]
    return new_params, state[:2 * n] + [torch.where(last, 0.0, counted)] + state[2 * n:]



# --------------------------------------------------------------------------------------------
# Training a group with its participants' programs


@dataclass
class ParticipantRecord:
    """What one participant did, step by step: the state before each step (and after the last),
    the messages it received and sent in its program's order (a :func:`silent` one as zero, what
    its receivers read, whatever its program computed), and its loss."""

    states: list[list[torch.Tensor]] = dataclasses.field(default_factory=list)
    received: list[list[torch.Tensor]] = dataclasses.field(default_factory=list)
    sent: list[list[torch.Tensor]] = dataclasses.field(default_factory=list)
    losses: list[float] = dataclasses.field(default_factory=list)


def initial_state(spec: TrainSpec, rank: int) -> list[torch.Tensor]:
    """The participant's state before step 0: its stage's initial parameters, zero buffers and,
    with DiLoCo, the initial parameters as the global ones, zero velocity, count and residual."""
    runner = StageRunner(spec, rank)
    kinds = runner.optimizer.config.buffers()
    params = [p.detach().clone() for p in runner.params]
    state = params + [torch.zeros_like(p) for _ in kinds for p in params]
    if spec.diloco is not None:
        residual = [torch.zeros_like(p) for p in params] if _keeps_residual(spec.diloco) else []
        state += [p.clone() for p in params] + [torch.zeros_like(p) for p in params] + [torch.zeros(1)] + residual
    return state


def training_rows(spec: TrainSpec) -> Dataset:
    """The group's training rows as a program reads them: token ids as float32, unused labels."""
    rows = corpus_rows(spec)[0].float()
    return Dataset(rows, torch.zeros(len(rows), dtype=torch.int64))


def step_inputs(spec: TrainSpec, step: int, rank: int, train: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y, hyper) of participant ``rank``'s step ``step``: its replica's batch rows (token
    ids as float32, from ``train``, by default `corpus_rows`), an unused label vector, the
    optimizer's hyper row."""
    train = corpus_rows(spec)[0] if train is None else train
    rows = train[batch_ids(spec, step, rank // spec.stages)].float()
    config = dataclasses.replace(spec.optimizer_config(), clip_norm=0.0)
    hyper = torch.tensor(config.hyper_row(step, spec.steps), dtype=torch.float64).float()
    return rows, torch.zeros(len(rows), dtype=torch.int64), hyper


class _Mailbox:
    """Messages between the participants' threads, by (step, kind, sender, receiver, micro)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.lock = threading.Lock()
        self.boxes: dict[tuple, queue.Queue] = {}
        self.failed = threading.Event()

    def _box(self, key: tuple) -> queue.Queue:
        with self.lock:
            return self.boxes.setdefault(key, queue.Queue(maxsize=1))

    def post(self, step: int, message: Message, tensor: torch.Tensor, receivers: Sequence[int]) -> None:
        for receiver in receivers:
            self._box((step, message.kind, message.sender, receiver, message.micro)).put(tensor.clone())

    def take(self, step: int, message: Message) -> torch.Tensor:
        box = self._box((step, message.kind, message.sender, message.receiver, message.micro))
        waited = 0.0
        while True:
            if self.failed.is_set():
                raise RuntimeError("another participant failed")
            try:
                return box.get(timeout=0.5)
            except queue.Empty:
                waited += 0.5
                if waited >= self.timeout:
                    raise TimeoutError(f"no {message.kind} message from rank {message.sender} at step {step}") from None


def train_stage_programs(spec: TrainSpec, *, corrupt: dict[int, Corruption] | None = None,
                         timeout: float = 120.0) -> tuple[list[StageProgram], list[ParticipantRecord]]:
    """Train ``spec`` with every participant's step program (see the module docstring), one
    thread per participant; ``corrupt[rank]`` makes that participant cheat by one element."""
    programs = [export_stage_program(spec, rank) for rank in range(spec.world)]
    starts = [initial_state(spec, rank) for rank in range(spec.world)]  # seeds torch's global generator
    train = corpus_rows(spec)[0]
    records = [ParticipantRecord() for _ in programs]
    mailbox = _Mailbox(timeout)
    errors: list[BaseException] = []

    def participant(sp: StageProgram) -> None:
        executor, record, cheat = ProgramExecutor(sp.program), records[sp.rank], (corrupt or {}).get(sp.rank)
        state = starts[sp.rank]
        try:
            for step in range(spec.steps):
                record.states.append(state)
                received: list[torch.Tensor | None] = [None] * len(sp.receives)

                def take(i: int, step=step, received=received) -> torch.Tensor:
                    message = sp.receives[i]
                    received[i] = (torch.zeros(sp.received_shapes[i]) if silent(spec, step, message)
                                   else mailbox.take(step, message))
                    return received[i]

                def send(i: int, tensor: torch.Tensor, step=step) -> None:
                    if not silent(spec, step, sp.sends[i]):
                        mailbox.post(step, sp.sends[i], tensor, peers_of(spec, sp.sends[i]))

                x, y, hyper = step_inputs(spec, step, sp.rank, train)
                result = executor.run(state, x, y, hyper, messages=take, on_send=send,
                                       corrupt=cheat if cheat is not None and cheat.step == step else None)
                state = result.state
                record.received.append(received)
                record.sent.append([torch.zeros_like(t) if silent(spec, step, m) else t.clone()
                                    for m, t in zip(sp.sends, result.sent)])
                record.losses.append(float(result.loss))
            record.states.append(state)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
            mailbox.failed.set()

    threads = [threading.Thread(target=participant, args=(sp,), daemon=True) for sp in programs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return programs, records


def replay_step(sp: StageProgram, spec: TrainSpec, step: int, state: Sequence[torch.Tensor],
                received: Sequence[torch.Tensor]):
    """Participant ``sp.rank``'s step ``step`` re-run from its state and the messages it
    received: a verifier's replay (a :class:`~offchain.ml.program.StepResult`)."""
    x, y, hyper = step_inputs(spec, step, sp.rank)
    return ProgramExecutor(sp.program).run(list(state), x, y, hyper, messages=list(received))


class ProgramRunner:
    """A participant that trains by running its step program, talking through the engine's links
    (``TrainSpec.programs``; the interface of :class:`~offchain.distributed.stage.StageRunner`,
    so the engine's processes, the parts it publishes and the replays run it unchanged). A message
    is the bytes of its float32 tensor, which the parts keep; a quantised one crosses the link as
    its codes packed (``TrainSpec.quantize``'s bits each). Activations and gradients go point to
    point; the collectives are an all-gather over the stage's replicas or the replica's pipeline,
    whose other contributions the program then reads in rank order."""

    def __init__(self, spec: TrainSpec, rank: int, program: StageProgram | None = None) -> None:
        self.spec, self.rank = spec, rank
        self.replica, self.index = divmod(rank, spec.stages)
        self.sp = program or export_stage_program(spec, rank)
        self.executor = ProgramExecutor(self.sp.program)
        self.slots = self.sp.program.state
        self.values = initial_state(spec, rank)
        self.collectives = {"grad_sum": replica_ranks(spec, self.index), "grad_sq": pipeline_ranks(spec, self.replica),
                            "outer": replica_ranks(spec, self.index)}
        bits = message_bits(spec)
        self.codecs = {kind: bits[kind] and C.ProgramMessageCodec(*layout, bits[kind])
                       for kind, layout in quantised_layouts(spec, sum(p.numel() for p in self.params)).items()}
        self.train = corpus_rows(spec)[0]

    @property
    def params(self) -> list[torch.Tensor]:
        return [value for slot, value in zip(self.slots, self.values) if slot.kind == "param"]

    def state(self) -> dict[str, torch.Tensor]:
        return {slot.name: value.clone() for slot, value in zip(self.slots, self.values)}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.values = [state[slot.name].clone() for slot in self.slots]

    def parameters_by_name(self) -> dict[str, torch.Tensor]:
        return {slot.name.split("/", 1)[1]: value.clone()
                for slot, value in zip(self.slots, self.values) if slot.kind == "param"}

    def step(self, step: int, links) -> float | None:
        links.at_step(step)
        gathered: dict[str, list[torch.Tensor]] = {}

        def receive(i: int) -> torch.Tensor:
            message, shape = self.sp.receives[i], self.sp.received_shapes[i]
            if silent(self.spec, step, message):
                return torch.zeros(shape)
            if message.kind in self.collectives:
                return gathered[message.kind].pop(0)
            payload = links.recv(4 * math.prod(shape), message.sender, self.codecs[message.kind])
            return payload.view(torch.float32).view(shape)

        def send(i: int, tensor: torch.Tensor) -> None:
            message, payload = self.sp.sends[i], tensor.contiguous().view(-1).view(torch.uint8)
            if silent(self.spec, step, message):
                return
            if message.kind not in self.collectives:
                links.send(payload, message.receiver, self.codecs[message.kind])
                return
            ranks = self.collectives[message.kind]
            everyone = links.all_gather(payload, ranks, self.codecs.get(message.kind))
            gathered[message.kind] = [part.view(torch.float32).view(tensor.shape)
                                      for q, part in zip(ranks, everyone) if q != self.rank]

        x, y, hyper = step_inputs(self.spec, step, self.rank, self.train)
        result = self.executor.run(self.values, x, y, hyper, messages=receive, on_send=send)
        self.values = result.state
        return float(result.loss) if self.index == self.spec.stages - 1 else None


def participant_program(sp: StageProgram, spec: TrainSpec) -> Program:
    """Participant ``sp.rank``'s program bound to where its messages sit in its group's mail
    (:func:`mail_layout`): what its task names."""
    per_step, offsets, inboxes = mail_layout(spec)
    return dataclasses.replace(sp.program, mail=Mail(inboxes[sp.rank], offsets[sp.rank], per_step))


def participant_task(sp: StageProgram, spec: TrainSpec, state: Sequence[torch.Tensor] | None = None, *,
                     checkpoint_interval: int = 1, cid: Callable[[bytes], str] = compute_cid) -> TrainingTask:
    """Participant ``sp.rank``'s steps bound as a task of their own, the form the dispute game
    judges, from ``state`` (its state before step 0, by default :func:`initial_state`): its
    program bound to its place in the group's mail (so a message it received is an input it can
    prove and one it sent an output it answers for, docs/group-tasks.md §4.1), the optimizer's
    hyper table without clipping (the program sums the clipping norm itself), the training rows
    as the dataset with its replica's seed (`spec.replica_seed`). A first or last stage reads
    rows, which the task's data link checks only when the group draws them as a task does
    (``sampling="task"``)."""
    if sp.program.leaf("data_x") is not None and spec.sampling != "task":
        raise GraphError(f"participant {sp.rank} reads rows in the epoch order (sampling 'epochs'), which a task's "
                         "data link cannot check: the group must draw its rows with sampling 'task'")
    program = participant_program(sp, spec)
    optimizer = dataclasses.replace(spec.optimizer_config(), clip_norm=0.0)
    seed = replica_seed(spec, sp.rank // spec.stages)
    training = ProgramTraining(program, optimizer, spec.steps, seed)
    weights = dict(zip(training.param_names, initial_state(spec, sp.rank) if state is None else state))
    rows = training_rows(spec)
    return TrainingTask(model_cid=cid(program.to_bytes()), weights_cid=cid(weights_to_bytes(weights, training)),
                        dataset_cid=cid(rows.to_bytes()), weights_root=checkpoint_root(weights, training.param_names),
                        dataset_root=rows.root(), dataset_rows=rows.n_rows, lr=optimizer.lr, batch_size=spec.replica_batch,
                        steps=spec.steps, seed=seed, checkpoint_interval=checkpoint_interval, graph_root=program.root,
                        optimizer=optimizer, hyper_root=training.hyper_root)
