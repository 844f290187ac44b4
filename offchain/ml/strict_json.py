"""Strict JSON for untrusted documents (tasks, programs, optimizers, proofs): one canonical
encoding, parsing with a size limit and no duplicate keys or NaN, and exact key and integer checks.
Untrusted descriptions are data, never code, and parsing one cannot allocate unbounded memory.
"""

from __future__ import annotations

import json
from typing import Any


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
