"""Optimizers and learning-rate schedules of training programs, written as traceable torch code.

The update is part of the captured step, so the judge checks it like any other node. Everything
that depends on the step number (the scheduled learning rate, Adam's bias corrections) is a row of
the *hyper table*: float32 scalars computed once in float64 and fed to the step as its ``hyper``
leaf, so no transcendental function of the step count is ever evaluated inside the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .errors import SpecError
from .strict_json import check_keys

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def _number(obj: dict, key: str, low: float, high: float) -> float:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"optimizer.{key} must be a finite number")
    if not low <= value <= high:
        raise SpecError(f"optimizer.{key} must be in [{low}, {high}], got {value}")
    return float(value)


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD (with momentum), Adam or AdamW; weight decay; warm-up + cosine or step schedule; clipping."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    step_size: int = 1
    gamma: float = 1.0
    clip_norm: float = 0.0  # 0: no clipping

    def __post_init__(self) -> None:
        OptimizerConfig.from_dict(self.to_dict(), check_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, obj: Any, check_only: bool = False) -> OptimizerConfig:
        if not isinstance(obj, dict):
            raise SpecError("optimizer must be an object")
        check_keys(obj, set(cls.__dataclass_fields__), "optimizer", SpecError)
        if obj["name"] not in OPTIMIZERS:
            raise SpecError(f"unknown optimizer {obj['name']!r}; allowed: {OPTIMIZERS}")
        if obj["schedule"] not in SCHEDULES:
            raise SpecError(f"unknown schedule {obj['schedule']!r}; allowed: {SCHEDULES}")
        for key in ("warmup_steps", "step_size"):
            if isinstance(obj[key], bool) or not isinstance(obj[key], int) or not 0 <= obj[key] <= 10**7:
                raise SpecError(f"optimizer.{key} must be an integer in [0, 10^7]")
        if obj["step_size"] < 1:
            raise SpecError("optimizer.step_size must be at least 1")
        values = {
            "lr": _number(obj, "lr", 1e-12, 10.0),
            "momentum": _number(obj, "momentum", 0.0, 0.999),
            "beta1": _number(obj, "beta1", 0.0, 0.9999),
            "beta2": _number(obj, "beta2", 0.0, 0.99999),
            "eps": _number(obj, "eps", 1e-12, 1.0),
            "weight_decay": _number(obj, "weight_decay", 0.0, 1.0),
            "min_lr_ratio": _number(obj, "min_lr_ratio", 0.0, 1.0),
            "gamma": _number(obj, "gamma", 0.0, 1.0),
            "clip_norm": _number(obj, "clip_norm", 0.0, 1e6),
        }
        if check_only:
            return None  # type: ignore[return-value]
        return cls(name=obj["name"], schedule=obj["schedule"], warmup_steps=obj["warmup_steps"],
                   step_size=obj["step_size"], **values)

    # ------------------------------------------------------------------------------- state

    def buffers(self) -> tuple[str, ...]:
        """Optimizer state per parameter, zeros at step 0."""
        if self.name == "sgd":
            return ("momentum",) if self.momentum else ()
        return ("exp_avg", "exp_avg_sq")

    @property
    def hyper_names(self) -> tuple[str, ...]:
        return ("lr",) if self.name == "sgd" else ("lr", "bias_correction1", "bias_correction2_rsqrt")

    def lr_at(self, step: int, steps: int) -> float:
        """Scheduled learning rate of step ``step`` (0-based) of ``steps`` (float64)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "cosine":
            span = max(steps - self.warmup_steps, 1)
            progress = min((step - self.warmup_steps) / span, 1.0)
            return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
        if self.schedule == "step":
            return self.lr * self.gamma ** ((step - self.warmup_steps) // self.step_size)
        return self.lr

    def hyper_row(self, step: int, steps: int) -> list[float]:
        row = [self.lr_at(step, steps)]
        if self.name != "sgd":
            t = step + 1
            row += [1.0 / (1.0 - self.beta1**t), 1.0 / math.sqrt(1.0 - self.beta2**t)]
        return row

    def hyper_table(self, steps: int) -> torch.Tensor:
        """``(steps, H)`` float32: row ``s`` is the ``hyper`` leaf of step ``s``."""
        return torch.tensor([self.hyper_row(s, steps) for s in range(steps)], dtype=torch.float64).float()

    # ------------------------------------------------------------------------------- update

    def update(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        buffers: Sequence[Sequence[torch.Tensor]],
        hyper: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """One step of plain torch ops (captured into the program); ``buffers[i]`` per param."""
        grads = list(grads)
        if self.clip_norm:
            total = sum((g * g).sum() for g in grads).sqrt()
            coef = torch.clamp(self.clip_norm / (total + 1e-6), max=1.0)
            grads = [g * coef for g in grads]
        lr = hyper[0]
        new_params, new_buffers = [], []
        for p, g, state in zip(params, grads, buffers):
            if self.name == "sgd":
                if self.weight_decay:
                    g = g + self.weight_decay * p
                if self.momentum:
                    g = self.momentum * state[0] + g
                    state = [g]
                new_params.append(p - lr * g)
                new_buffers.append(list(state))
                continue
            if self.name == "adam" and self.weight_decay:
                g = g + self.weight_decay * p
            m = self.beta1 * state[0] + (1 - self.beta1) * g
            v = self.beta2 * state[1] + (1 - self.beta2) * (g * g)
            if self.name == "adamw" and self.weight_decay:
                p = p - (lr * self.weight_decay) * p
            step = (lr * hyper[1]) * m / (v.sqrt() * hyper[2] + self.eps)
            new_params.append(p - step)
            new_buffers.append([m, v])
        return new_params, new_buffers
