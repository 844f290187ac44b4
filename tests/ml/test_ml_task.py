from __future__ import annotations

import json

import eth_abi
import pytest
from Crypto.Hash import keccak

from offchain.ml import TaskError, TrainingTask


def test_task_roundtrip_is_canonical(tiny):
    blob = tiny.task.to_bytes()
    assert TrainingTask.from_bytes(blob) == tiny.task
    obj = json.loads(blob)
    assert list(obj) == sorted(obj)
    assert b" " not in blob
    assert obj["seed"] == "0x" + (7).to_bytes(32, "big").hex()
    assert obj["numeric"] == {"dtype": "float32", "accumulation": "any-order"}
    spec_hash = keccak.new(digest_bits=256, data=blob).digest()
    # the chain holds the program's root bound to its hyper table
    graph = keccak.new(digest_bits=256, data=eth_abi.encode(["bytes32", "bytes32"], [tiny.task.graph_root,
                                                                                      tiny.task.hyper_root])).digest()
    fields = (spec_hash, graph, tiny.task.dataset_root, tiny.task.dataset_rows,
              tiny.task.weights_root, tiny.task.seed, tiny.task.batch_size, tiny.task.steps,
              tiny.task.checkpoint_interval)
    types = ["bytes32", "bytes32", "bytes32", "uint256", "bytes32", "uint256", "uint256", "uint256", "uint256"]
    assert tiny.task.hash() == keccak.new(digest_bits=256, data=eth_abi.encode(types, fields)).digest()


def test_non_canonical_bytes_rejected(tiny):
    pretty = json.dumps(json.loads(tiny.task.to_bytes()), indent=2).encode()
    with pytest.raises(TaskError, match="canonical"):
        TrainingTask.from_bytes(pretty)
    assert TrainingTask.from_bytes(pretty, require_canonical=False) == tiny.task


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("steps", 41, "multiple of checkpoint_interval"),
        ("checkpoint_interval", 0, "must be in"),
        ("batch_size", 0, "must be in"),
        ("seed", 7, "seed"),
        ("seed", "0x" + "f" * 65, "seed"),
        ("dataset_root", "0x1234", "dataset_root"),
        ("graph_root", "0X" + "0" * 64, "graph_root"),
        ("optimizer", {"name": "sgd", "lr": 0.1}, "optimizer: missing field"),
        ("optimizer", "sgd", "optimizer must be an object"),
        ("hyper_root", "0x12", "hyper_root"),
        ("numeric", {"dtype": "float16", "accumulation": "any-order"}, "numeric"),
        ("format", "dtm-task/0", "format"),
        ("model_cid", "", "model_cid"),
        ("weights_cid", "has space", "weights_cid"),
        ("payment", 1, "unknown field"),
    ],
)
def test_bad_task_fields(tiny, key, value, message):
    obj = json.loads(tiny.task.to_bytes())
    obj[key] = value
    with pytest.raises(TaskError, match=message):
        TrainingTask.from_bytes(json.dumps(obj).encode(), require_canonical=False)


@pytest.mark.parametrize("key", ["graph_root", "hyper_root", "optimizer"])
def test_missing_field(tiny, key):
    obj = json.loads(tiny.task.to_bytes())
    del obj[key]
    with pytest.raises(TaskError, match=f"missing field\\(s\\) \\['{key}'\\]"):
        TrainingTask.from_bytes(json.dumps(obj).encode(), require_canonical=False)
