"""What each participant of a multi-process training task publishes, and its commitments.

A participant (one rank: stage ``s`` of replica ``r``) of a spec with ``checkpoint_interval = k``
publishes, under ``<parts_dir>/rank<p>/``:

* ``checkpoint-<j>.safetensors``: its committed state before step ``j * k`` (the stage's
  parameters, optimizer buffers, DiLoCo state and AQ-SGD caches, :class:`StageRunner.state
  <offchain.distributed.stage.StageRunner>`); metadata ``step``, ``order`` (the tensor names in
  commitment order) and ``root``, the :func:`~offchain.ml.commit.checkpoint_root` over them;
* ``messages-<j>.safetensors``: every message it **sent** during segment ``j`` (steps
  ``[j * k, (j + 1) * k)``) in the order it sent them, tensor ``<i>`` (6 digits) holding the
  exact bytes (``uint8``); metadata ``messages``, one ``{step, op, to, root}`` per message
  (``op`` is ``send`` to rank ``to[0]``, or ``all_reduce`` / ``all_gather`` over the ranks
  ``to``, whose payload is this rank's contribution), and ``root``, the segment's message root;
* ``proof.json``: ``rank``, ``checkpoint_interval``, ``checkpoint_roots``, ``message_roots`` and
  ``proof_root`` (hex).

Roots: a message's root is :func:`~offchain.ml.commit.bytes_root` of its bytes (the tensor root of
the message as a byte tensor); a segment's message root is ``keccak256(merkle_root(message roots)
‖ uint256(count))``; a participant's proof root is the Merkle root of two leaves, the
:func:`~offchain.ml.commit.proof_root` of its checkpoint roots and the Merkle root of its segments'
message roots; the group's root (``<parts_dir>/group.json``) is the Merkle root of the
participants' proof roots in rank order. Everything is safetensors and JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from offchain.distributed.compression import raw_bytes
from offchain.ml.commit import bytes_root, checkpoint_root, hashing_threads, merkle_root, proof_root, sized_root


class PartsError(ValueError):
    """Published parts that do not match their own commitments (``rank`` is the publisher)."""

    def __init__(self, rank: int, reason: str) -> None:
        super().__init__(f"rank {rank}: {reason}")
        self.rank = rank


# ── commitments ──────────────────────────────────────────────────────
def message_root(payload: torch.Tensor) -> bytes:
    return bytes_root(payload.contiguous().numpy().tobytes(), payload.numel())


def messages_root(roots: list[bytes]) -> bytes:
    return sized_root(merkle_root(roots), len(roots))


def participant_root(checkpoint_roots: list[bytes], message_roots: list[bytes]) -> bytes:
    return merkle_root([proof_root(checkpoint_roots), merkle_root(message_roots)])


def group_root(participant_roots: list[bytes]) -> bytes:
    return merkle_root(participant_roots)


# ── recording what a rank sends ──────────────────────────────────────
@dataclass(frozen=True)
class SentMessage:
    step: int
    op: str  # send | all_reduce | all_gather
    to: tuple[int, ...]  # the receiver, or the collective's ranks
    payload: torch.Tensor  # uint8, the exact bytes


class Recorder:
    """Links that pass everything to ``inner`` and keep a copy of every message sent."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.step, self.sent = inner, 0, []

    def at_step(self, step: int) -> None:
        self.step = step
        self.inner.at_step(step)

    def _keep(self, op: str, to: tuple[int, ...], payload: torch.Tensor) -> None:
        self.sent.append(SentMessage(self.step, op, to, payload.detach().clone()))

    def send(self, payload: torch.Tensor, dst: int, codec: Any = None) -> None:
        self._keep("send", (dst,), payload)
        self.inner.send(payload, dst, codec)

    def recv(self, size: int, src: int, codec: Any = None) -> torch.Tensor:
        return self.inner.recv(size, src, codec)

    def all_reduce(self, tensor: torch.Tensor, ranks: tuple[int, ...]) -> None:
        if len(ranks) > 1:
            self._keep("all_reduce", ranks, raw_bytes(tensor))
        self.inner.all_reduce(tensor, ranks)

    def all_gather(self, message: torch.Tensor, ranks: tuple[int, ...], codec: Any = None) -> list[torch.Tensor]:
        if len(ranks) > 1:
            self._keep("all_gather", ranks, message)
        return self.inner.all_gather(message, ranks, codec)

    def flush(self) -> None:
        self.inner.flush()

    def take(self) -> list[SentMessage]:
        sent, self.sent = self.sent, []
        return sent


# ── writing ──────────────────────────────────────────────────────────
def rank_dir(parts_dir: Path, rank: int) -> Path:
    return Path(parts_dir) / f"rank{rank}"


def _hex(roots: list[bytes]) -> list[str]:
    return [root.hex() for root in roots]


