"""Bring your own data: a user's file becomes a validated training set plus a held-out split.

The committed format does not change (``x`` float32 ``(rows, D)``, ``y`` int64, see commit.py);
this module only turns files into it. Formats, chosen by extension:

* ``.safetensors``: tensors ``x`` (2-D) and ``y`` (1-D integers), nothing else.
* ``.npz``: arrays ``x`` and ``y``, nothing else; read without ``np.load`` (never unpickles).
* ``.npy``: one 2-D numeric array; the label column is ``label_column`` (default: the last).
* ``.csv``: UTF-8, numeric features and a label column (header name or index; default: the last).
  A header is detected when a first-row cell is not a number but the cell below it is. Labels are
  integers (also written ``3.0``), or strings mapped to class ids in sorted order (the mapping is
  in the description).
* Regression (``targets`` = K given): the label column (``label_column``, default the last) is a
  float target, or with K > 1 the last K columns (``.npz``/``.safetensors``: ``y`` of shape
  ``(rows,)`` or ``(rows, K)``). The targets are validated like features and committed as the last
  K columns of ``x`` (``y = 0``), where a regression program's loss reads them.
* Token data (``seq_len`` given): a 1-D integer ``.npy``/``.safetensors`` array, or a UTF-8
  ``.txt`` file read as bytes (vocabulary 256). It is cut into non-overlapping rows of
  ``seq_len + 1`` consecutive tokens stored as ``x`` (ids as float32, exact below 2^24) with
  ``y = 0``; ``vocab_size`` and ``seq_len`` are kept for a sequence model's export.

Feature conversions to float32: float16 exactly; float64 rounded to nearest (refused if a value
overflows float32); integers only when exact (|v| <= 2^24). Labels: integer dtypes only (an
integral float label column is accepted in ``.npy`` files, whose array has one dtype).

Files come from users, not attackers, but are still bounded: the file size is checked before it
is read, and array headers (shape, dtype) before their data, so nothing allocates more than
``MAX_DATA_BYTES`` per array. Every error is a one-line :class:`DataError` naming the file.
"""

from __future__ import annotations

import csv
import math
import struct
import zipfile
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch

from .artifacts import MAX_DATASET_DIM, MAX_ROWS, ArtifactError, Dataset, read_header
from .errors import DataError

#: Largest file, decoded array and committed dataset (what workers fetch: workers/artifacts.py).
MAX_DATA_BYTES = 256 * 1024 * 1024
#: float32 represents every integer of magnitude <= 2^24 exactly.
EXACT_FLOAT32_INT = 1 << 24
TEXT_VOCAB = 256
#: classes a classifier's labels may name
MAX_CLASSES = 256

_ST_NUMPY = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4",
             "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8"}
_ST_ITEMSIZES = {name: np.dtype(dtype).itemsize for name, dtype in _ST_NUMPY.items()}
_FORMATS = (".safetensors", ".npz", ".npy", ".csv", ".txt")
_TOKEN_FORMATS = (".safetensors", ".npy", ".txt")


@dataclass(frozen=True)
class LoadedData:
    """Training rows to commit, the rows held back from solvers, and what they are."""

    train: Dataset
    holdout: Dataset | None
    num_classes: int  # max label + 1 over all rows; for token data the vocabulary size
    description: str
    class_names: tuple[str, ...] | None = None  # class id -> original label, for string labels
    vocab_size: int | None = None
    seq_len: int | None = None
    targets: int | None = None  # regression: target values at the end of each row of x

    @property
    def is_tokens(self) -> bool:
        return self.seq_len is not None


