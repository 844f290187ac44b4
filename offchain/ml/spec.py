"""Declarative model spec (``dtm-model/1``), parsed strictly from JSON.

Untrusted model descriptions are data, never code: only whitelisted layers are accepted and every
size is capped so that parsing a hostile spec cannot allocate unbounded memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

MODEL_FORMAT = "dtm-model/1"
LAYER_TYPES = ("linear", "relu")
LOSSES = ("softmax_cross_entropy",)

MAX_SPEC_BYTES = 64 * 1024
MAX_LAYERS = 32
MAX_WIDTH = 4096
MAX_CLASSES = 256
MAX_PARAMS = 16 * 1024 * 1024


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8, no NaN/Infinity: one byte string per value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_json_object(data: bytes, what: str, max_bytes: int, error: type[Exception]) -> dict:
    """Decode a UTF-8 JSON object, rejecting oversize input, duplicate keys and NaN."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise error(f"{what} must be bytes")
    if len(data) > max_bytes:
        raise error(f"{what} is {len(data)} bytes, limit {max_bytes}")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        result: dict = {}
        for key, value in pairs:
            if key in result:
                raise error(f"{what} has duplicate key {key!r}")
            result[key] = value
        return result

    def no_constants(name: str) -> Any:
        raise error(f"{what} contains {name}, which is not JSON")

    try:
        value = json.loads(
            bytes(data).decode("utf-8"),
            object_pairs_hook=no_duplicates,
            parse_constant=no_constants,
        )
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise error(f"{what} must be a JSON object")
    return value


def check_keys(obj: dict, required: set[str], what: str, error: type[Exception]) -> None:
    """Exact key set: missing and unknown keys are both errors (no silent extensions)."""
    missing = sorted(required - obj.keys())
    unknown = sorted(obj.keys() - required)
    if missing:
        raise error(f"{what}: missing field(s) {missing}")
    if unknown:
        raise error(f"{what}: unknown field(s) {unknown}")


def strict_int(value: Any, what: str, low: int, high: int, error: type[Exception]) -> int:
    """An int (not a bool, not a float) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise error(f"{what} must be in [{low}, {high}], got {value}")
    return value


@dataclass(frozen=True)
class Layer:
    """One whitelisted layer; ``out`` is set for ``linear`` only."""

    type: str
    out: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type} if self.out is None else {"type": self.type, "out": self.out}


@dataclass(frozen=True)
class ModelSpec:
    """A validated MLP: linear/relu stack ending in a linear layer, softmax cross-entropy loss."""

    input_dim: int
    layers: tuple[Layer, ...]
    loss: str = "softmax_cross_entropy"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_classes(self) -> int:
        last = self.layers[-1]
        assert last.out is not None
        return last.out

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameters in canonical order: ``l{i}.weight`` (out, in) then ``l{i}.bias`` (out,)."""
        shapes: dict[str, tuple[int, ...]] = {}
        width = self.input_dim
        for index, layer in enumerate(self.layers):
            if layer.type == "linear":
                assert layer.out is not None
                shapes[f"l{index}.weight"] = (layer.out, width)
                shapes[f"l{index}.bias"] = (layer.out,)
                width = layer.out
        return shapes

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.param_shapes())

    @property
    def num_params(self) -> int:
        total = 0
        for shape in self.param_shapes().values():
            count = 1
            for size in shape:
                count *= size
            total += count
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "input_dim": self.input_dim,
            "layers": [layer.to_dict() for layer in self.layers],
            "loss": self.loss,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, obj: Any) -> ModelSpec:
        if not isinstance(obj, dict):
            raise SpecError("model spec must be a JSON object")
        check_keys(obj, {"format", "input_dim", "layers", "loss"}, "model spec", SpecError)
        if obj["format"] != MODEL_FORMAT:
            raise SpecError(f"model spec format must be {MODEL_FORMAT!r}, got {obj['format']!r}")
        input_dim = strict_int(obj["input_dim"], "input_dim", 1, MAX_WIDTH, SpecError)
        raw_layers = obj["layers"]
        if not isinstance(raw_layers, list) or not raw_layers:
            raise SpecError("layers must be a non-empty list")
        if len(raw_layers) > MAX_LAYERS:
            raise SpecError(f"at most {MAX_LAYERS} layers, got {len(raw_layers)}")
        layers = []
        for index, raw in enumerate(raw_layers):
            where = f"layers[{index}]"
            if not isinstance(raw, dict) or "type" not in raw:
                raise SpecError(f"{where} must be an object with a 'type'")
            kind = raw["type"]
            if kind not in LAYER_TYPES:
                raise SpecError(f"{where}: unknown layer type {kind!r}; allowed: {LAYER_TYPES}")
            if kind == "linear":
                check_keys(raw, {"type", "out"}, where, SpecError)
                layers.append(Layer("linear", strict_int(raw["out"], f"{where}.out", 1, MAX_WIDTH, SpecError)))
            else:
                check_keys(raw, {"type"}, where, SpecError)
                layers.append(Layer(kind))
        if obj["loss"] not in LOSSES:
            raise SpecError(f"unknown loss {obj['loss']!r}; allowed: {LOSSES}")
        return cls(input_dim, tuple(layers), obj["loss"])

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelSpec:
        return cls.from_dict(parse_json_object(data, "model spec", MAX_SPEC_BYTES, SpecError))


def _validate(spec: ModelSpec) -> None:
    """Structural rules shared by the constructor and the parser."""
    if isinstance(spec.input_dim, bool) or not isinstance(spec.input_dim, int):
        raise SpecError("input_dim must be an integer")
    if not 1 <= spec.input_dim <= MAX_WIDTH:
        raise SpecError(f"input_dim must be in [1, {MAX_WIDTH}]")
    if not spec.layers or len(spec.layers) > MAX_LAYERS:
        raise SpecError(f"need 1..{MAX_LAYERS} layers")
    if spec.loss not in LOSSES:
        raise SpecError(f"unknown loss {spec.loss!r}")
    previous = None
    for index, layer in enumerate(spec.layers):
        if layer.type not in LAYER_TYPES:
            raise SpecError(f"layers[{index}]: unknown layer type {layer.type!r}")
        if layer.type == "linear":
            if isinstance(layer.out, bool) or not isinstance(layer.out, int) or not 1 <= layer.out <= MAX_WIDTH:
                raise SpecError(f"layers[{index}].out must be an integer in [1, {MAX_WIDTH}]")
        else:
            if layer.out is not None:
                raise SpecError(f"layers[{index}]: {layer.type} takes no 'out'")
            if previous != "linear":
                raise SpecError(f"layers[{index}]: {layer.type} must directly follow a linear layer")
        previous = layer.type
    if spec.layers[-1].type != "linear":
        raise SpecError("the last layer must be linear (it produces the logits)")
    classes = spec.layers[-1].out
    assert classes is not None
    if not 2 <= classes <= MAX_CLASSES:
        raise SpecError(f"the last linear layer must have 2..{MAX_CLASSES} outputs (classes)")
    if spec.num_params > MAX_PARAMS:
        raise SpecError(f"model has {spec.num_params} parameters, limit {MAX_PARAMS}")


def mlp_spec(input_dim: int, hidden: tuple[int, ...], classes: int) -> ModelSpec:
    """Convenience: linear/relu stack with the given hidden widths."""
    layers: list[Layer] = []
    for width in hidden:
        layers += [Layer("linear", width), Layer("relu")]
    layers.append(Layer("linear", classes))
    return ModelSpec(input_dim, tuple(layers))
