"""Golden vectors of the commitments the web app computes (CIDs, tensor, checkpoint and dataset
roots, task spec bytes and spec hash, training programs and their tasks, the loss of the MLP
preset's weights on a dataset and the checkpoints a loss curve shows, and your own data files read and split as `load_dataset` does, with its errors), shared by the Python
and the TypeScript implementations: both must compute exactly `tests/golden/commitments.json` from
the inputs it describes (the data files are in it, base64); the losses within LOSS_TOLERANCE.

`python -m tests.webapp.test_golden` rewrites the file from the Python implementation (only when
a format changes on purpose)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from offchain.chain.suite import ROOT
from offchain.ml.artifacts import Dataset, save_tensors
from offchain.ml.data import load_dataset
from offchain.ml.errors import DataError
from offchain.ml.commit import checkpoint_root, dataset_root, keccak256, tensor_root
from offchain.ml.exporter import mlp_preset
from offchain.ml.ops import OPS
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program_training import ProgramTraining
from offchain.ml.task import TrainingTask
from offchain.storage import compute_cid
from offchain.workers.submitter import curve_indices, score

GOLDEN = ROOT / "tests" / "golden" / "commitments.json"

# inputs, described by formulas both languages evaluate exactly
FILE_SIZES = [0, 1, 1000, 262_144, 262_145, 174 * 262_144 + 1]  # the last needs two levels of links
TENSOR_SIZES = [1, 10, 512, 513, 1500]
DATASETS = [(1, 5), (3, 5), (100, 7)]  # rows, dim
# the MLP preset (`mlp_preset`): input_dim, hidden widths, classes, batch size, lr, weights seed
MODELS = [(4, (3,), 2, 8, 0.1, 0), (64, (32,), 10, 32, 0.1, 0), (16, (8, 8), 4, 5, 0.03, 7), (3, (), 2, 1, 1e-05, 2**40 + 3)]
LRS = [0.1, 1.0, 1e-05, 0.0003, 0.0001, 7.5e-07, 2.5, 10.0]  # repr: plain, ".0", exponent forms
# the task page's loss curve: each preset of MODELS (its initial weights as the checkpoint) scored on
# LOSS_ROWS rows x = ((i % 13) / 8 - 0.5) * 8, y = i % classes; the checkpoints a curve of COUNT
# checkpoints shows at most POINTS of (count, points)
LOSS_ROWS = 50
CURVES = [(1, 50), (2, 50), (5, 50), (4, 3), (10, 4), (51, 50), (101, 50), (1001, 50)]
LOSS_TOLERANCE = {"rel": 1e-6, "abs": 0}  # the page sums in float64, torch in float32 (they differ by ~4e-8)


def data_files() -> dict[str, tuple[bytes, dict]]:
    """Your own data (docs/protocol.md §9.1): file name -> (bytes, load_dataset options)."""
    from safetensors.numpy import save

    lines = ['"width, cm",height,size']  # a header, a quoted cell, string labels, CRLF, a BOM, a blank line
    for i in range(60):
        width = f"{(i * 37 % 101) / 7!r}" if i % 5 else f" {i * 1.5 - 20} "
        label = "big" if (i * 37 % 101) > 50 else ("\"small\"" if i % 7 == 0 else "small")
        lines.append(f"{width},{'1_000.5' if i == 5 else f'{i * 0.001:.3e}'},{label}" + ("\r\n" if i == 30 else ""))
    header_csv = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()
    rows = [f"{i % 3}.0,{i},{i * i % 17},-{i % 5}" if i % 2 else f"{i % 3},{i},{i * i % 17},-{i % 5}" for i in range(25)]
    plain_csv = ("\n".join(rows)).encode()  # no header, integer labels first, no final newline
    x = np.sin(np.arange(200, dtype=np.float64) * 0.7).reshape(40, 5) * 1e3
    tensors = save({"x": x, "y": (np.arange(40) * 7 % 4).astype(np.uint8)})
    table = np.concatenate([np.cos(np.arange(90)).reshape(30, 3), (np.arange(30) % 2).reshape(30, 1)], 1)
    npy, npz = io.BytesIO(), io.BytesIO()
    np.save(npy, table.astype(np.float32))
    np.savez_compressed(npz, x=(np.arange(150) / 16).astype(np.float16).reshape(50, 3), y=np.arange(50) % 5)
    fortran = io.BytesIO()  # big-endian float64, column-major, integral float labels
    np.save(fortran, np.asfortranarray((np.arange(80, dtype=">f8") * 0.3 % 7).reshape(20, 4).round()))
    quoted = b'a,"b\nc",lab\n1,2,x\n"3","4",y\n5, 6 ,\xe2\x80\x83x\n7,8,"y'  # a cell over two lines; ends in a quote
    return {"header-strings.csv": (header_csv, {}), "no-header.csv": (plain_csv, {"label_column": "0", "seed": 3}),
            "quoted.csv": (quoted, {"holdout": 0.5}), "fortran.npy": (fortran.getvalue(), {"label_column": "1"}),
            "tensors.safetensors": (tensors, {"holdout": 0.25, "seed": 7}), "table.npy": (npy.getvalue(), {"seed": 1}),
            "arrays.npz": (npz.getvalue(), {"holdout": 0.2, "seed": 2})}


# malformed files and the one-line error load_dataset gives (the web app must give the same)
BAD_FILES: dict[str, str | bytes | None] = {
    "ragged.csv": "a,b,c\n1,2,x\n3,4\n", "words.csv": "1,2,0\n3,four,1\n", "nan.csv": "1,2,0\n3,nan,1\n",
    "one-class.csv": "1,2,7\n3,4,7\n", "empty-label.csv": "1,2,a\n3,4, \n", "many.csv": "1,0\n2,300\n",
    "negative.csv": "1,-1\n2,1\n", "huge.csv": "1,1e39,0\n2,3,1\n", "few.csv": "1,0\n2,1\n",
    "one-column.csv": "0\n1\n", "data.json": "{}", "latin1.csv": b"1,2\xff,0\n", "labels.safetensors": None,
    "strings.npy": None, "tokens.npy": None, "xz.npz": None,
}


def bad_file(name: str) -> bytes:
    from safetensors.numpy import save

    text = BAD_FILES[name]
    if text is not None:
        return text if isinstance(text, bytes) else text.encode()
    if name.endswith(".safetensors"):
        return save({"x": np.ones((3, 2), np.float32), "y": np.ones(3, np.float32)})
    out = io.BytesIO()
    if name == "xz.npz":
        np.savez(out, x=np.ones((2, 2)), z=np.ones(2))
    else:
        np.save(out, np.array(["a", "b"]) if name == "strings.npy" else np.arange(10))
    return out.getvalue()


def loaded(name: str, data: bytes, options: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            got = load_dataset(path, **options)
        except DataError as exc:
            return {"error": str(exc).replace(str(path), name)}
    held = got.holdout
    return {"description": got.description, "classes": got.num_classes, "train_rows": got.train.n_rows,
            "dataset_root": hex32(got.train.root()), "dataset_cid": compute_cid(got.train.to_bytes()),
            "holdout_rows": held.n_rows if held else 0, "holdout_cid": compute_cid(held.to_bytes()) if held else None}


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
                        graph_root=keccak256(b"graph"), optimizer=OptimizerConfig("sgd", lr),
                        hyper_root=keccak256(b"hyper"))


def preset_weighed(input_dim: int, hidden: tuple[int, ...], classes: int, batch: int, lr: float, weights_seed: int):
    """The MLP preset's program, optimizer and weights; the weights from a formula (`formula_weights`)
    that the seed shifts."""
    program, optimizer, weights = mlp_preset(input_dim, hidden, classes, batch_size=batch, lr=lr, seed=weights_seed)
    return program, optimizer, {n: formula_weights(w, weights_seed) for n, w in weights.items()}


def preset(input_dim: int, hidden: tuple[int, ...], classes: int, batch: int, lr: float, weights_seed: int) -> dict:
    """The MLP preset's program and initial weights, inputs of the loss the page computes."""
    program, _optimizer, weights = preset_weighed(input_dim, hidden, classes, batch, lr, weights_seed)
    return {"program": base64.b64encode(program.to_bytes()).decode(),
            "weights": base64.b64encode(save_tensors(weights)).decode()}


