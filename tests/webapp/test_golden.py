"""Golden vectors of the commitments the web app computes (CIDs, tensor, checkpoint and dataset
roots, the MLP preset's spec, initial weights and graph root, task spec bytes and spec hash), shared by the Python and the TypeScript implementations:
both must compute exactly `tests/golden/commitments.json` from the inputs it describes.

`python -m tests.webapp.test_golden` rewrites the file from the Python implementation (only when
a format changes on purpose)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from offchain.chain.suite import ROOT
from offchain.ml import mlp_spec
from offchain.ml.artifacts import init_weights, weights_to_bytes
from offchain.ml.commit import checkpoint_root, dataset_root, keccak256, tensor_root
from offchain.ml.graph import compile_training_graph
from offchain.ml.task import TrainingTask
from offchain.storage import compute_cid

GOLDEN = ROOT / "tests" / "golden" / "commitments.json"

# inputs, described by formulas both languages evaluate exactly
FILE_SIZES = [0, 1, 1000, 262_144, 262_145, 174 * 262_144 + 1]  # the last needs two levels of links
TENSOR_SIZES = [1, 10, 512, 513, 1500]
DATASETS = [(1, 5), (3, 5), (100, 7)]  # rows, dim
# the MLP preset: input_dim, hidden widths, classes, batch size, lr, weights seed
MODELS = [(4, (3,), 2, 8, 0.1, 0), (64, (32,), 10, 32, 0.1, 0), (16, (8, 8), 4, 5, 0.03, 7), (3, (), 2, 1, 1e-05, 2**40 + 3)]
LRS = [0.1, 1.0, 1e-05, 0.0003, 0.0001, 7.5e-07, 2.5, 10.0]  # repr: plain, ".0", exponent forms


def file_bytes(size: int) -> bytes:
    return ((np.arange(size, dtype=np.int64) * 7 + 3) % 251).astype(np.uint8).tobytes()


def tensor(size: int) -> torch.Tensor:
    return torch.from_numpy((np.arange(size) % 97 * 0.125 - 6).astype(np.float32))


def dataset(rows: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = ((np.arange(rows * dim) % 13) / 8 - 0.5).astype(np.float32).reshape(rows, dim)
    return torch.from_numpy(x), torch.from_numpy(np.arange(rows, dtype=np.int64) % 4)


def task(lr: float) -> TrainingTask:
    return TrainingTask(model_cid="QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
                        weights_cid="QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
                        dataset_cid="bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                        weights_root=keccak256(b"weights"), dataset_root=keccak256(b"dataset"), dataset_rows=1797,
                        lr=lr, batch_size=32, steps=300, seed=2**255 + 12345, checkpoint_interval=10,
                        graph_root=keccak256(b"graph"))


def model(input_dim: int, hidden: tuple[int, ...], classes: int, batch: int, lr: float, weights_seed: int) -> dict:
    spec = mlp_spec(input_dim, hidden, classes)
    weights = init_weights(spec, weights_seed)
    return {"spec": spec.to_bytes().decode(), "spec_cid": compute_cid(spec.to_bytes()),
            "weights_cid": compute_cid(weights_to_bytes(weights, spec)),
            "weights_root": hex32(checkpoint_root(weights, spec.param_names)),
            "graph_root": hex32(compile_training_graph(spec, batch, lr).root)}


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def vectors() -> dict:
    return {
        "cid": {str(size): compute_cid(file_bytes(size)) for size in FILE_SIZES},
        "tensor_root": {str(size): hex32(tensor_root(tensor(size))) for size in TENSOR_SIZES},
        "checkpoint_root": hex32(checkpoint_root({str(s): tensor(s) for s in TENSOR_SIZES}, [str(s) for s in TENSOR_SIZES])),
        "dataset_root": {f"{rows}x{dim}": hex32(dataset_root(*dataset(rows, dim))) for rows, dim in DATASETS},
        "model": [model(*m) for m in MODELS],
        "task": {repr(lr): {"bytes": task(lr).to_bytes().decode(), "spec_hash": hex32(task(lr).hash())} for lr in LRS},
    }


def test_python_computes_the_golden_vectors():
    assert vectors() == json.loads(GOLDEN.read_text())


def test_typescript_computes_the_golden_vectors():
    done = subprocess.run(["node", str(Path(__file__).parent / "golden.mjs")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(GOLDEN.read_text())


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(vectors(), indent=2) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
