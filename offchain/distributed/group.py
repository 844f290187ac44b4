"""A group task as its members handle it: the spec every machine trains (a JSON document), and a
verifier's pass over the parts the group published (docs/group-tasks.md §6).

`dtm group spec|run|join|verify` (offchain/cli.py) are these functions and the engine's
:func:`~offchain.distributed.engine.run` and :func:`~offchain.distributed.engine.join`."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode

from offchain.distributed import parts as P
from offchain.distributed.spec import AQSGDConfig, DiLoCoConfig, GPTShape, LinkConfig, QuantizeConfig, TrainSpec
from offchain.distributed.replay import ParticipantVerdict, check_group, replay_participant
from offchain.distributed.stage_program import export_stage_program, participant_program, participant_task
from offchain.ml.commit import keccak256, merkle_root
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program import Program
from offchain.ml.errors import SpecError
from offchain.ml.task import COMMITMENT_TYPES, TrainingTask
from offchain.ml.verify import MIN_THRESHOLD
from offchain.storage import compute_cid

SPEC_FORMAT = "dtm-group-spec/1"
NESTED = {"model": GPTShape, "aqsgd": AQSGDConfig, "diloco": DiLoCoConfig, "link": LinkConfig,
          "quantize": QuantizeConfig}
MAX_SPEC_BYTES = 64 * 1024


class GroupError(ValueError):
    """A group spec or a group's published parts that cannot be used, in one line."""


# ── the spec as JSON ─────────────────────────────────────────────────
def spec_to_json(spec: TrainSpec) -> dict[str, Any]:
    """Every field written out, the optimizer too (its default depends on the step count), so
    machines with other defaults still train the same task."""
    doc: dict[str, Any] = {"format": SPEC_FORMAT}
    for f in dataclasses.fields(TrainSpec):
        value = getattr(spec, f.name)
        if f.name == "optimizer":
            value = spec.optimizer_config().to_dict()
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        elif isinstance(value, tuple):
            value = list(value)
        doc[f.name] = value
    return doc


