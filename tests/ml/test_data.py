"""Bring-your-own data (offchain/ml/data.py): formats, validation, held-out split, token rows."""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from offchain.ml import DataError, MLError, dataset_root, load_dataset
from offchain.ml import data as data_module

ROWS, DIM = 40, 3
RNG = np.random.Generator(np.random.PCG64(5))
# eighths in [-8, 8): exact in float16/32/64, and printed exactly by repr()
X = (RNG.integers(-64, 64, (ROWS, DIM)) / 8).astype(np.float32)
Y = RNG.integers(0, 4, ROWS).astype(np.int64)
ROOT = dataset_root(torch.from_numpy(X), torch.from_numpy(Y))


def _csv(path, rows, header=None):
    lines = ([",".join(header)] if header else []) + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _load(path, **kwargs):
    return load_dataset(path, holdout=0, **kwargs)


# ── every format commits the same rows ──────────────────────────────
@pytest.mark.parametrize("x_dtype", ["float32", "float16", "float64", "int16"])
def test_safetensors__same_root_as_the_arrays(tmp_path, x_dtype):
    x = X * 8 if x_dtype == "int16" else X   # integers for the integer dtype
    save_file({"x": x.astype(x_dtype), "y": Y.astype(np.int32)}, tmp_path / "d.safetensors")
    loaded = _load(tmp_path / "d.safetensors")
    assert loaded.train.root() == dataset_root(torch.from_numpy(x), torch.from_numpy(Y))
    assert loaded.holdout is None and loaded.num_classes == int(Y.max()) + 1
    assert ("->" in loaded.description) == (x_dtype != "float32")


def test_npz_and_npy__same_root_as_the_arrays(tmp_path):
    np.savez_compressed(tmp_path / "d.npz", x=X.astype(np.float64), y=Y)
    np.save(tmp_path / "last.npy", np.column_stack([X, Y]))
    np.save(tmp_path / "first.npy", np.column_stack([Y, X]))
    assert _load(tmp_path / "d.npz").train.root() == ROOT
    assert _load(tmp_path / "last.npy").train.root() == ROOT
    assert _load(tmp_path / "first.npy", label_column="0").train.root() == ROOT


def test_csv__header_or_not__label_by_name_or_index(tmp_path):
    _csv(tmp_path / "plain.csv", [[*map(float, row), label] for row, label in zip(X, Y)])
    _csv(tmp_path / "named.csv", [[label, *map(float, row)] for row, label in zip(X, Y)], ["kind", "a", "b", "c"])
    assert _load(tmp_path / "plain.csv").train.root() == ROOT
    assert _load(tmp_path / "named.csv", label_column="kind").train.root() == ROOT
    assert _load(tmp_path / "named.csv", label_column=0).train.root() == ROOT
    assert "5 trailing" not in _load(tmp_path / "plain.csv").description  # a classification description
    with pytest.raises(DataError, match="no label column 'kind'"):   # no header: names mean nothing
        _load(tmp_path / "plain.csv", label_column="kind")


def test_csv__string_labels_map_to_sorted_class_ids(tmp_path):
    names = ["dog", "cat", "bird", "cat"]
    _csv(tmp_path / "pets.csv", [[i, 2 * i, name] for i, name in enumerate(names)], ["a", "b", "label"])
    loaded = _load(tmp_path / "pets.csv")
    assert loaded.class_names == ("bird", "cat", "dog")
    assert loaded.train.y.tolist() == [2, 1, 0, 1]
    assert loaded.train.x.tolist() == [[0, 0], [1, 2], [2, 4], [3, 6]]
    assert "bird=0, cat=1, dog=2" in loaded.description
    # without a header the first row is data, even though its label is not a number
    (tmp_path / "bare.csv").write_text("0,0,dog\n1,2,cat\n")
    assert _load(tmp_path / "bare.csv").train.n_rows == 2
    # integral floats are integer labels, not strings ("10.0" would sort before "2.0")
    (tmp_path / "floats.csv").write_text("0,2.0\n1,10.0\n2,0\n")
    floats = _load(tmp_path / "floats.csv")
    assert floats.train.y.tolist() == [2, 10, 0] and floats.class_names is None