def load_dataset(path: str | Path, *, label_column: str | int | None = None, seq_len: int | None = None,
                 targets: int | None = None, holdout: float = 0.1, seed: int = 0) -> LoadedData:
    """Read, validate and split ``path`` (see the module docstring); raises :class:`DataError`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(f"{path}: unknown extension {path.suffix!r} (use one of {', '.join(_FORMATS)})")
    if not 0 <= holdout < 1:
        raise DataError(f"{path}: held-out fraction must be in [0, 1), got {holdout}")
    if seq_len is not None:
        if label_column is not None or targets is not None:
            raise DataError(f"{path}: token data has no label column or regression targets")
        return _token_data(path, suffix, seq_len, holdout, seed)
    if suffix == ".txt":
        raise DataError(f"{path}: text is token data: give a sequence length (--seq-len)")
    if label_column is not None and suffix not in (".npy", ".csv"):
        raise DataError(f"{path}: a label column applies to .csv and .npy files only")
    if targets is not None:
        return _regression(path, suffix, label_column, targets, holdout, seed)
    if suffix == ".csv":
        x, labels = _read_csv(path, label_column)
        y, names = _csv_labels(path, labels)
    else:
        arrays = _read_safetensors(path) if suffix == ".safetensors" else _read_arrays(path, suffix)
        x, y, names = *_split_columns(path, arrays, label_column), None
    notes = [f"features {x.dtype} -> float32"] if suffix != ".csv" and x.dtype != np.float32 else []
    return _classification(path, _features(path, x), y, names, notes, holdout, seed)


# ── assembling the result ───────────────────────────────────────────
def _classification(path: Path, x: np.ndarray, y: np.ndarray, names: tuple[str, ...] | None, notes: list[str],
                    holdout: float, seed: int) -> LoadedData:
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} rows but y has {len(y)}")
    _check_size(path, *x.shape)
    classes = int(y.max()) + 1
    if classes > MAX_CLASSES:
        raise DataError(f"{path}: label {classes - 1} too large: at most {MAX_CLASSES} classes")
    if len(np.unique(y)) < 2:
        raise DataError(f"{path}: fewer than 2 classes (every label is {names[0] if names else int(y[0])})")
    if names:
        shown = ", ".join(f"{name}={i}" for i, name in enumerate(names[:8])) + (", ..." if len(names) > 8 else "")
        notes.append(f"labels {shown}")
    train, held = _split(path, x, y, holdout, seed)
    text = f"{x.shape[1]} features, {classes} classes" + "".join(f"; {note}" for note in notes)
    return LoadedData(train, held, classes, _describe(path, train, held, text), names)


def _regression(path: Path, suffix: str, label_column: str | int | None, targets: int, holdout: float,
                seed: int) -> LoadedData:
    """Features then ``targets`` float target columns, as one float32 ``x``; ``y`` is zero."""
    if not 1 <= targets < MAX_DATASET_DIM:
        raise DataError(f"{path}: the number of regression targets must be in [1, {MAX_DATASET_DIM - 1}], got {targets}")
    if targets > 1 and label_column is not None:
        raise DataError(f"{path}: with {targets} targets the targets are the last {targets} columns; a label "
                        "column names a single target")
    if suffix == ".csv":
        x, labels = _read_csv(path, label_column)
        try:
            last = np.array([float(label) for label in labels], np.float64).reshape(-1, 1)
        except ValueError:
            row = next(i for i, label in enumerate(labels) if not _is_number(label))
            raise DataError(f"{path}: data row {row + 1} has a non-numeric target {labels[row]!r}") from None
        table, column = np.concatenate([x, last], 1), None  # the target already last
    else:
        arrays = _read_safetensors(path) if suffix == ".safetensors" else _read_arrays(path, suffix)
        if set(arrays) == {"x", "y"}:
            x, y = arrays["x"], arrays["y"]
            if x.ndim != 2 or y.shape not in ((len(x),), (len(x), targets)):
                raise DataError(f"{path}: expected x of (rows, features) and y of (rows,) or (rows, {targets}), "
                                f"got {x.shape} and {y.shape}")
            table, column = np.concatenate([x, y.reshape(len(y), -1)], 1), None
        elif set(arrays) == {"x"} and arrays["x"].ndim == 2:
            table = arrays["x"]
            column = _column(path, label_column, table.shape[1], None)
        else:
            raise DataError(f"{path}: expected tensors x and y, or one 2-D table of features and targets")
    if column is not None and targets == 1:
        table = np.concatenate([np.delete(table, column, axis=1), table[:, [column]]], 1)
    if table.ndim != 2 or table.shape[1] <= targets:
        raise DataError(f"{path}: {table.shape[1] if table.ndim == 2 else 0} columns leave no features beside "
                        f"{targets} targets")
    x = _features(path, table)
    train, held = _split(path, x, np.zeros(len(x), np.int64), holdout, seed)
    text = f"{x.shape[1] - targets} features, {targets} regression target{'s' if targets > 1 else ''}"
    return LoadedData(train, held, 0, _describe(path, train, held, text), targets=targets)


def _token_data(path: Path, suffix: str, seq_len: int, holdout: float, seed: int) -> LoadedData:
    if suffix not in _TOKEN_FORMATS:
        raise DataError(f"{path}: token data must be a .txt, .npy or .safetensors file")
    width = seq_len + 1
    if not 1 <= seq_len < MAX_DATASET_DIM:
        raise DataError(f"{path}: sequence length must be in [1, {MAX_DATASET_DIM - 1}], got {seq_len}")
    if suffix == ".txt":
        raw = _read_bytes(path)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        tokens, vocab, kind = np.frombuffer(raw, np.uint8), TEXT_VOCAB, "bytes"
    else:
        if suffix == ".safetensors":
            arrays = _read_safetensors(path)
        else:
            arrays = {"tokens": _read_arrays(path, suffix)["x"]}
        if len(arrays) != 1:
            raise DataError(f"{path}: token data must hold exactly one tensor, found {sorted(arrays)}")
        [tokens] = arrays.values()
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
            raise DataError(f"{path}: token data must be a 1-D integer array, got {tokens.dtype} {tokens.shape}")
        if tokens.size == 0:
            raise DataError(f"{path}: no tokens")
        if tokens.min() < 0:
            raise DataError(f"{path}: negative token id {int(tokens.min())}")
        if tokens.max() >= EXACT_FLOAT32_INT:
            raise DataError(f"{path}: token id {int(tokens.max())} too large: vocabularies above 2^24 "
                            "are not exact in float32")
        vocab, kind = int(tokens.max()) + 1, "ids"
    rows = len(tokens) // width
    if rows == 0:
        raise DataError(f"{path}: {len(tokens)} tokens, fewer than one row of seq_len + 1 = {width}")
    _check_size(path, rows, width)
    x = np.ascontiguousarray(tokens[: rows * width].reshape(rows, width), dtype=np.float32)
    train, held = _split(path, x, np.zeros(rows, np.int64), holdout, seed)
    dropped = len(tokens) - rows * width
    text = (f"{len(tokens)} tokens ({kind}), vocab {vocab}, seq_len {seq_len} (rows of {width} tokens)"
            + (f"; {dropped} trailing tokens dropped" if dropped else ""))
    return LoadedData(train, held, vocab, _describe(path, train, held, text), vocab_size=vocab, seq_len=seq_len)


def _describe(path: Path, train: Dataset, held: Dataset | None, text: str) -> str:
    return f"{path.name}: {train.n_rows} training rows + {held.n_rows if held else 0} held-out, {text}"


def _split(path: Path, x: np.ndarray, y: np.ndarray, holdout: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """A seeded (numpy PCG64) choice of ``round(rows * holdout)`` rows, at least one when asked
    for; both parts keep the file's row order."""
    rows = len(y)
    held = max(1, round(rows * holdout)) if holdout > 0 else 0
    if held >= rows:
        raise DataError(f"{path}: {rows} rows: too few to hold {held} out and train on the rest")
    order = np.random.Generator(np.random.PCG64(seed)).permutation(rows)
    parts = [np.sort(order[held:]), np.sort(order[:held])]
    train, kept = (Dataset(torch.from_numpy(x[i]), torch.from_numpy(y[i])) if len(i) else None for i in parts)
    return train, kept


