"""The captured programs the proof-of-learning benchmarks measure beside the MLPs: a CNN of
1.1M parameters (SGD with momentum, synthetic 3x16x16 images) and a GPT of 5.1M parameters (AdamW,
warm-up + cosine, clipping; CPython's help texts). Each gives its module, export config and data,
seeded, so a benchmark can build the task (``workload_task``) and the plain PyTorch loop from the same."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from offchain.ml.artifacts import Dataset, text_dataset  # noqa: E402
from offchain.ml.capture import ExportConfig  # noqa: E402
from offchain.ml.demo import DemoTask, module_task  # noqa: E402
from offchain.ml.models import CNN, GPT  # noqa: E402
from offchain.ml.optim import OptimizerConfig  # noqa: E402


def cnn() -> tuple[torch.nn.Module, ExportConfig, Dataset]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    images = Dataset(torch.randn(2048, 3 * 16 * 16, generator=g), torch.randint(0, 10, (2048,), generator=g))
    config = ExportConfig(32, (3, 16, 16), optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))
    return CNN(3, 16, 16, 10, widths=(288, 416), groups=8), config, images


def gpt() -> tuple[torch.nn.Module, ExportConfig, Dataset]:
    torch.manual_seed(0)
    optimizer = OptimizerConfig("adamw", 3e-4, weight_decay=0.1, warmup_steps=4, schedule="cosine", clip_norm=1.0)
    config = ExportConfig(16, (64,), loss="lm_cross_entropy", optimizer=optimizer)
    return GPT(256, 64, 320, 8, 4), config, text_dataset(64)


PROGRAMS = {"CNN 288-416 (1.1M)": cnn, "GPT 4x320 (5.1M)": gpt}


def workload_task(workload, *, steps: int, k: int) -> DemoTask:
    model, config, data = workload()
    return module_task(model, config, data, steps=steps, k=k, seed=5)