# ── held-out split ──────────────────────────────────────────────────
# ── regression: float targets at the end of each row of x ───────────
#: features then two float targets, eighths (exact in every format)
TARGETS = (RNG.integers(-64, 64, (ROWS, 2)) / 8).astype(np.float32)
REGRESSION_ROOT = dataset_root(torch.from_numpy(np.column_stack([X, TARGETS[:, :1]])), torch.zeros(ROWS, dtype=torch.int64))


def test_regression__every_format_commits_the_features_then_the_target_with_y_zero(tmp_path):
    target = TARGETS[:, 0]
    _csv(tmp_path / "named.csv", [[t, *map(float, row)] for row, t in zip(X, target)], ["price", "a", "b", "c"])
    _csv(tmp_path / "plain.csv", [[*map(float, row), t] for row, t in zip(X, target)])
    np.save(tmp_path / "first.npy", np.column_stack([target, X]))
    np.savez(tmp_path / "d.npz", x=X, y=target.astype(np.float64))
    save_file({"x": X, "y": np.ascontiguousarray(target[:, None])}, tmp_path / "d.safetensors")
    for name, kwargs in (("named.csv", {"label_column": "price"}), ("plain.csv", {}), ("first.npy", {"label_column": 0}),
                         ("d.npz", {}), ("d.safetensors", {})):
        loaded = _load(tmp_path / name, targets=1, **kwargs)
        assert loaded.train.root() == REGRESSION_ROOT, name
        assert loaded.targets == 1 and loaded.train.input_dim == DIM + 1 and not loaded.train.y.any()
        assert loaded.description.endswith(f"{ROWS} training rows + 0 held-out, {DIM} features, 1 regression target")


def test_regression__several_targets_are_the_last_columns(tmp_path):
    both = np.column_stack([X, TARGETS])
    _csv(tmp_path / "two.csv", [list(map(float, row)) for row in both])
    np.savez(tmp_path / "two.npz", x=X, y=TARGETS)
    root = dataset_root(torch.from_numpy(both), torch.zeros(ROWS, dtype=torch.int64))
    for name in ("two.csv", "two.npz"):
        loaded = _load(tmp_path / name, targets=2)
        assert loaded.train.root() == root and "3 features, 2 regression targets" in loaded.description


REGRESSION_CASES = {
    "word target": ("d.csv", lambda p: p.write_text("1,2,0.5\n3,4,big\n"), {}, "data row 2 has a non-numeric target 'big'"),
    "NaN target": ("d.csv", lambda p: p.write_text("1,2,0.5\n3,4,nan\n"), {}, "data row 2 contains NaN or infinity"),
    "column and several targets": ("d.csv", lambda p: p.write_text("1,2,3\n4,5,6\n"), {"targets": 2, "label_column": "0"},
                                   "a label column names a single target"),
    "no feature left": ("d.csv", lambda p: p.write_text("1,2\n3,4\n"), {"targets": 2}, "leave no features beside 2"),
    "y of another width": ("d.npz", lambda p: np.savez(p, x=X, y=TARGETS), {"targets": 3},
                           f"y of (rows,) or (rows, 3), got ({ROWS}, 3) and ({ROWS}, 2)"),
    "no targets": ("d.csv", lambda p: p.write_text("1,2\n"), {"targets": 0}, "targets must be in [1,"),
    "token rows": ("d.txt", lambda p: p.write_text("some text"), {"seq_len": 3}, "token data has no label column or "
                   "regression targets"),
}


@pytest.mark.parametrize("case", REGRESSION_CASES)
def test_regression__one_line_errors(tmp_path, case):
    name, write, kwargs, message = REGRESSION_CASES[case]
    write(tmp_path / name)
    with pytest.raises(DataError) as raised:
        load_dataset(tmp_path / name, holdout=0, **{"targets": 1, **kwargs})
    assert str(raised.value).startswith(str(tmp_path / name)) and "\n" not in str(raised.value)
    assert message in str(raised.value)


def test_holdout__seeded_disjoint_and_complete(tmp_path):
    indexed = np.column_stack([np.arange(ROWS), X]).astype(np.float32)   # column 0 names the row
    np.savez(tmp_path / "d.npz", x=indexed, y=Y)

    def split(seed):
        loaded = load_dataset(tmp_path / "d.npz", holdout=0.25, seed=seed)
        return loaded.train.x[:, 0].int().tolist(), loaded.holdout.x[:, 0].int().tolist(), loaded

    train, held, loaded = split(3)
    assert len(held) == ROWS // 4 and sorted(train + held) == list(range(ROWS))
    assert train == sorted(train) and held == sorted(held)           # file order kept
    assert loaded.holdout.y.tolist() == Y[held].tolist()
    assert split(3)[:2] == (train, held) and split(4)[1] != held
    assert loaded.train.root() == dataset_root(torch.from_numpy(indexed[train]), torch.from_numpy(Y[train]))
    assert "30 training rows + 10 held-out" in loaded.description


