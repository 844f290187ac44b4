from __future__ import annotations

import io
import json
import pathlib
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.ml import (
    ArtifactError,
    Dataset,
    MLError,
    SpecError,
    digits_dataset,
    synthetic_dataset,
    weights_from_bytes,
    weights_to_bytes,
)
from offchain.ml.artifacts import all_finite, save_tensors, write_tensors, write_weights
from offchain.ml.exporter import mlp_preset
from offchain.ml.program_training import ProgramTraining
from offchain.ml.strict_json import parse_json_object


def _layout(input_dim: int, hidden: tuple[int, ...], classes: int, seed: int = 0):
    """The MLP preset's state layout (a bound program) and its initial weights at ``seed``."""
    program, optimizer, weights = mlp_preset(input_dim, hidden, classes, batch_size=4, lr=0.1, seed=seed)
    return ProgramTraining(program, optimizer, 1, 0), weights


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\xff\xfe", "UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"input_dim": 1, "input_dim": 2}', "duplicate key"),
        (b'{"input_dim": NaN}', "not JSON"),
        (b" " * (65 * 1024), "limit"),
    ],
)
def test_malformed_json_bytes(raw, message):
    def parse():
        value = parse_json_object(raw, "document", 64 * 1024, SpecError)
        if not isinstance(value, dict):
            raise SpecError("document must be a JSON object")
    with pytest.raises(SpecError, match=message) as info:
        parse()
    assert isinstance(info.value, ValueError) and isinstance(info.value, MLError)


def test_weights_roundtrip_and_init_is_deterministic():
    spec, weights = _layout(8, (4,), 3, seed=3)
    assert all(torch.equal(weights[n], _layout(8, (4,), 3, seed=3)[1][n]) for n in spec.param_names)
    assert not torch.equal(weights["layers.0.weight"], _layout(8, (4,), 3, seed=4)[1]["layers.0.weight"])
    blob = weights_to_bytes(weights, spec)
    assert blob == weights_to_bytes(weights, spec)
    back = weights_from_bytes(blob, spec)
    assert list(back) == list(spec.param_names)
    assert all(torch.equal(back[n], weights[n]) for n in spec.param_names)


def _save(tensors):
    from safetensors.torch import save

    return save(tensors)


def test_weights_validation_errors():
    spec, weights = _layout(8, (4,), 3)
    missing = {k: v for k, v in weights.items() if k != "layers.0.bias"}
    with pytest.raises(ArtifactError, match="missing tensor"):
        weights_from_bytes(_save(missing), spec)
    extra = dict(weights, hidden=torch.zeros(1))
    with pytest.raises(ArtifactError, match="unexpected tensor"):
        weights_from_bytes(_save(extra), spec)
    with pytest.raises(ArtifactError, match="shape"):
        weights_from_bytes(_save(dict(weights, **{"layers.0.bias": torch.zeros(5)})), spec)
    with pytest.raises(ArtifactError, match="dtype"):
        weights_from_bytes(_save(dict(weights, **{"layers.0.bias": torch.zeros(4, dtype=torch.float64)})), spec)
    nan = dict(weights, **{"layers.0.bias": torch.tensor([0.0, float("nan"), 0.0, 0.0])})
    with pytest.raises(ArtifactError, match="NaN"):
        weights_from_bytes(_save(nan), spec)
    with pytest.raises(ArtifactError, match="float32"):
        weights_to_bytes(dict(weights, **{"layers.0.bias": torch.zeros(4, dtype=torch.float64)}), spec)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [0, 4_097, 100_000 - 1])
def test_all_finite__finds_one_nan_or_infinity_anywhere(bad, where):
    tensor = torch.randn(100_000) * 1e30
    assert all_finite(tensor) and all_finite(tensor[::7]) and all_finite(torch.empty(0))
    tensor[where] = bad
    assert not all_finite(tensor)
    assert not all_finite(tensor.view(100, 1_000).t())  # not contiguous
    assert all_finite(torch.tensor([torch.finfo(torch.float32).max, -torch.finfo(torch.float32).max]))


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "too short"),
        (struct.pack("<Q", 10**9) + b"{}", "header length"),
        (struct.pack("<Q", 2) + b"[]", "JSON object"),
        (struct.pack("<Q", 5) + b"{bad}", "not valid JSON"),
    ],
)
def test_malformed_safetensors(blob, message):
    with pytest.raises(ArtifactError, match=message):
        weights_from_bytes(blob, _layout(8, (4,), 3)[0])