def _check_size(path: Path, rows: int, dim: int) -> None:
    """Row/feature limits of the committed format, checked before anything that size is built."""
    if rows == 0:
        raise DataError(f"{path}: no data rows")
    if dim == 0:
        raise DataError(f"{path}: no feature columns")
    if rows > MAX_ROWS or dim > MAX_DATASET_DIM:
        raise DataError(f"{path}: {rows} rows x {dim} features exceeds the limits {MAX_ROWS} x {MAX_DATASET_DIM}")
    if rows * (4 * dim + 8) > MAX_DATA_BYTES:
        raise DataError(f"{path}: the dataset would be {rows * (4 * dim + 8)} bytes, limit {MAX_DATA_BYTES}")


# ── features and labels ─────────────────────────────────────────────
def _features(path: Path, x: np.ndarray) -> np.ndarray:
    """x as float32 under the module's conversion rules."""
    if x.ndim != 2:
        raise DataError(f"{path}: x must be 2-D (rows, features), got shape {x.shape}")
    _check_size(path, *x.shape)
    kind = x.dtype.kind
    if kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            raise DataError(f"{path}: data row {int(np.argwhere(bad)[0][0]) + 1} contains NaN or infinity")
        with np.errstate(over="ignore"):
            out = x.astype(np.float32)
        if not np.isfinite(out).all():
            raise DataError(f"{path}: feature values beyond the float32 range")
    elif kind in "iu":
        if x.size and (x.max() > EXACT_FLOAT32_INT or x.min() < -EXACT_FLOAT32_INT):
            raise DataError(f"{path}: integer features beyond +-2^24 are not exact in float32")
        out = x.astype(np.float32)
    else:
        raise DataError(f"{path}: features must be numbers, got dtype {x.dtype}")
    return np.ascontiguousarray(out)