class Publisher:
    """Writes one rank's parts as it trains: :meth:`checkpoint` at every multiple of ``k``
    steps (and at the end), :meth:`close_segment` after every ``k`` steps, :meth:`finish` last.
    It hashes on the rank's own thread: a rank may be a forked process, where a hashing pool
    inherited from its parent has no threads."""

    def __init__(self, parts_dir: Path, rank: int, interval: int) -> None:
        self.dir, self.rank, self.interval = rank_dir(parts_dir, rank), rank, interval
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_roots: list[bytes] = []
        self.message_roots: list[bytes] = []
        self._recorder: Recorder | None = None

    def recorder(self, inner: Any) -> Recorder:
        self._recorder = Recorder(inner)
        return self._recorder

    def checkpoint(self, state: dict[str, torch.Tensor]) -> bytes:
        index = len(self.checkpoint_roots)
        root = write_checkpoint(self.dir / f"checkpoint-{index}.safetensors", state, step=index * self.interval)
        self.checkpoint_roots.append(root)
        return root

    def close_segment(self) -> bytes:
        index = len(self.message_roots)
        root = write_messages(self.dir / f"messages-{index}.safetensors", self._recorder.take())
        self.message_roots.append(root)
        return root

    def finish(self) -> bytes:
        root = participant_root(self.checkpoint_roots, self.message_roots)
        (self.dir / "proof.json").write_text(json.dumps({
            "rank": self.rank, "checkpoint_interval": self.interval,
            "checkpoint_roots": _hex(self.checkpoint_roots), "message_roots": _hex(self.message_roots),
            "proof_root": root.hex()}, indent=1))
        return root


def write_checkpoint(path: Path, state: dict[str, torch.Tensor], *, step: int, threads: int = 1) -> bytes:
    order = list(state)
    with hashing_threads(threads):
        root = checkpoint_root(state, order)
    save_file({name: t.contiguous() for name, t in state.items()}, str(path),
              metadata={"step": str(step), "order": json.dumps(order), "root": root.hex()})
    return root


def write_messages(path: Path, sent: list[SentMessage], *, threads: int = 1) -> bytes:
    with hashing_threads(threads):
        roots = [message_root(m.payload) for m in sent]
    listing = [{"step": m.step, "op": m.op, "to": list(m.to), "root": r.hex()} for m, r in zip(sent, roots)]
    root = messages_root(roots)
    save_file({f"{i:06d}": m.payload.contiguous() for i, m in enumerate(sent)}, str(path),
              metadata={"messages": json.dumps(listing), "root": root.hex()})
    return root


def publish_group(parts_dir: Path, world: int) -> bytes:
    """``group.json``: the participants' proof roots (each checked against its own roots) and the
    group root."""
    return write_group(parts_dir, [load_participant(parts_dir, rank).proof_root for rank in range(world)])


def write_group(parts_dir: Path, roots: list[bytes]) -> bytes:
    """``group.json`` from the participants' proof roots in rank order."""
    root = group_root(roots)
    (Path(parts_dir) / "group.json").write_text(json.dumps(
        {"participants": _hex(roots), "group_root": root.hex()}, indent=1))
    return root


# ── reading (every part checked against the publisher's commitments) ──
@dataclass(frozen=True)
class Participant:
    rank: int
    checkpoint_interval: int
    checkpoint_roots: list[bytes]
    message_roots: list[bytes]
    proof_root: bytes


def load_participant(parts_dir: Path, rank: int) -> Participant:
    doc = json.loads((rank_dir(parts_dir, rank) / "proof.json").read_text())
    ckpt, msgs = [bytes.fromhex(h) for h in doc["checkpoint_roots"]], [bytes.fromhex(h) for h in doc["message_roots"]]
    participant = Participant(rank, int(doc["checkpoint_interval"]), ckpt, msgs, bytes.fromhex(doc["proof_root"]))
    if doc["rank"] != rank or participant_root(ckpt, msgs) != participant.proof_root:
        raise PartsError(rank, "proof.json's proof root does not commit its roots")
    return participant


def load_group_root(parts_dir: Path) -> bytes:
    return bytes.fromhex(json.loads((Path(parts_dir) / "group.json").read_text())["group_root"])


def load_checkpoint(parts_dir: Path, participant: Participant, index: int) -> dict[str, torch.Tensor]:
    """Checkpoint ``index`` of ``participant``, in its committed order, checked against its root."""
    path = rank_dir(parts_dir, participant.rank) / f"checkpoint-{index}.safetensors"
    with safe_open(str(path), framework="pt") as file:
        order = json.loads(file.metadata()["order"])
        if sorted(order) != sorted(file.keys()):
            raise PartsError(participant.rank, f"checkpoint {index}: tensors differ from its order")
        state = {name: file.get_tensor(name) for name in order}
    if checkpoint_root(state, order) != participant.checkpoint_roots[index]:
        raise PartsError(participant.rank, f"checkpoint {index} does not match its committed root")
    return state


def load_messages(parts_dir: Path, participant: Participant, segment: int) -> list[SentMessage]:
    """The messages ``participant`` sent in ``segment``, each checked against its root and the
    roots against the segment's committed message root."""
    path = rank_dir(parts_dir, participant.rank) / f"messages-{segment}.safetensors"
    with safe_open(str(path), framework="pt") as file:
        listing = json.loads(file.metadata()["messages"])
        if len(listing) != len(file.keys()):
            raise PartsError(participant.rank, f"segment {segment}: {len(file.keys())} messages, {len(listing)} listed")
        payloads = [file.get_tensor(f"{i:06d}") for i in range(len(listing))]
    roots = [message_root(p) for p in payloads]
    if any(root.hex() != entry["root"] for root, entry in zip(roots, listing)):
        raise PartsError(participant.rank, f"segment {segment}: a message does not match its listed root")
    if messages_root(roots) != participant.message_roots[segment]:
        raise PartsError(participant.rank, f"segment {segment}: messages do not match the committed message root")
    return [SentMessage(int(e["step"]), e["op"], tuple(e["to"]), p) for e, p in zip(listing, payloads)]
