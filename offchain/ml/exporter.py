"""``dtm model export`` / ``dtm task quote``: load a submitter's model class and price its step.

This is the only place that imports a model's Python, and it runs on the submitter's own machine:
solvers and verifiers receive the exported program (data) and never this code.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import torch

from .artifacts import MAX_ARTIFACT_BYTES, save_tensors
from .capture import ExportConfig, export_program, initial_tensors
from .errors import GraphError
from .optim import OptimizerConfig
from .program import Program, seeded
from .program_training import initial_weights


def load_model_class(reference: str) -> type:
    """``path/to/file.py:Class`` or ``package.module:Class``; a file's folder goes on ``sys.path``
    (as when Python runs it), so it may import the modules beside it."""
    target, _, name = reference.rpartition(":")
    if not target or not name:
        raise GraphError(f"model must be FILE.py:Class or module:Class, got {reference!r}")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise GraphError(f"no model file {target}")
            folder = str(path.resolve().parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
    except GraphError:
        raise
    except Exception as exc:
        raise GraphError(f"cannot import {target}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    cls = getattr(module, name, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        raise GraphError(f"{reference} is not a torch.nn.Module class")
    return cls


def export_model(reference: str, kwargs: dict[str, Any], config: ExportConfig, seed: int) -> tuple[Program, bytes]:
    """The program and the initial weights (safetensors: the parameters, then any running
    statistics, in the program's order)."""
    cls = load_model_class(reference)
    try:
        with seeded(seed):
            model = cls(**kwargs)
    except Exception as exc:
        raise GraphError(f"{reference}({kwargs}) failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    program = export_program(model, config, meta={"model": reference, "model_kwargs": kwargs})
    return program, save_tensors(initial_tensors(model, program))


#: The market's MLP preset (`dtm task post` without --program): a linear/ReLU stack trained with SGD.
MLP_PRESET = "offchain.ml.models:MLP"


def mlp_preset(input_dim: int, hidden: tuple[int, ...], classes: int, *, batch_size: int, lr: float,
               seed: int = 0, targets: int | None = None) -> tuple[Program, OptimizerConfig, dict[str, torch.Tensor]]:
    """The MLP preset exported like any model: ``input_dim`` features, the ``hidden`` widths,
    ``classes`` outputs, softmax cross-entropy and plain SGD at ``lr`` (with ``targets``, a
    regressor: that many outputs, mean squared error against the row's last ``targets`` values);
    the program, its optimizer and its initial weights (`publish_program_task`'s arguments)."""
    classes = targets or classes
    widths = (input_dim, *hidden, classes)
    size = 4 * sum((width_in + 1) * width_out for width_in, width_out in zip(widths, widths[1:]))
    if size > MAX_ARTIFACT_BYTES:  # refused before any tensor is made
        raise GraphError(f"an MLP of widths {'-'.join(map(str, widths))} has {size // 4:,} parameters: "
                         f"{size / 2**20:,.0f} MiB of weights, over the {MAX_ARTIFACT_BYTES // 2**20} MiB a file may hold")
    optimizer = OptimizerConfig("sgd", lr)
    program, weights = export_model(MLP_PRESET, {"input_dim": input_dim, "hidden": list(hidden), "classes": classes},
                                    ExportConfig(batch_size, (input_dim,), "mse" if targets else "cross_entropy",
                                                 optimizer, targets or 1), seed)
    return program, optimizer, initial_weights(program, weights)


def optimizer_from_options(options: dict[str, Any]) -> OptimizerConfig:
    return OptimizerConfig.from_dict({**OptimizerConfig().to_dict(), **{k: v for k, v in options.items() if v is not None}})


def quote(program: Program, steps: int) -> dict[str, float]:
    work = program.work()
    return {
        "params": program.num_params(),
        "flops_per_step": work["flops"],
        "bytes_per_step": work["bytes"],
        "total_tflop": work["flops"] * steps / 1e12,
        "nodes": work["nodes"],
    }


def parse_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphError(f"--kwargs is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise GraphError("--kwargs must be a JSON object")
    return value