def _typed(value: Any, like: Any, where: str) -> Any:
    """``value`` if it has the type of the default ``like`` (an int stands for a float)."""
    if isinstance(like, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(like, bool)
    elif isinstance(like, float):
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise GroupError(f"group spec: {where} must be a {type(like).__name__}, not {json.dumps(value)}")
    return value


def _fields(cls: type, obj: Any, where: str) -> dict[str, Any]:
    """``obj``'s fields of dataclass ``cls``, every one present and typed like its default."""
    if not isinstance(obj, dict):
        raise GroupError(f"group spec: {where} must be an object")
    names = [f.name for f in dataclasses.fields(cls)]
    if unknown := sorted(set(obj) - set(names)):
        raise GroupError(f"group spec: {where} has unknown field {unknown[0]!r}")
    if missing := [n for n in names if n not in obj]:
        raise GroupError(f"group spec: {where} lacks {missing[0]!r}")
    defaults = cls()
    return {n: _typed(obj[n], getattr(defaults, n), f"{where}.{n}") for n in names}


def spec_from_json(doc: Any) -> TrainSpec:
    """The spec a JSON document describes, or :class:`GroupError` naming what is wrong."""
    if not isinstance(doc, dict) or doc.get("format") != SPEC_FORMAT:
        raise GroupError(f"not a group spec: its format must be {SPEC_FORMAT!r}")
    body = {key: value for key, value in doc.items() if key != "format"}
    names = [f.name for f in dataclasses.fields(TrainSpec)]
    if unknown := sorted(set(body) - set(names)):
        raise GroupError(f"group spec: unknown field {unknown[0]!r}")
    if missing := [n for n in names if n not in body]:
        raise GroupError(f"group spec: lacks {missing[0]!r}")
    defaults, kwargs = TrainSpec(), {}
    for name in names:
        value = body[name]
        if name == "optimizer":
            try:
                kwargs[name] = OptimizerConfig.from_dict(value)
            except SpecError as exc:
                raise GroupError(f"group spec: {exc}") from None
        elif name in NESTED:
            kwargs[name] = None if value is None else NESTED[name](**_fields(NESTED[name], value, name))
        elif name == "split":
            if value is not None and not (isinstance(value, list) and all(type(v) is int for v in value)):
                raise GroupError("group spec: split must be a list of block counts or null")
            kwargs[name] = None if value is None else tuple(value)
        else:
            kwargs[name] = _typed(value, getattr(defaults, name), name)
    try:
        return TrainSpec(**kwargs)
    except ValueError as exc:
        raise GroupError(f"group spec: {exc}") from None


def load_spec(path: str | Path) -> TrainSpec:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise GroupError(f"{path}: larger than {MAX_SPEC_BYTES} bytes; not a group spec")
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise GroupError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GroupError(f"{path}: not JSON ({exc})") from None
    return spec_from_json(doc)


def spec_bytes(spec: TrainSpec) -> bytes:
    """The spec's document as it is saved and published."""
    return (json.dumps(spec_to_json(spec), indent=1) + "\n").encode()


def save_spec(spec: TrainSpec, path: str | Path) -> None:
    Path(path).write_bytes(spec_bytes(spec))


# ── the group task on chain ──────────────────────────────────────────
GROUP_TASK = keccak256(b"dtm group task")  # the chain's structs.GROUP_TASK


@dataclass(frozen=True)
class GroupTask:
    """A group task as the chain holds it (docs/group-tasks.md §4.3): the spec every machine
    trains and, in rank order, each participant's steps as a task of their own (the form the
    dispute game judges), each checkpointed every ``spec.checkpoint_interval`` steps."""

    spec: TrainSpec
    participants: tuple[TrainingTask, ...]
    programs: tuple[Program, ...]  # each participant's step, as its task names it

    def commitments(self) -> tuple:
        """`Commitments` in `abi.encode` order: the spec document's hash, keccak256(abi.encode(
        bytes32[] participant hashes)) as the graph root, the group's rows, the GROUP_TASK mark as
        the weights root, the seed, the batch, the participants' steps all together (so the
        market's segments are every participant's) and the checkpoint interval."""
        rows = self.participants[0]
        hashes = [task.hash() for task in self.participants]
        return (keccak256(spec_bytes(self.spec)), keccak256(encode(["bytes32[]"], [hashes])), rows.dataset_root,
                rows.dataset_rows, GROUP_TASK, self.spec.seed, self.spec.batch_size,
                self.spec.steps * len(self.participants), self.spec.checkpoint_interval)

    def hash(self) -> bytes:
        return keccak256(encode(COMMITMENT_TYPES, self.commitments()))

    @property
    def checkpoints(self) -> int:
        """The checkpoint count the market holds for the task (each participant has
        ``steps / k + 1`` of its own)."""
        return self.spec.steps * len(self.participants) // self.spec.checkpoint_interval + 1

    def segment(self, rank: int, segment: int) -> int:
        """The market's segment that is participant ``rank``'s ``segment``."""
        return rank * (self.spec.steps // self.spec.checkpoint_interval) + segment

    def participant(self, segment: int) -> int:
        """The participant whose segment the market's ``segment`` is."""
        return segment // (self.spec.steps // self.spec.checkpoint_interval)


def group_task(spec: TrainSpec, *, cid: Callable[[bytes], str] = compute_cid) -> GroupTask:
    """The group task of ``spec``, which must checkpoint (`checkpoint_interval`) and capture its
    participants' steps (`unsupported`)."""
    if not spec.commits:
        raise GroupError("a group task needs a checkpoint_interval: its participants' proofs are what it commits")
    if not spec.programs:
        raise GroupError("a group task needs programs: its participants train by the steps the game judges")
    captured = [export_stage_program(spec, rank) for rank in range(spec.world)]
    return GroupTask(spec, tuple(participant_task(sp, spec, checkpoint_interval=spec.checkpoint_interval, cid=cid)
                                 for sp in captured), tuple(participant_program(sp, spec) for sp in captured))


def group_checkpoints_root(checkpoint_roots: Sequence[Sequence[bytes]]) -> bytes:
    """The Merkle root of every participant's checkpoint roots, in rank order."""
    return merkle_root([root for roots in checkpoint_roots for root in roots])


def group_proof_root(checkpoint_roots: Sequence[Sequence[bytes]], mail: Sequence[bytes]) -> tuple[bytes, bytes]:
    """(checkpoints root, proof root) of a group's proof: the Merkle root of every participant's
    checkpoint roots in rank order, and keccak256(abi.encode(that root, the mail root))."""
    checkpoints_root = group_checkpoints_root(checkpoint_roots)
    return checkpoints_root, keccak256(encode(["bytes32", "bytes32"], [checkpoints_root, merkle_root(list(mail))]))


# ── verifying a group ────────────────────────────────────────────────
@dataclass
class GroupVerdict:
    group_root: bytes
    verdicts: list[ParticipantVerdict]  # one per replayed (participant, segment), a refusal blames its publisher

    @property
    def accept(self) -> bool:
        return all(v.accept for v in self.verdicts)

    @property
    def cheaters(self) -> list[int]:
        return sorted({v.rank for v in self.verdicts if not v.accept})


def segments(spec: TrainSpec) -> list[tuple[int, int]]:
    """Every (participant, segment) of the group's proof."""
    return [(rank, segment) for rank in range(spec.world) for segment in range(spec.steps // spec.checkpoint_interval)]


def verify_group(spec: TrainSpec, parts_dir: str | Path, *, sample: int | None = None, seed: int = 0,
                 threshold: float = MIN_THRESHOLD,
                 on_segment: Callable[[ParticipantVerdict], None] | None = None) -> GroupVerdict:
    """Check the group root against every participant's published roots, then replay every
    participant segment (or ``sample`` of them, drawn from ``seed``). Parts that contradict their
    own commitments reject their publisher's segment, with the reason."""
    if not spec.commits:
        raise GroupError("the spec has no checkpoint_interval: its participants publish nothing to verify")
    parts_dir = Path(parts_dir)
    try:
        root = check_group(spec, parts_dir)
    except P.PartsError as exc:
        raise GroupError(f"the group's parts do not match their roots: {exc}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise GroupError(f"{parts_dir}: not a group's published parts ({exc})") from None
    chosen = segments(spec)
    if sample is not None and sample < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, sample))
    verdicts = []
    for rank, segment in chosen:
        try:
            verdict = replay_participant(spec, parts_dir, rank, segment, threshold=threshold)
        except P.PartsError as exc:
            verdict = ParticipantVerdict(exc.rank, segment, False, math.inf, False, threshold, 0, reason=str(exc))
        verdicts.append(verdict)
        if on_segment is not None:
            on_segment(verdict)
    return GroupVerdict(root, verdicts)
