"""Replaying one participant's segment of a multi-process training task in one process.

The participant's runner (`engine.make_runner`) is loaded from its published
checkpoint at the segment's start and runs the segment's steps with :class:`ReplayLinks`: what
it receives is taken from its senders' published messages (each checked against the sender's
committed message root), collectives add its own contribution to its peers' published ones in
rank order, as the engine does when it commits. The verdict compares the end state with the
participant's next checkpoint (relative L2 distance per part of the state, against a threshold as
in :mod:`offchain.ml.verify`) and every message the replay sent with the one the participant
published. A participant is judged on what it received: a wrong message makes its sender's
replay fail, never its receiver's.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from offchain.distributed import parts as P
from offchain.distributed.compression import from_raw
from offchain.distributed.engine import make_runner
from offchain.distributed.spec import TrainSpec, pipeline_ranks, replica_ranks
from offchain.distributed.stage import sum_in_rank_order
from offchain.ml.verify import MIN_THRESHOLD, state_distance


class ReplayLinks:
    """Links of a replayed rank: ``inbox[q]`` holds the messages rank ``q`` published as sent to
    this rank (or to a collective it is in), in the order ``q`` sent them."""

    def __init__(self, rank: int, inbox: dict[int, list[P.SentMessage]]) -> None:
        self.rank, self.step = rank, 0
        self.inbox = {q: deque(messages) for q, messages in inbox.items()}

    def at_step(self, step: int) -> None:
        self.step = step

    def _next(self, src: int, op: str, to: tuple[int, ...]) -> torch.Tensor:
        queue = self.inbox.get(src)
        if not queue:
            raise P.PartsError(src, f"published no {op} to rank {self.rank} at step {self.step}")
        message = queue.popleft()
        if (message.step, message.op, message.to) != (self.step, op, to):
            raise P.PartsError(src, f"published {message.op} to {message.to} at step {message.step} where the "
                                    f"schedule has {op} to {to} at step {self.step}")
        return message.payload

    def send(self, payload: torch.Tensor, dst: int, codec=None) -> None:
        pass  # the recorder around these links keeps it

    def recv(self, size: int, src: int, codec=None) -> torch.Tensor:
        """The message ``src`` published, as it committed it (a ``codec`` is the wire's business)."""
        payload = self._next(src, "send", (self.rank,))
        if payload.numel() != size:
            raise P.PartsError(src, f"sent {payload.numel()} bytes at step {self.step}, the receiver expects {size}")
        return payload

    def all_reduce(self, tensor: torch.Tensor, ranks: tuple[int, ...]) -> None:
        if len(ranks) == 1:
            return
        parts = [tensor.clone() if q == self.rank else self._contribution(q, "all_reduce", ranks, tensor)
                 for q in ranks]
        tensor.copy_(sum_in_rank_order(parts))

    def all_gather(self, message: torch.Tensor, ranks: tuple[int, ...], codec=None) -> list[torch.Tensor]:
        if len(ranks) == 1:
            return [message]
        return [message if q == self.rank else self._contribution(q, "all_gather", ranks, message) for q in ranks]

    def _contribution(self, src: int, op: str, ranks: tuple[int, ...], own: torch.Tensor) -> torch.Tensor:
        payload = self._next(src, op, ranks)
        nbytes = own.numel() * own.element_size()
        if payload.numel() != nbytes:
            raise P.PartsError(src, f"{op} payload of {payload.numel()} bytes at step {self.step}, expected {nbytes}")
        return payload if own.dtype == torch.uint8 else from_raw(payload, own.shape)

    def flush(self) -> None:
        pass

    def leftover(self) -> list[int]:
        """Senders with published messages the replay did not use."""
        return [q for q, queue in self.inbox.items() if queue]


@dataclass
class ParticipantVerdict:
    """Whether ``rank``'s segment replays to what it published."""

    rank: int
    segment: int
    accept: bool
    distance: float  # largest relative L2 distance over the parts of the state (params, each buffer, ...)
    exact: bool  # the replayed end state equals the published checkpoint bit for bit
    threshold: float
    messages: int  # messages the participant published for the segment
    wrong_messages: list[int] = field(default_factory=list)  # their indices where the replay sent otherwise
    reason: str = ""


def _by_part(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        part, name = key.split("/", 1)
        parts.setdefault(part, {})[name] = tensor
    return parts


def end_state_distance(replayed: dict[str, torch.Tensor], published: dict[str, torch.Tensor]) -> float:
    """Largest relative L2 distance over the parts of a committed state (a small part such as
    Adam's second moments is not drowned by the parameters); infinite if the names differ."""
    if list(replayed) != list(published):
        return math.inf
    a, b = _by_part(replayed), _by_part(published)
    return max((state_distance(a[part], b[part]) for part in b), default=0.0)


def _wrong_messages(replayed: list[P.SentMessage], published: list[P.SentMessage]) -> list[int]:
    def same(x: P.SentMessage, y: P.SentMessage) -> bool:
        return (x.step, x.op, x.to) == (y.step, y.op, y.to) and torch.equal(x.payload, y.payload)

    return [i for i in range(max(len(replayed), len(published)))
            if i >= len(replayed) or i >= len(published) or not same(replayed[i], published[i])]


def _inbox(spec: TrainSpec, parts_dir: Path, rank: int, segment: int) -> dict[int, list[P.SentMessage]]:
    """What each peer (pipeline neighbours and collective partners) published as sent to ``rank``."""
    replica, stage = divmod(rank, spec.stages)
    peers = (set(pipeline_ranks(spec, replica)) | set(replica_ranks(spec, stage))) - {rank}
    inbox = {}
    for q in sorted(peers):
        sent = P.load_messages(parts_dir, P.load_participant(parts_dir, q), segment)
        inbox[q] = [m for m in sent if (m.to == (rank,) if m.op == "send" else rank in m.to)]
    return inbox


def replay_participant(spec: TrainSpec, parts_dir: str | Path, rank: int, segment: int, *,
                       threshold: float = MIN_THRESHOLD) -> ParticipantVerdict:
    """Replay steps ``[segment * k, (segment + 1) * k)`` of participant ``rank`` from its
    published parts. ``threshold`` bounds the end state's distance (the floor of the project's
    verifier by default: a replay with the spec's thread count is bitwise). Published parts that
    contradict their own commitments raise :class:`~offchain.distributed.parts.PartsError`
    naming their publisher."""
    parts_dir = Path(parts_dir)
    participant = P.load_participant(parts_dir, rank)
    k = spec.checkpoint_interval
    if participant.checkpoint_interval != k or not k or not 0 <= segment < spec.steps // k:
        raise ValueError(f"segment {segment} is not a segment of this spec's proofs (checkpoint_interval {k})")
    start = P.load_checkpoint(parts_dir, participant, segment)
    published_end = P.load_checkpoint(parts_dir, participant, segment + 1)
    published_sent = P.load_messages(parts_dir, participant, segment)
    replay_links = ReplayLinks(rank, _inbox(spec, parts_dir, rank, segment))
    links = P.Recorder(replay_links)
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        runner = make_runner(spec, rank)
        try:
            runner.load_state(start)
        except KeyError as missing:
            raise P.PartsError(rank, f"checkpoint {segment} lacks {missing}") from None
        for step in range(segment * k, (segment + 1) * k):
            runner.step(step, links)
    finally:
        torch.set_num_threads(threads)
    for q in replay_links.leftover():
        raise P.PartsError(q, f"published messages to rank {rank} in segment {segment} that the schedule never reads")
    end = runner.state()
    distance = end_state_distance(end, published_end)
    exact = list(end) == list(published_end) and all(torch.equal(end[n], published_end[n]) for n in end)
    wrong = _wrong_messages(links.take(), published_sent)
    reasons = []
    if not distance <= threshold:
        reasons.append(f"end state at distance {distance:.3e} > threshold {threshold:.3e}")
    if wrong:
        reasons.append(f"{len(wrong)} of {len(published_sent)} sent messages differ from the replay "
                       f"(first: {wrong[0]})")
    return ParticipantVerdict(rank, segment, not reasons, distance, exact, threshold, len(published_sent), wrong,
                              "; ".join(reasons))


def check_group(spec: TrainSpec, parts_dir: str | Path) -> bytes:
    """The group root recomputed from every participant's published roots; raises if
    ``group.json`` says otherwise."""
    root = P.group_root([P.load_participant(Path(parts_dir), q).proof_root for q in range(spec.world)])
    if root != P.load_group_root(Path(parts_dir)):
        raise ValueError("group.json's root is not the root of its participants' proof roots")
    return root


def main() -> None:
    """Cost of committing and of replaying, on the benchmark's 2x2 AQ-SGD training
    (docs/distributed-training.md): ``python -m offchain.distributed.replay``."""
    import argparse
    import dataclasses
    import tempfile
    import time

    from offchain.distributed.engine import run_many
    from offchain.distributed.spec import AQSGDConfig, GPTShape

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--interval", type=int, default=16)
    args = parser.parse_args()
    spec = TrainSpec(model=GPTShape(vocab=256, seq_len=32, dim=64, heads=4, layers=2), stages=2, replicas=2,
                     batch_size=16, micro_batches=4, steps=args.steps, train_rows=256, holdout_rows=512,
                     aqsgd=AQSGDConfig(4, 8, warmup_epochs=1), checkpoint_interval=args.interval)
    with tempfile.TemporaryDirectory(prefix="dtm-parts-") as parts_dir:
        plain, committed = run_many([dataclasses.replace(spec, checkpoint_interval=0), spec],
                                    parts_dirs=[None, parts_dir])
        same = all(torch.equal(plain.state[n], committed.state[n]) for n in plain.state)
        print(f"2x2 AQ-SGD, {spec.steps} steps, checkpoint every {spec.checkpoint_interval}: training "
              f"{plain.seconds:.2f} s plain, {committed.seconds:.2f} s committing "
              f"({committed.seconds / plain.seconds:.2f}x); same parameters: {same}")
        for rank in range(spec.world):
            folder = P.rank_dir(Path(parts_dir), rank)
            checkpoints = sum(f.stat().st_size for f in folder.glob("checkpoint-*"))
            messages = sum(f.stat().st_size for f in folder.glob("messages-*"))
            print(f"  rank {rank}: published checkpoints {checkpoints:,} B, messages {messages:,} B")
        print(f"group root {check_group(spec, parts_dir).hex()}")
        start, verdicts = time.perf_counter(), []
        for rank in range(spec.world):
            for segment in range(spec.steps // spec.checkpoint_interval):
                verdicts.append(replay_participant(spec, parts_dir, rank, segment))
        seconds = time.perf_counter() - start
        print(f"replayed {len(verdicts)} participant segments in {seconds:.2f} s "
              f"({seconds / len(verdicts):.3f} s each, {spec.checkpoint_interval} steps of one stage); "
              f"accepted {sum(v.accept for v in verdicts)}, exact {sum(v.exact for v in verdicts)}")


if __name__ == "__main__":
    main()