# ── token data ──────────────────────────────────────────────────────
def test_text__byte_tokens_cut_into_rows(tmp_path):
    (tmp_path / "t.txt").write_text("abcdefghij")
    loaded = load_dataset(tmp_path / "t.txt", seq_len=2, holdout=0)
    assert loaded.train.x.tolist() == [[97, 98, 99], [100, 101, 102], [103, 104, 105]]
    assert loaded.train.y.tolist() == [0, 0, 0]
    assert (loaded.vocab_size, loaded.seq_len, loaded.is_tokens) == (256, 2, True)
    assert "1 trailing tokens dropped" in loaded.description


def test_token_arrays__npy_and_safetensors(tmp_path):
    tokens = np.array([5, 0, 9, 3, 3, 1, 7], np.int32)
    np.save(tmp_path / "t.npy", tokens)
    save_file({"ids": tokens.astype(np.uint16)}, tmp_path / "t.safetensors")
    for name in ("t.npy", "t.safetensors"):
        loaded = load_dataset(tmp_path / name, seq_len=1, holdout=0)
        assert loaded.train.x.tolist() == [[5, 0], [9, 3], [3, 1]] and loaded.vocab_size == 10


# ── validation: one line, naming the file and the problem ───────────
def _st_raw(path, header: bytes, body: bytes = b""):
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)