def loss(input_dim: int, hidden: tuple[int, ...], classes: int, batch: int, lr: float, weights_seed: int) -> float:
    """`score(...).loss`, the mean cross-entropy the task page draws, of a preset's initial weights."""
    program, optimizer, weights = preset_weighed(input_dim, hidden, classes, batch, lr, weights_seed)
    x = (((np.arange(LOSS_ROWS * input_dim) % 13) / 8 - 0.5) * 8).astype(np.float32).reshape(LOSS_ROWS, input_dim)
    rows = Dataset(torch.from_numpy(x), torch.arange(LOSS_ROWS) % classes)
    return score(ProgramTraining(program, optimizer, 1, 0), weights, rows).loss


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


# training programs (`dtm model export`) and tasks on them: model, its kwargs, input shape, loss,
# batch size, optimizer, data rows, steps, checkpoint interval, seed; the data is `dataset(rows, dim)`
PROGRAMS = {
    "mlp-sgd-momentum": ("MLP", {"input_dim": 64, "hidden": (16,), "classes": 10}, (64,), "cross_entropy", 8,
                         {"name": "sgd", "lr": 0.1, "momentum": 0.9}, 40, 40, 4, 5),
    "mlp-adam-step": ("MLP", {"input_dim": 8, "hidden": (4,), "classes": 3}, (8,), "cross_entropy", 4,
                      {"name": "adam", "lr": 0.003, "schedule": "step", "warmup_steps": 2, "step_size": 3, "gamma": 0.5,
                       "weight_decay": 0.01}, 20, 30, 5, 2**70 + 1),
    # a 100-term layer and 70 classes: a long linear reduction and a long log-softmax row, both dissected
    "mlp-wide": ("MLP", {"input_dim": 8, "hidden": (100,), "classes": 70}, (8,), "cross_entropy", 4,
                 {"name": "sgd", "lr": 0.1}, 20, 10, 10, 1),
    "cnn-adamw-cosine": ("CNN", {"channels": 1, "height": 8, "width": 8, "classes": 4, "widths": (4, 4), "groups": 2},
                         (1, 8, 8), "cross_entropy", 4,
                         {"name": "adamw", "lr": 3e-4, "weight_decay": 0.1, "schedule": "cosine", "warmup_steps": 3,
                          "min_lr_ratio": 0.1, "clip_norm": 1.0}, 12, 50, 10, 3),
    # BatchNorm: its running statistics are state the weights file carries
    "cnn-batchnorm-sgd": ("CNN", {"channels": 1, "height": 8, "width": 8, "classes": 4, "widths": (4, 4), "norm": "batch"},
                          (1, 8, 8), "cross_entropy", 4, {"name": "sgd", "lr": 0.05, "momentum": 0.9}, 12, 12, 4, 11),
    # a language model: rows of 6 + 1 tokens (the data's values are not read by the commitments)
    "gpt-lm-adamw": ("GPT", {"vocab": 10, "seq_len": 6, "dim": 8, "heads": 2, "layers": 1}, (6,), "lm_cross_entropy", 2,
                     {"name": "adamw", "lr": 0.01, "weight_decay": 0.01, "schedule": "cosine", "warmup_steps": 2,
                      "clip_norm": 1.0}, 16, 12, 6, 7),
}


