"""safetensors (de)serialization of weights, checkpoints and datasets, with strict validation.

Artifacts come from untrusted parties, so the safetensors header is parsed and checked against the
state layout (names, dtypes, shapes, offsets, sizes) before any tensor is materialised.  Nothing is
ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np
import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from .commit import dataset_root
from .errors import ArtifactError
from .strict_json import parse_json_object

MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024
MAX_ROWS = 1 << 24
MAX_DATASET_DIM = 4096

_ST_ITEMSIZE = {"F32": 4, "I64": 8, "I32": 4}
_ST_DTYPE = {torch.int64: "I64", torch.float32: "F32", torch.int32: "I32"}  # in safetensors' dtype order, descending


def save_tensors(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """Deterministic safetensors bytes (no metadata; contiguous CPU copies)."""
    return _st_save({name: t.detach().cpu().contiguous() for name, t in tensors.items()})


def write_tensors(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor]) -> None:
    """Write the bytes of ``save_tensors(tensors)`` to ``path`` straight from each tensor's memory:
    no copy of the whole state is made (a checkpoint is written while the next segment trains).
    The layout is safetensors' own: tensors by dtype (its order), then name; the header compact
    UTF-8 JSON padded with spaces to 8 bytes."""
    for name, tensor in tensors.items():
        if tensor.dtype not in _ST_DTYPE:
            raise ArtifactError(f"tensor {name!r} has unsupported dtype {tensor.dtype}")
    rank = {dtype: i for i, dtype in enumerate(_ST_DTYPE)}
    order = sorted(tensors, key=lambda name: (rank[tensors[name].dtype], name))
    header, offset = {}, 0
    for name in order:
        tensor = tensors[name]
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _ST_DTYPE[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)
        for name in order:
            data = tensors[name].detach().cpu().contiguous().reshape(-1)
            if data.numel():
                out.write(memoryview(data.view(torch.uint8).numpy()))


def read_header(data: bytes, itemsizes: Mapping[str, int] = _ST_ITEMSIZE) -> dict[str, dict]:
    """Parse and sanity-check the safetensors header without touching tensor data; ``itemsizes``
    maps each allowed safetensors dtype to its element size."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArtifactError("artifact must be bytes")
    if len(data) > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"artifact is {len(data)} bytes, limit {MAX_ARTIFACT_BYTES}")
    if len(data) < 8:
        raise ArtifactError("artifact too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", bytes(data[:8]))
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise ArtifactError(f"safetensors header length {header_len} is invalid")
    header = parse_json_object(bytes(data[8 : 8 + header_len]), "safetensors header", MAX_HEADER_BYTES, ArtifactError)
    header.pop("__metadata__", None)
    body = len(data) - 8 - header_len
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ArtifactError(f"tensor {name!r}: malformed header entry")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in itemsizes:
            raise ArtifactError(f"tensor {name!r}: dtype {dtype!r} not allowed")
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise ArtifactError(f"tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ArtifactError(f"tensor {name!r}: bad data_offsets")
        numel = int(np.prod(shape, dtype=object)) if shape else 1
        start, stop = offsets
        if not 0 <= start <= stop <= body or stop - start != numel * itemsizes[dtype]:
            raise ArtifactError(f"tensor {name!r}: data_offsets inconsistent with shape/dtype")
        spans.append((start, stop))
    spans.sort()
    for (_, end_a), (start_b, _) in zip(spans, spans[1:]):
        if start_b < end_a:
            raise ArtifactError("tensor data regions overlap")
    return header


def load_tensors(data: bytes, expected: Mapping[str, tuple[tuple[str, ...], tuple[int, ...] | None]]) -> dict[str, torch.Tensor]:
    """Load exactly the ``expected`` tensors: name -> (allowed safetensors dtypes, shape or None)."""
    header = read_header(data)
    missing = sorted(set(expected) - set(header))
    unknown = sorted(set(header) - set(expected))
    if missing:
        raise ArtifactError(f"missing tensor(s) {missing}")
    if unknown:
        raise ArtifactError(f"unexpected tensor(s) {unknown}")
    for name, (dtypes, shape) in expected.items():
        info = header[name]
        if info["dtype"] not in dtypes:
            raise ArtifactError(f"tensor {name!r}: dtype {info['dtype']} not in {dtypes}")
        if shape is not None and tuple(info["shape"]) != tuple(shape):
            raise ArtifactError(f"tensor {name!r}: shape {tuple(info['shape'])} != expected {tuple(shape)}")
    try:
        loaded = _st_load(bytes(data))
    except Exception as exc:  # the library raises its own error types
        raise ArtifactError(f"safetensors could not parse the artifact: {exc}") from exc
    # clone(): own, 64-byte aligned memory, so BLAS takes the same code path as for fresh tensors.
    return {name: loaded[name].clone() for name in expected}


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or infinity in a float tensor: its least and greatest elements are finite (a NaN
    makes both NaN), one pass without a boolean mask."""
    if tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor.detach())
    return math.isfinite(low.item()) and math.isfinite(high.item())


class StateLayout(Protocol):
    """The tensors a checkpoint holds: a bound training program's state (`ProgramTraining`)."""

    param_names: tuple[str, ...]

    def param_shapes(self) -> dict[str, tuple[int, ...]]: ...


def _require_finite(name: str, tensor: torch.Tensor) -> None:
    if not all_finite(tensor):
        raise ArtifactError(f"tensor {name!r} contains NaN or infinity")


def weights_to_bytes(state: Mapping[str, torch.Tensor], spec: StateLayout) -> bytes:
    """Serialize a parameter state (initial weights or a checkpoint) after validating it."""
    validate_weights(state, spec)
    return save_tensors({name: state[name] for name in spec.param_names})


def write_weights(path: str | os.PathLike[str], state: Mapping[str, torch.Tensor], spec: StateLayout) -> None:
    """:func:`weights_to_bytes` written to ``path`` without copying the state (:func:`write_tensors`)."""
    validate_weights(state, spec)
    write_tensors(path, {name: state[name] for name in spec.param_names})


def weights_from_bytes(data: bytes, spec: StateLayout) -> dict[str, torch.Tensor]:
    """Parse weights/checkpoint bytes; exact names and shapes from the spec, float32, finite."""
    shapes = spec.param_shapes()
    state = load_tensors(data, {name: (("F32",), shape) for name, shape in shapes.items()})
    for name, tensor in state.items():
        _require_finite(name, tensor)
    return {name: state[name] for name in shapes}


def validate_weights(state: Mapping[str, torch.Tensor], spec: StateLayout) -> None:
    """Names, shapes, dtype float32 and finiteness must match the spec exactly."""
    shapes = spec.param_shapes()
    if set(state) != set(shapes):
        raise ArtifactError(f"weights have tensors {sorted(state)}, spec expects {sorted(shapes)}")
    for name, shape in shapes.items():
        tensor = state[name]
        if tensor.dtype != torch.float32:
            raise ArtifactError(f"tensor {name!r} must be float32, got {tensor.dtype}")
        if tuple(tensor.shape) != shape:
            raise ArtifactError(f"tensor {name!r} has shape {tuple(tensor.shape)}, expected {shape}")
        _require_finite(name, tensor)


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` (rows, dim) float32 and labels ``y`` (rows,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        validate_dataset(self.x, self.y)

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.x.shape[1])

    def root(self) -> bytes:
        """``dataset_root`` commitment (see commit.py)."""
        return dataset_root(self.x, self.y)

    def to_bytes(self) -> bytes:
        return save_tensors({"x": self.x, "y": self.y})

    @classmethod
    def from_bytes(cls, data: bytes, input_dim: int | None = None) -> Dataset:
        """Parse ``x``/``y``; labels may be stored as int32 or int64 and are widened to int64."""
        header = read_header(data)
        x_info = header.get("x")
        if x_info is not None and len(x_info["shape"]) == 2:
            rows, dim = x_info["shape"]
            if rows > MAX_ROWS or dim > MAX_DATASET_DIM:
                raise ArtifactError(f"dataset {rows}x{dim} exceeds limits {MAX_ROWS}x{MAX_DATASET_DIM}")
        tensors = load_tensors(data, {"x": (("F32",), None), "y": (("I64", "I32"), None)})
        dataset = cls(tensors["x"], tensors["y"].to(torch.int64))
        if input_dim is not None and dataset.input_dim != input_dim:
            raise ArtifactError(f"dataset rows have {dataset.input_dim} features, model expects {input_dim}")
        return dataset


def validate_dataset(x: torch.Tensor, y: torch.Tensor) -> None:
    """Shapes, dtypes, sizes, finiteness and non-negative labels."""
    if x.dtype != torch.float32 or x.dim() != 2:
        raise ArtifactError("dataset x must be a 2-D float32 tensor")
    if y.dtype != torch.int64 or y.dim() != 1:
        raise ArtifactError("dataset y must be a 1-D int64 tensor")
    if x.shape[0] != y.shape[0]:
        raise ArtifactError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    if not 1 <= x.shape[0] <= MAX_ROWS or not 1 <= x.shape[1] <= MAX_DATASET_DIM:
        raise ArtifactError("dataset is empty or exceeds the size limits")
    _require_finite("x", x)
    if int(y.min()) < 0:
        raise ArtifactError("labels must be non-negative")


def digits_dataset() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 rows, 64 features in [0, 1], 10 classes); no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy((digits.data / 16.0).astype(np.float32))
    y = torch.from_numpy(digits.target.astype(np.int64))
    return Dataset(x.contiguous(), y.contiguous())


def text_corpus() -> bytes:
    """Real English text that ships with CPython: the help topics of ``pydoc_data`` (~465 KB)."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics)).encode("utf-8")


#: the characters of :func:`text_dataset`'s small vocabulary (every other character is one more token)
ALPHABET = " etaoinsrhldcumfpgwybvkxjqz.,:()\n'-_=\"0123456789"


def text_dataset(seq_len: int, alphabet: str | None = None, max_rows: int | None = None) -> Dataset:
    """:func:`text_corpus` in rows of ``seq_len + 1`` tokens (labels unused; the first ``max_rows``
    if given): its bytes (vocab 256), or with ``alphabet`` its lower-cased characters, each the
    index of its character in the alphabet and len(alphabet) for any other (vocab len(alphabet) + 1)."""
    if alphabet is None:
        tokens = np.frombuffer(text_corpus(), np.uint8)
    else:
        index = {c: i for i, c in enumerate(alphabet)}
        tokens = np.array([index.get(c, len(alphabet)) for c in text_corpus().decode("utf-8").lower()], np.int64)
    rows = len(tokens) // (seq_len + 1)
    if max_rows is not None:
        rows = min(rows, max_rows)
    x = tokens[: rows * (seq_len + 1)].reshape(rows, seq_len + 1).astype(np.float32)
    return Dataset(torch.from_numpy(x).contiguous(), torch.zeros(rows, dtype=torch.int64))


def synthetic_dataset(n: int, dim: int, classes: int, seed: int) -> Dataset:
    """Learnable synthetic classification data: labels from a random linear teacher.

    Uses numpy's PCG64, whose stream is stable across versions, so the bytes are reproducible.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    x = rng.random((n, dim), dtype=np.float32)
    teacher = rng.standard_normal((dim, classes)).astype(np.float32)
    logits = (x - 0.5) @ teacher
    y = logits.argmax(axis=1).astype(np.int64)
    return Dataset(torch.from_numpy(x).contiguous(), torch.from_numpy(y).contiguous())
