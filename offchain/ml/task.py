"""Training task spec (``dtm-task/1``): canonical JSON whose keccak256 the chain and proofs reference.
The model a task names is a training program (``dtm-program/1``), bound to the optimizer and
schedule the spec carries, whose hyper table the spec commits (``hyper_root``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from eth_abi import encode

from .commit import keccak256
from .errors import SpecError, TaskError
from .optim import OptimizerConfig
from .strict_json import canonical_json, check_keys, parse_json_object, strict_int

TASK_FORMAT = "dtm-task/1"
NUMERIC_CONTRACT = {"dtype": "float32", "accumulation": "any-order"}
MAX_TASK_BYTES = 16 * 1024
MAX_STEPS = 10_000_000
MAX_BATCH = 4096
MAX_CID_CHARS = 256
_HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
_CID_CHARS = re.compile(r"^[\x21-\x7e]+$")


def hex32(value: bytes) -> str:
    """bytes32 as lowercase ``0x``-prefixed hex (the JSON form of every root)."""
    if len(value) != 32:
        raise TaskError("expected 32 bytes")
    return "0x" + value.hex()


def parse_hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX32.match(value):
        raise TaskError(f"{what} must be 0x followed by 64 lowercase hex digits")
    return bytes.fromhex(value[2:])


def _check_cid(value: Any, what: str) -> str:
    # CIDs are validated by the storage layer; here only a sane, bounded ASCII token is required.
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CID_CHARS or not _CID_CHARS.match(value):
        raise TaskError(f"{what} must be a non-empty printable ASCII string of at most {MAX_CID_CHARS} chars")
    return value


COMMITMENT_TYPES = ("bytes32", "bytes32", "bytes32", "uint256", "bytes32", "uint256", "uint256", "uint256", "uint256")


@dataclass(frozen=True)
class TrainingTask:
    """Everything a solver needs to train and a verifier needs to replay, by content address."""

    model_cid: str
    weights_cid: str
    dataset_cid: str
    weights_root: bytes
    dataset_root: bytes
    dataset_rows: int
    lr: float
    batch_size: int
    steps: int
    seed: int
    checkpoint_interval: int
    graph_root: bytes           # the program's root
    optimizer: OptimizerConfig  # the whole optimizer and schedule
    hyper_root: bytes           # root of the hyper table they imply

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, OptimizerConfig):
            raise TaskError("a task names its optimizer config")
        if not isinstance(self.hyper_root, bytes) or len(self.hyper_root) != 32:
            raise TaskError("hyper_root must be 32 bytes")
        if self.optimizer.lr != self.lr:
            raise TaskError("lr must be the optimizer config's lr")
        _check_cid(self.model_cid, "model_cid")
        _check_cid(self.weights_cid, "weights_cid")
        _check_cid(self.dataset_cid, "dataset_cid")
        for name in ("weights_root", "dataset_root", "graph_root"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise TaskError(f"{name} must be 32 bytes")
        strict_int(self.dataset_rows, "dataset_rows", 1, 1 << 24, TaskError)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr):
            raise TaskError("optimizer.lr must be a finite number")
        if not 0 < self.lr <= 10:
            raise TaskError("optimizer.lr must be in (0, 10]")
        strict_int(self.batch_size, "batch_size", 1, MAX_BATCH, TaskError)
        strict_int(self.steps, "steps", 1, MAX_STEPS, TaskError)
        strict_int(self.seed, "seed", 0, (1 << 256) - 1, TaskError)
        strict_int(self.checkpoint_interval, "checkpoint_interval", 1, MAX_STEPS, TaskError)
        if self.steps % self.checkpoint_interval:
            raise TaskError("steps must be a multiple of checkpoint_interval")

    @property
    def num_checkpoints(self) -> int:
        """Checkpoints at steps 0, k, 2k, ..., steps."""
        return self.steps // self.checkpoint_interval + 1

    @property
    def num_segments(self) -> int:
        return self.steps // self.checkpoint_interval

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TASK_FORMAT,
            "model_cid": self.model_cid,
            "weights_cid": self.weights_cid,
            "dataset_cid": self.dataset_cid,
            "weights_root": hex32(self.weights_root),
            "dataset_root": hex32(self.dataset_root),
            "dataset_rows": self.dataset_rows,
            "optimizer": self.optimizer.to_dict(),
            "batch_size": self.batch_size,
            "steps": self.steps,
            "seed": "0x" + self.seed.to_bytes(32, "big").hex(),
            "checkpoint_interval": self.checkpoint_interval,
            "numeric": dict(NUMERIC_CONTRACT),
            "graph_root": hex32(self.graph_root),
            "hyper_root": hex32(self.hyper_root),
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @property
    def committed_graph_root(self) -> bytes:
        """The graph root the chain holds: ``keccak256(abi.encode(graph_root, hyper_root))``, the
        program's root and its hyper table."""
        return keccak256(encode(["bytes32", "bytes32"], [self.graph_root, self.hyper_root]))

    def commitments(self) -> tuple[bytes, bytes, bytes, int, bytes, int, int, int, int]:
        """What the chain needs of a task to judge a dispute, in `abi.encode` order:
        (spec bytes hash, graph root, dataset_root, dataset_rows, weights_root, seed,
        batch_size, steps, checkpoint_interval); the graph root is `committed_graph_root`."""
        return (keccak256(self.to_bytes()), self.committed_graph_root, self.dataset_root, self.dataset_rows,
                self.weights_root, self.seed, self.batch_size, self.steps, self.checkpoint_interval)

    def hash(self) -> bytes:
        """The task hash held on chain and named by proofs: keccak256 of the abi-encoded
        `commitments()`, so a contract can check any of them from calldata."""
        return keccak256(encode(COMMITMENT_TYPES, self.commitments()))

    @classmethod
    def from_dict(cls, obj: Any) -> TrainingTask:
        if not isinstance(obj, dict):
            raise TaskError("task spec must be a JSON object")
        check_keys(
            obj,
            {"format", "model_cid", "weights_cid", "dataset_cid", "weights_root", "dataset_root", "dataset_rows",
             "optimizer", "batch_size", "steps", "seed", "checkpoint_interval", "numeric", "graph_root", "hyper_root"},
            "task spec",
            TaskError,
        )
        if obj["format"] != TASK_FORMAT:
            raise TaskError(f"task format must be {TASK_FORMAT!r}")
        try:
            config = OptimizerConfig.from_dict(obj["optimizer"])
        except SpecError as exc:
            raise TaskError(str(exc)) from exc
        if obj["numeric"] != NUMERIC_CONTRACT:
            raise TaskError(f"numeric contract must be {NUMERIC_CONTRACT}")
        seed = obj["seed"]
        if not isinstance(seed, str) or not _HEX32.match(seed):
            raise TaskError("seed must be a uint256 as 0x + 64 lowercase hex digits")
        return cls(
            model_cid=obj["model_cid"],
            weights_cid=obj["weights_cid"],
            dataset_cid=obj["dataset_cid"],
            weights_root=parse_hex32(obj["weights_root"], "weights_root"),
            dataset_root=parse_hex32(obj["dataset_root"], "dataset_root"),
            dataset_rows=obj["dataset_rows"],
            lr=config.lr,
            batch_size=obj["batch_size"],
            steps=obj["steps"],
            seed=int(seed, 16),
            checkpoint_interval=obj["checkpoint_interval"],
            graph_root=parse_hex32(obj["graph_root"], "graph_root"),
            optimizer=config,
            hyper_root=parse_hex32(obj["hyper_root"], "hyper_root"),
        )

    @classmethod
    def from_bytes(cls, data: bytes, require_canonical: bool = True) -> TrainingTask:
        """Strict parse; by default the bytes must be exactly the canonical encoding."""
        task = cls.from_dict(parse_json_object(data, "task spec", MAX_TASK_BYTES, TaskError))
        if require_canonical and bytes(data) != task.to_bytes():
            raise TaskError("task spec is not in canonical form (sorted keys, compact, UTF-8)")
        return task