def test_bad_offsets_and_truncation():
    spec = _layout(2, (), 2)[0]
    good = _save({"layers.0.weight": torch.zeros(2, 2), "layers.0.bias": torch.zeros(2)})
    with pytest.raises(ArtifactError):
        weights_from_bytes(good[:-4], spec)
    header = {"layers.0.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "layers.0.bias": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
    raw = json.dumps(header).encode()
    with pytest.raises(ArtifactError, match="data_offsets|overlap"):
        weights_from_bytes(struct.pack("<Q", len(raw)) + raw + bytes(16), spec)


def test_pickle_is_rejected_and_never_used():
    spec, weights = _layout(8, (4,), 3)
    buffer = io.BytesIO()
    torch.save(weights, buffer)  # a pickle-based checkpoint, as an attacker might send
    with pytest.raises(ArtifactError):
        weights_from_bytes(buffer.getvalue(), spec)
    source = pathlib.Path(__file__).resolve().parents[2] / "offchain" / "ml"
    for path in source.glob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "torch.load(" not in text, path


def test_dataset_roundtrip_and_validation():
    data = synthetic_dataset(50, 6, 4, seed=1)
    assert torch.equal(data.x, synthetic_dataset(50, 6, 4, seed=1).x)
    back = Dataset.from_bytes(data.to_bytes(), input_dim=6)
    assert torch.equal(back.x, data.x) and torch.equal(back.y, data.y)
    as_int32 = _save({"x": data.x, "y": data.y.to(torch.int32)})
    widened = Dataset.from_bytes(as_int32)
    assert widened.y.dtype == torch.int64 and torch.equal(widened.y, data.y)
    assert widened.root() == data.root()
    with pytest.raises(ArtifactError, match="features"):
        Dataset.from_bytes(data.to_bytes(), input_dim=7)
    with pytest.raises(ArtifactError, match="rows"):
        Dataset.from_bytes(_save({"x": data.x, "y": data.y[:-1]}))
    with pytest.raises(ArtifactError, match="dtype"):
        Dataset.from_bytes(_save({"x": data.x.double(), "y": data.y}))
    with pytest.raises(ArtifactError, match="non-negative"):
        Dataset(data.x, data.y - 10)


def test_digits_dataset_is_bundled():
    digits = digits_dataset()
    assert digits.x.shape == (1797, 64) and digits.y.shape == (1797,)
    assert digits.x.dtype == torch.float32 and digits.y.dtype == torch.int64
    assert float(digits.x.min()) == 0.0 and float(digits.x.max()) == 1.0
    assert set(digits.y.tolist()) == set(range(10))


_DTYPES = (torch.float32, torch.int64, torch.int32)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6),
                       st.tuples(st.sampled_from(_DTYPES), st.lists(st.integers(0, 4), max_size=3), st.booleans()),
                       max_size=6))
def test_write_tensors__writes_the_bytes_safetensors_makes(tmp_path_factory, layout):
    """Names of any text (quotes, non-ASCII), each dtype, empty and scalar shapes, transposed
    views: the file written from tensor memory is byte for byte what safetensors serialises."""
    tensors = {}
    for name, (dtype, shape, transposed) in layout.items():
        t = (torch.randn(shape) * 100).to(dtype)
        tensors[name] = t.t() if transposed and t.dim() == 2 else t
    path = tmp_path_factory.mktemp("write") / "t.safetensors"
    write_tensors(path, tensors)
    assert path.read_bytes() == save_tensors(tensors)


def test_write_weights__refuses_what_weights_to_bytes_refuses(tmp_path):
    spec, weights = _layout(3, (2,), 2)
    write_weights(tmp_path / "w", weights, spec)
    assert (tmp_path / "w").read_bytes() == weights_to_bytes(weights, spec)
    weights[spec.param_names[0]][0, 0] = float("nan")
    with pytest.raises(ArtifactError, match="NaN or infinity"):
        write_weights(tmp_path / "w", weights, spec)