def _labels(path: Path, y: np.ndarray, *, integral_floats: bool = False) -> np.ndarray:
    """y as int64: integer dtypes (or integral floats where allowed), in [0, 2^63)."""
    if y.ndim != 1:
        raise DataError(f"{path}: y must be 1-D, got shape {y.shape}")
    kind = y.dtype.kind
    if kind == "f" and integral_floats:
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise DataError(f"{path}: labels must be integers")
    elif kind not in "iu":
        raise DataError(f"{path}: labels must be integers, got dtype {y.dtype}")
    if y.size:
        _label_range(path, y.min(), y.max())
    return y.astype(np.int64)


def _label_range(path: Path, low: float, high: float) -> None:
    if high >= 2**63:
        raise DataError(f"{path}: label {int(high)} does not fit in int64 (>= 2^63)")
    if low < 0:
        raise DataError(f"{path}: negative label {int(low)}")


# ── readers ─────────────────────────────────────────────────────────
def _file_size(path: Path) -> int:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if size > MAX_DATA_BYTES:
        raise DataError(f"{path}: file is {size} bytes, limit {MAX_DATA_BYTES}")
    return size


def _read_bytes(path: Path) -> bytes:
    _file_size(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, after ``read_header`` checked names, dtypes and offsets."""
    data = _read_bytes(path)
    try:
        header = read_header(data, _ST_ITEMSIZES)
    except ArtifactError as exc:
        raise DataError(f"{path}: {exc}") from None
    body = 8 + struct.unpack("<Q", data[:8])[0]
    return {name: np.frombuffer(data, _ST_NUMPY[info["dtype"]], count=math.prod(info["shape"]),
                                offset=body + info["data_offsets"][0]).reshape(info["shape"])
            for name, info in header.items()}


def _read_arrays(path: Path, suffix: str) -> dict[str, np.ndarray]:
    """``{"x": array}`` of a .npy file, or the ``x``/``y`` arrays of a .npz archive."""
    _file_size(path)
    try:
        if suffix == ".npy":
            with path.open("rb") as stream:
                return {"x": _read_npy(path, stream, "array")}
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            if set(members) != {"x", "y"}:
                raise DataError(f"{path}: an .npz file must hold exactly arrays x and y, found {sorted(members)}")
            arrays = {}
            for key, name in members.items():
                with archive.open(name) as stream:
                    arrays[key] = _read_npy(path, stream, f"array {key!r}")
            return arrays
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _read_npy(path: Path, stream: IO[bytes], what: str) -> np.ndarray:
    """One .npy stream: the header (shape, dtype) is checked before the data is read, and an
    array of Python objects is refused rather than unpickled."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        read_header_fn = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header_fn is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read_header_fn(stream)
    except ValueError as exc:
        raise DataError(f"{path}: {what} is not a valid .npy array ({exc})") from None
    if dtype.hasobject or dtype.fields or dtype.kind not in "biuf":
        raise DataError(f"{path}: {what} has dtype {dtype}; only numeric arrays are read")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_DATA_BYTES:
        raise DataError(f"{path}: {what} is {size} bytes, limit {MAX_DATA_BYTES}")
    data = stream.read(size)
    if len(data) != size:
        raise DataError(f"{path}: {what} is truncated")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


def _split_columns(path: Path, arrays: dict[str, np.ndarray], label_column: str | int | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(x, labels) from {x, y} tensors, or from one 2-D .npy array and its label column."""
    if set(arrays) != {"x"} and set(arrays) != {"x", "y"}:
        raise DataError(f"{path}: expected tensors x and y, found {sorted(arrays)}")
    if "y" not in arrays:
        table = arrays["x"]
        if table.ndim != 2:
            raise DataError(f"{path}: a .npy file must be a 2-D array (rows, features + label), got shape "
                            f"{table.shape}; 1-D token data needs --seq-len")
        column = _column(path, label_column, table.shape[1], None)
        features = np.delete(table, column, axis=1)
        return features, _labels(path, table[:, column], integral_floats=True)
    if set(arrays) != {"x", "y"}:
        raise DataError(f"{path}: expected tensors x and y, found {sorted(arrays)}")
    return arrays["x"], _labels(path, arrays["y"])


def _column(path: Path, label_column: str | int | None, width: int, header: list[str] | None) -> int:
    """Index of the label column: a header name, or an index (negative counts from the end)."""
    if label_column is None:
        return width - 1
    if header is not None and str(label_column) in header:
        return header.index(str(label_column))
    try:
        index = int(label_column)
    except ValueError:
        where = f"columns: {', '.join(header)}" if header else "the file has no header"
        raise DataError(f"{path}: no label column {label_column!r} ({where})") from None
    if not -width <= index < width:
        raise DataError(f"{path}: label column {index} out of range for {width} columns")
    return index % width


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, label_column: str | int | None) -> tuple[np.ndarray, list[str]]:
    """Stream the rows into a compact float buffer; labels are kept as text."""
    _file_size(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            rows = ((reader.line_num, row) for row in reader if row)
            first, second = next(rows, None), next(rows, None)
            if first is None:
                raise DataError(f"{path}: no data rows")
            header = None
            below = second[1] if second else []
            if any(not _is_number(a) and _is_number(b) for a, b in zip(first[1], below)):
                header, first = first[1], None
            width = len(header or first[1])
            column = _column(path, label_column, width, header)
            values, labels = array("d"), []
            for line, row in (r for part in ([first, second], rows) for r in part if r is not None):
                if len(row) != width:
                    raise DataError(f"{path}: line {line} has {len(row)} fields, expected {width}")
                label = row.pop(column)
                try:
                    values.extend(map(float, row))
                except ValueError:
                    bad = next(cell for cell in row if not _is_number(cell))
                    raise DataError(f"{path}: line {line}: non-numeric feature {bad!r}") from None
                labels.append(label.strip())
                if len(labels) > MAX_ROWS or len(values) * 4 > MAX_DATA_BYTES:
                    _check_size(path, len(labels), width - 1)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    return np.frombuffer(values, np.float64).reshape(len(labels), width - 1), labels


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)


def _csv_labels(path: Path, labels: list[str]) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Integer labels (``3`` or ``3.0``) as they are; otherwise class ids by the labels' sorted order."""
    if "" in labels:
        raise DataError(f"{path}: data row {labels.index('') + 1} has an empty label")
    try:
        ints = [_integer(label) for label in labels]
    except ValueError:
        names = tuple(sorted(set(labels)))
        ids = {name: i for i, name in enumerate(names)}
        return np.array([ids[label] for label in labels], np.int64), names
    if ints:
        _label_range(path, min(ints), max(ints))
    return np.array(ints, np.int64), None
