"""A group's proof of its group task (docs/group-tasks.md §4.3): the parts its processes published
(§5) read as every participant's proof, the document that names them in the store, and one
participant's steps as the dispute game plays them.

The proof root the market holds is ``keccak256(abi.encode(checkpoints_root, mail_root))``
(`group.group_proof_root`); :class:`GroupProof` derives both from the parts, each file checked
against its publisher's commitments (`parts`), so a verifier that fetched the parts and a solver
that wrote them compute the same roots."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from eth_abi import encode

from offchain.distributed import parts as P
from offchain.distributed.group import GroupTask, group_checkpoints_root, group_proof_root
from offchain.distributed.spec import TrainSpec
from offchain.distributed.stage_program import mail_layout, published_messages, step_inputs, training_rows
from offchain.dispute.moves import reveal_participant_segment_args
from offchain.dispute.program_moves import ProgramStep
from offchain.ml.commit import keccak256, merkle_root, tensor_root
from offchain.ml.errors import MLError
from offchain.ml.program import ProgramExecutor, StepResult, execution_context
from offchain.ml.program_training import ProgramTraining

FORMAT = "dtm-group-proof/1"
#: the files a group publishes: rank<p>/ then a checkpoint, a segment's messages or its proof.json, and group.json
PART_FILE = re.compile(r"rank\d{1,4}/(checkpoint-\d{1,6}\.safetensors|messages-\d{1,6}\.safetensors|proof\.json)"
                       r"|group\.json")
MAX_PART_FILES = 4096


class GroupProofError(MLError):
    """A group proof document or published parts that cannot be used, in one line."""


@dataclass
class GroupProof:
    """The parts a group published under ``parts_dir``, read as its group task's proof."""

    group: GroupTask
    parts_dir: Path

    @functools.cached_property
    def participants(self) -> list[P.Participant]:
        return [P.load_participant(self.parts_dir, rank) for rank in range(self.group.spec.world)]

    @functools.cached_property
    def messages(self) -> list[torch.Tensor]:
        return published_messages(self.group.spec, self.parts_dir)

    @functools.cached_property
    def mail(self) -> list[bytes]:
        """The leaves of the group's mail root."""
        return [tensor_root(m) for m in self.messages]

    @property
    def checkpoint_roots(self) -> list[list[bytes]]:
        return [p.checkpoint_roots for p in self.participants]

    @functools.cached_property
    def roots(self) -> tuple[bytes, bytes]:
        """(checkpoints root, proof root)."""
        return group_proof_root(self.checkpoint_roots, self.mail)

    def state(self, rank: int, index: int) -> list[torch.Tensor]:
        """Participant ``rank``'s checkpoint ``index`` in its program's state order."""
        return list(P.load_checkpoint(self.parts_dir, self.participants[rank], index).values())

    def received(self, rank: int, step: int) -> list[torch.Tensor]:
        """What participant ``rank`` received in step ``step``, in the order its program reads it."""
        per_step, _, inboxes = mail_layout(self.group.spec)
        return [self.messages[step * per_step + position] for position in inboxes[rank]]

    def files(self) -> list[Path]:
        """Every file of the parts, relative to ``parts_dir``."""
        return sorted(p.relative_to(self.parts_dir) for p in self.parts_dir.rglob("*") if p.is_file())

    def document(self, cids: dict[str, str]) -> bytes:
        """The proof document: the CID of every part file and the two roots."""
        checkpoints_root, _ = self.roots
        return json.dumps({"format": FORMAT, "files": cids, "checkpoints_root": "0x" + checkpoints_root.hex(),
                           "mail_root": "0x" + merkle_root(self.mail).hex()}, indent=1, sort_keys=True).encode()


@dataclass(frozen=True)
class GroupProofDocument:
    """A group proof document whose roots give the proof root on chain."""

    files: dict[str, str]  # part file (relative path) → CID
    checkpoints_root: bytes  # over every participant's checkpoint roots, in rank order

    def cid(self, name: str) -> str:
        if name not in self.files:
            raise GroupProofError(f"the group proof document names no {name}")
        return self.files[name]