def _npy_claiming(path, shape):
    """A tiny .npy file whose header claims an array of ``shape``."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_1_0(stream, {**header, "shape": shape})


def _npz_claiming(path, shape):
    """An .npz whose ``x`` claims ``shape`` (a few bytes on disk, terabytes if believed)."""
    np.savez(path, y=np.arange(2))
    _npy_claiming(path.with_suffix(".npy"), shape)
    with zipfile.ZipFile(path, "a") as archive:
        archive.write(path.with_suffix(".npy"), "x.npy")


CASES = {
    "unknown extension": ("d.xlsx", lambda p: p.write_text("1,2"), {}, "unknown extension '.xlsx'"),
    "unreadable": ("missing.csv", lambda p: None, {}, "cannot read"),
    "bool features": ("d.npz", lambda p: np.savez(p, x=np.ones((4, 2), bool), y=np.arange(4)), {},
                      "features must be numbers, got dtype bool"),
    "float labels": ("d.safetensors", lambda p: save_file({"x": X, "y": Y.astype(np.float32)}, p), {},
                     "labels must be integers, got dtype float32"),
    "non-integral label column": ("d.npy", lambda p: np.save(p, np.array([[1, 0.5], [2, 1.0]])), {},
                                  "labels must be integers"),
    "pickled objects": ("d.npy", lambda p: np.save(p, np.array([[1, {}]], object), allow_pickle=True), {},
                        "only numeric arrays"),
    "ragged csv": ("d.csv", lambda p: p.write_text("1,2,0\n3,4,1\n5,1\n"), {}, "line 3 has 2 fields, expected 3"),
    "non-numeric feature": ("d.csv", lambda p: p.write_text("1,2,0\n3,abc,1\n"), {}, "non-numeric feature 'abc'"),
    "nan": ("d.csv", lambda p: p.write_text("1,2,0\n3,nan,1\n"), {}, "data row 2 contains NaN or infinity"),
    "inf": ("d.npy", lambda p: np.save(p, np.array([[np.inf, 0], [1, 1]])), {}, "data row 1 contains NaN or infinity"),
    "float32 overflow": ("d.npz", lambda p: np.savez(p, x=np.array([[1e39], [0]]), y=np.arange(2)), {},
                         "beyond the float32 range"),
    "inexact integers": ("d.npz", lambda p: np.savez(p, x=np.array([[2**24 + 1], [0]]), y=np.arange(2)), {},
                         "not exact in float32"),
    "empty csv": ("d.csv", lambda p: p.write_text("\n\n"), {}, "no data rows"),
    "empty arrays": ("d.npz", lambda p: np.savez(p, x=np.zeros((0, 3)), y=np.zeros(0, int)), {}, "no data rows"),
    "one class": ("d.csv", lambda p: p.write_text("1,cat\n2,cat\n"), {}, "fewer than 2 classes (every label is cat)"),
    "negative label": ("d.csv", lambda p: p.write_text("1,2,0\n3,4,-1\n"), {}, "negative label -1"),
    "label >= 2^63 (csv)": ("d.csv", lambda p: p.write_text(f"1,0\n2,{2**63}\n"), {}, "does not fit in int64"),
    "label >= 2^63 (uint64)": ("d.safetensors",
                               lambda p: save_file({"x": X[:2], "y": np.array([0, 2**63], np.uint64)}, p), {},
                               "does not fit in int64"),
    "too many classes": ("d.csv", lambda p: p.write_text("1,0\n2,256\n"), {}, "at most 256 classes"),
    "too many features": ("d.npy", lambda p: np.save(p, np.zeros((2, 4098), np.float32)), {}, "exceeds the limits"),
    "length mismatch": ("d.npz", lambda p: np.savez(p, x=X, y=Y[:-1]), {}, f"x has {ROWS} rows but y has {ROWS - 1}"),
    "extra tensor": ("d.safetensors", lambda p: save_file({"x": X, "y": Y, "z": Y}, p), {},
                     "expected tensors x and y, found ['x', 'y', 'z']"),
    "neither x nor y": ("d.safetensors", lambda p: save_file({"a": X, "b": Y}, p), {},
                        "expected tensors x and y, found ['a', 'b']"),
    "bad safetensors header": ("d.safetensors", lambda p: _st_raw(p, b"{", b""), {}, "header"),
    "hostile npy shape": ("d.npy", lambda p: _npy_claiming(p, (1 << 40, 4)), {}, "limit"),
    "hostile npz shape": ("d.npz", lambda p: _npz_claiming(p, (1 << 40,)), {}, "array 'x' is 4398046511104 bytes, limit"),
    "label column name": ("d.csv", lambda p: p.write_text("a,b\n1,0\n2,1\n"), {"label_column": "c"},
                          "no label column 'c' (columns: a, b)"),
    "text without seq_len": ("d.txt", lambda p: p.write_text("hello"), {}, "--seq-len"),
    "not utf-8": ("d.txt", lambda p: p.write_bytes(b"ok\xff"), {"seq_len": 1}, "not UTF-8"),
    "token id >= 2^24": ("d.npy", lambda p: np.save(p, np.array([1, 1 << 24])), {"seq_len": 1}, "above 2^24"),
    "negative token": ("d.npy", lambda p: np.save(p, np.array([1, -2])), {"seq_len": 1}, "negative token id -2"),
    "csv tokens": ("d.csv", lambda p: p.write_text("1,2\n"), {"seq_len": 1}, "token data must be"),
    "too few tokens": ("d.txt", lambda p: p.write_text("ab"), {"seq_len": 4}, "2 tokens, fewer than one row"),
    "holdout too large": ("d.csv", lambda p: p.write_text("1,0\n2,1\n"), {"holdout": 0.9}, "too few to hold"),
}


@pytest.mark.parametrize("case", CASES)
def test_validation__one_line_error_names_file_and_problem(tmp_path, case):
    name, write, kwargs, message = CASES[case]
    path = tmp_path / name
    write(path)
    with pytest.raises(DataError) as raised:
        load_dataset(path, **{"holdout": 0, **kwargs})
    text = str(raised.value)
    assert text.startswith(str(path)) and "\n" not in text
    assert message in text
    assert isinstance(raised.value, MLError) and isinstance(raised.value, ValueError)


def test_limits__rows_and_file_size(tmp_path, monkeypatch):
    _csv(tmp_path / "d.csv", [[1, 0], [2, 1], [3, 0]])
    monkeypatch.setattr(data_module, "MAX_ROWS", 2)
    with pytest.raises(DataError, match="3 rows x 1 features exceeds the limits 2 x"):
        _load(tmp_path / "d.csv")
    monkeypatch.setattr(data_module, "MAX_DATA_BYTES", 8)
    with pytest.raises(DataError, match="file is 12 bytes, limit 8"):
        _load(tmp_path / "d.csv")


def test_limit_is_what_workers_fetch():
    from offchain.storage import MAX_ARTIFACT_BYTES

    assert data_module.MAX_DATA_BYTES == MAX_ARTIFACT_BYTES