def program_files(name: str) -> tuple[bytes, bytes]:
    """The program and its initial weights as `dtm model export` writes them."""
    from offchain.ml import models
    from offchain.ml.artifacts import save_tensors
    from offchain.ml.capture import ExportConfig, export_program, initial_tensors
    from offchain.ml.exporter import optimizer_from_options

    cls, kwargs, shape, loss, batch, optimizer, *_ = PROGRAMS[name]
    model = getattr(models, cls)(**kwargs)
    program = export_program(model, ExportConfig(batch, shape, loss, optimizer_from_options(optimizer)),
                             meta={"model": f"offchain.ml.models:{cls}", "model_kwargs": kwargs})
    params = dict(model.named_parameters())  # formula weights; running statistics as initialised (zeros, ones)
    return program.to_bytes(), save_tensors({n: formula_weights(t) if n in params else t
                                             for n, t in initial_tensors(model, program).items()})


def formula_weights(like: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Weights of ``like``'s shape from an exact formula: torch's own initialisers are not the same
    on every machine (`normal_` takes a vectorised path on AVX2 CPUs, a scalar one on AVX-512 and
    others, and they differ in the last bits)."""
    i = np.arange(like.numel()) + seed % 101
    return torch.from_numpy(((i * 37 % 101 - 50) / 512).astype(np.float32).reshape(like.shape))


def program_vectors(name: str) -> dict:
    """What `publish_program_task` commits for the program's task (and its price and verdict)."""
    from offchain.dispute.limits import program_unjudgeable_reason
    from offchain.ml.artifacts import Dataset
    from offchain.ml.demo import program_task
    from offchain.ml.program import Program
    from offchain.ml.program_training import initial_weights

    *_, rows, steps, k, seed = PROGRAMS[name]
    program_bytes, weights_bytes = program_files(name)
    program = Program.from_bytes(program_bytes)
    optimizer = OptimizerConfig.from_dict(program.meta["optimizer"])
    x, y = dataset(rows, program.nodes[program.leaf("data_x")].shape[1])
    bundle = program_task(program, optimizer, initial_weights(program, weights_bytes), Dataset(x, y), steps=steps, k=k,
                          seed=seed, cid=compute_cid)
    task, work = bundle.task, program.work()
    return {"program": base64.b64encode(program_bytes).decode(), "weights": base64.b64encode(weights_bytes).decode(),
            "rows": rows, "steps": steps, "k": k, "seed": str(seed),
            "nodes_root": hex32(program.nodes_root), "outputs_hash": hex32(program.outputs_hash),
            "root": hex32(program.root), "hyper_root": hex32(task.hyper_root),
            "committed_graph_root": hex32(task.committed_graph_root), "weights_root": hex32(task.weights_root),
            "model_cid": task.model_cid, "weights_cid": task.weights_cid, "dataset_cid": task.dataset_cid,
            "spec": task.to_bytes().decode(), "spec_hash": hex32(task.hash()),
            "flops": str(work["flops"]), "bytes": str(work["bytes"]), "nodes": work["nodes"],
            "unjudgeable": program_unjudgeable_reason(program, task)}


def vectors() -> dict:
    return {
        "cid": {str(size): compute_cid(file_bytes(size)) for size in FILE_SIZES},
        "tensor_root": {str(size): hex32(tensor_root(tensor(size))) for size in TENSOR_SIZES},
        "checkpoint_root": hex32(checkpoint_root({str(s): tensor(s) for s in TENSOR_SIZES}, [str(s) for s in TENSOR_SIZES])),
        "dataset_root": {f"{rows}x{dim}": hex32(dataset_root(*dataset(rows, dim))) for rows, dim in DATASETS},
        "presets": [preset(*m) for m in MODELS],
        "loss": [loss(*m) for m in MODELS],
        "curve_indices": {f"{count}/{points}": curve_indices(count, points) for count, points in CURVES},
        "task": {repr(lr): {"optimizer": task(lr).optimizer.to_dict(), "bytes": task(lr).to_bytes().decode(),
                            "spec_hash": hex32(task(lr).hash())} for lr in LRS},
        "data": {name: {"file": base64.b64encode(data).decode(), "options": options, **loaded(name, data, options)}
                 for name, (data, options) in data_files().items()},
        "data_errors": {name: {"file": base64.b64encode(bad_file(name)).decode(), **loaded(name, bad_file(name), {})}
                        for name in BAD_FILES},
        "ops": {name: op.code for name, op in OPS.items()},
        "programs": {name: program_vectors(name) for name in PROGRAMS},
    }


def assert_golden(got: dict) -> None:
    """Every vector exactly, but the losses within LOSS_TOLERANCE."""
    want = json.loads(GOLDEN.read_text())
    assert got.pop("loss") == pytest.approx(want.pop("loss"), **LOSS_TOLERANCE)
    assert got == want


def test_python_computes_the_golden_vectors():
    assert_golden(vectors())


def test_typescript_computes_the_golden_vectors():
    done = subprocess.run(["node", str(Path(__file__).parent / "golden.mjs")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert_golden(got)


def malformed_programs(program: bytes) -> dict[str, bytes]:
    """Variants of an exported program: re-formatted (still the same program) and malformed ones."""
    obj = json.loads(program)

    def edit(change) -> bytes:
        copy = json.loads(program)
        change(copy)
        return json.dumps(copy).encode()

    def node(i: int, field: int, value) -> Callable[[dict], None]:
        return lambda p: p["nodes"][i].__setitem__(field, value)

    const = next(i for i, n in enumerate(obj["nodes"]) if n[0] == "const")
    return {
        "reformatted": json.dumps(obj, indent=1, sort_keys=False).encode(),
        "duplicate key": program.replace(b"{", b'{"loss":0,', 1), "BOM": b"\xef\xbb\xbf" + program,
        "trailing bytes": program + b"x", "not JSON": b"hello", "a list": b"[]", "latin-1": program.replace(b"MLP", b"ML\xff"),
        "format": edit(lambda p: p.__setitem__("format", "dtm-program/2")), "extra key": edit(lambda p: p.__setitem__("x", 1)),
        "unknown op": edit(node(3, 0, "sort")), "unknown dtype": edit(node(3, 1, "f16")),
        "float input": edit(node(5, 2, [1.0])), "later input": edit(node(5, 2, [40])),
        "zero size": edit(node(5, 3, [0, 4])), "attr over uint256": edit(node(5, 4, [2**256])),
        "state index": edit(node(1, 4, [5])), "state shape": edit(lambda p: p["state"][0].__setitem__(1, [3, 3])),
        "constant data": edit(lambda p: p["constants"].__setitem__(str(const), "AACAQA==")),
        "constant base64": edit(lambda p: p["constants"].__setitem__(str(const), "AACAPw=")),
        "constant missing": edit(lambda p: p["constants"].pop(str(const))),
        "outputs": edit(lambda p: p["outputs"].pop()), "loss": edit(lambda p: p.__setitem__("loss", 0)),
        "no optimizer": edit(lambda p: p.__setitem__("meta", {})),
        "optimizer lr": edit(lambda p: p["meta"]["optimizer"].__setitem__("lr", 20.0)),
        "optimizer steps": edit(lambda p: p["meta"]["optimizer"].__setitem__("warmup_steps", 1.0)),
        "optimizer not the program's": edit(lambda p: p["meta"]["optimizer"].__setitem__("name", "adam")),
        "optimizer without momentum": edit(lambda p: p["meta"]["optimizer"].__setitem__("momentum", 0.0)),
    }


def frozen_program(name: str, frozen: str) -> bytes:
    """``name``'s program exported with the parameters under ``frozen`` not requiring a gradient:
    they keep no optimizer buffers (the same weights fit it)."""
    from offchain.ml import models
    from offchain.ml.capture import ExportConfig, export_program
    from offchain.ml.exporter import optimizer_from_options

    cls, kwargs, shape, loss, batch, optimizer, *_ = PROGRAMS[name]
    model = getattr(models, cls)(**kwargs)
    model.get_submodule(frozen).requires_grad_(False)
    return export_program(model, ExportConfig(batch, shape, loss, optimizer_from_options(optimizer)),
                          meta={"model": f"offchain.ml.models:{cls}", "model_kwargs": kwargs}).to_bytes()


def test_the_page_reads_program_files_as_python_does():
    """Every malformed program Python refuses the page refuses (with the initial weights that fit
    the program), and a program re-formatted is the same program: its model CID is that of
    `Program.to_bytes()`; a program with a frozen layer (no optimizer buffers for it) is read too."""
    from offchain.ml.errors import MLError
    from offchain.ml.optim import OptimizerConfig
    from offchain.ml.program import Program
    from offchain.ml.program_training import ProgramTraining

    golden = json.loads(GOLDEN.read_text())["programs"]["mlp-sgd-momentum"]
    cases = {**malformed_programs(base64.b64decode(golden["program"])),
             "first layer frozen": frozen_program("mlp-sgd-momentum", "layers.0")}
    expected = {}
    for name, data in cases.items():
        try:
            program = Program.from_bytes(data)
            ProgramTraining(program, OptimizerConfig.from_dict(program.meta.get("optimizer")), 10, 1)
            expected[name] = compute_cid(program.to_bytes())
        except MLError:
            expected[name] = None
    given = {name: [base64.b64encode(data).decode(), golden["weights"]] for name, data in cases.items()}
    done = subprocess.run(["node", str(Path(__file__).parent / "program_files.mjs")], input=json.dumps(given),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    assert {name: got.get("model_cid") for name, got in read.items()} == expected, read
    assert expected["reformatted"] == golden["model_cid"] and expected["first layer frozen"] is not None
    assert sum(v is None for v in expected.values()) == len(cases) - 2


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(vectors(), indent=2) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