def read_document(data: bytes, proof_root: bytes) -> GroupProofDocument:
    """The part files a proof document names and its checkpoints root, once its roots give
    ``proof_root``; :class:`GroupProofError` naming what is wrong otherwise."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GroupProofError(f"the group proof document is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or set(doc) != {"format", "files", "checkpoints_root",
                                                                                "mail_root"}:
        raise GroupProofError(f"not a group proof document (format {FORMAT!r} with files and two roots)")
    roots = []
    for name in ("checkpoints_root", "mail_root"):
        value = doc[name]
        if not (isinstance(value, str) and re.fullmatch(r"0x[0-9a-f]{64}", value)):
            raise GroupProofError(f"the group proof document's {name} is not 0x and 64 hex digits")
        roots.append(bytes.fromhex(value[2:]))
    if keccak256(encode(["bytes32", "bytes32"], roots)) != proof_root:
        raise GroupProofError("the group proof document's roots do not give the proof root on chain")
    files = doc["files"]
    if not isinstance(files, dict) or not 0 < len(files) <= MAX_PART_FILES or not all(
            isinstance(k, str) and PART_FILE.fullmatch(k) and isinstance(v, str) for k, v in files.items()):
        raise GroupProofError("the group proof document's files must map part paths (rank<p>/…) to CIDs")
    return GroupProofDocument(files, roots[0])


def trained_model(spec: TrainSpec, document: GroupProofDocument, parts_dir: Path,
                  fetch: Callable[[str], None]) -> dict[str, torch.Tensor]:
    """The whole model a group trained, by the names of ``build_gpt(spec)``: each stage's
    parameters at its last checkpoint, from replica 0 (ranks ``0 … stages − 1``). ``fetch(name)``
    puts the document's part file ``name`` under ``parts_dir``; only every participant's
    ``proof.json`` and those checkpoints are fetched, each checked against the document's
    checkpoints root."""
    for rank in range(spec.world):
        fetch(f"rank{rank}/proof.json")
    participants = [P.load_participant(parts_dir, rank) for rank in range(spec.world)]
    if group_checkpoints_root([p.checkpoint_roots for p in participants]) != document.checkpoints_root:
        raise GroupProofError("the participants' checkpoint roots do not give the proof's checkpoints root")
    state = {}
    for participant in participants[: spec.stages]:
        last = len(participant.checkpoint_roots) - 1
        fetch(f"rank{participant.rank}/checkpoint-{last}.safetensors")
        checkpoint = P.load_checkpoint(parts_dir, participant, last)
        state.update({name.split("/", 1)[1]: value for name, value in checkpoint.items() if name.startswith("param/")})
    return state


class ParticipantSteps:
    """Participant ``rank``'s steps as the dispute game plays them: its task and program, its
    states from its published checkpoints, and the messages it received from the group's mail,
    run on the group's thread count, so a replay of the group's own run is bitwise."""

    def __init__(self, proof: GroupProof, rank: int) -> None:
        group = proof.group
        self.proof, self.rank, self.spec = proof, rank, group.spec
        self.task, self.program = group.participants[rank], group.programs[rank]
        self.training = ProgramTraining(self.program, self.task.optimizer, self.spec.steps, self.task.seed)
        self.rows = training_rows(self.spec)
        self.executor = ProgramExecutor(self.program)
        self.shapes = [node.shape for node in self.program.nodes if node.op == "recv"]

    @property
    def per(self) -> int:
        """Segments of one participant."""
        return self.task.steps // self.task.checkpoint_interval

    def segment(self, segment: int) -> int:
        """Its own segment that the group task's ``segment`` is (``GroupTask.segment``)."""
        rank, own = divmod(segment, self.per)
        if rank != self.rank:
            raise GroupProofError(f"the group's segment {segment} is participant {rank}'s, not {self.rank}'s")
        return own

    def reveal_args(self, dispute_id: int, segment: int, roots: list[bytes]) -> tuple:
        """`reveal_participant_segment` with ``roots``, its end the one the group committed to."""
        committed = self.proof.checkpoint_roots
        roots = roots[:-1] + [committed[self.rank][self.segment(segment) + 1]]
        return "reveal_participant_segment", reveal_participant_segment_args(
            dispute_id, segment, self.proof.group.commitments(), self.proof.group.participants, roots, committed,
            merkle_root(self.proof.mail))

    def run(self, state: Sequence[torch.Tensor], step: int, **kwargs) -> StepResult:
        x, y, hyper = step_inputs(self.spec, step, self.rank)
        with execution_context(self.spec.threads):
            received = [m.view(shape) for m, shape in zip(self.proof.received(self.rank, step), self.shapes)]
            return self.executor.run(list(state), x, y, hyper, messages=received, **kwargs)

    def state_at(self, step: int) -> list[torch.Tensor]:
        """Its state before ``step``: its last checkpoint, then the steps since."""
        k = self.task.checkpoint_interval
        state = self.proof.state(self.rank, step // k)
        for s in range(step - step % k, step):
            state = self.run(state, s).state
        return state

    def segment_roots(self, segment: int) -> list[bytes]:
        """The ``k + 1`` state roots of its segment ``segment``, from its checkpoint."""
        k = self.task.checkpoint_interval
        state = self.proof.state(self.rank, segment)
        roots = [merkle_root([tensor_root(t) for t in state])]
        for step in range(segment * k, (segment + 1) * k):
            state = self.run(state, step).state
            roots.append(merkle_root([tensor_root(t) for t in state]))
        return roots

    def trace(self, step: int, on_node: Callable[[int, torch.Tensor], None]) -> None:
        """Its step ``step``, every node output handed to ``on_node`` as it is computed."""
        self.run(self.state_at(step), step, on_node=on_node)

    def step_data(self, trace: Sequence[torch.Tensor], step: int, *, with_state: bool = False) -> ProgramStep:
        """What a proof over its step ``step`` needs: the committed ``trace``, and with
        ``with_state`` its state before the step, its hyper table, rows and the group's mail."""
        if not with_state:
            return ProgramStep(self.task, self.program, trace, step)
        return ProgramStep(self.task, self.program, trace, step, self.state_at(step), self.training.hyper,
                           self.rows.x, self.rows.y, self.proof.mail)
