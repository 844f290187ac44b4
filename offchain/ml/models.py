"""Model presets of the market, as ordinary ``torch.nn.Module`` s exported like any user model.

* :class:`MLP`  — linear/ReLU stack (the market's original workload);
* :class:`CNN`  — convolutions, GroupNorm (or BatchNorm), ReLU and max pooling for images;
* :class:`ResNet` — a CIFAR-style residual network: BatchNorm, strided 3x3 and 1x1 convolutions;
* :class:`GPT`  — a decoder-only transformer language model: token + position embeddings, causal
  multi-head attention, LayerNorm, GELU MLP, residuals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, input_dim: int, hidden: tuple[int, ...], classes: int) -> None:
        super().__init__()
        widths = (input_dim, *hidden)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class CNN(nn.Module):
    """Two conv blocks (conv 3x3, GroupNorm of ``groups`` or with ``norm="batch"`` BatchNorm, ReLU,
    2x2 max pool), then a linear classifier."""

    def __init__(self, channels: int, height: int, width: int, classes: int, widths: tuple[int, int] = (16, 32),
                 groups: int = 4, norm: str = "group") -> None:
        super().__init__()
        if norm not in ("group", "batch"):
            raise ValueError(f"norm must be 'group' or 'batch', got {norm!r}")
        blocks: list[nn.Module] = []
        c_in = channels
        for c_out in widths:
            normalise = nn.GroupNorm(groups, c_out) if norm == "group" else nn.BatchNorm2d(c_out)
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), normalise, nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in * (height // 4) * (width // 4), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and ReLU, plus a shortcut: the identity, or where the
    shape changes a strided 1x1 convolution with BatchNorm."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A 3x3 stem to ``widths[0]`` channels, ``blocks`` basic blocks per width (the first of each
    later width downsampling by stride 2), a global average pool and a linear classifier
    (``widths=(16, 32, 64), blocks=3`` is the CIFAR ResNet-20)."""

    def __init__(self, channels: int, classes: int, widths: tuple[int, ...] = (16, 32, 64), blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU())
        layers: list[nn.Module] = []
        c_in = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                layers.append(BasicBlock(c_in, width, 2 if stage and not block else 1))
                c_in = width
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(dim, dim=2)
        q, k, v = (t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        attention = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attention.transpose(1, 2).reshape(batch, length, dim))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, seq_len: int, dim: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(seq_len, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)
        return self.head(self.ln(self.blocks(x)))


PRESETS = {cls.__name__: cls for cls in (MLP, CNN, ResNet, GPT)}


def preset_model(meta: dict, shapes: dict[str, tuple[int, ...]]) -> nn.Module | None:
    """The preset a program was exported from (its meta ``model`` and ``model_kwargs``), with no
    memory of its own (meta tensors: call it with the parameters), or None unless it names one of
    this file's classes (never a submitter's code) whose parameters have exactly ``shapes``."""
    module, _, name = str(meta.get("model", "")).rpartition(":")
    kwargs = meta.get("model_kwargs", {})
    if module != __name__ or name not in PRESETS or not isinstance(kwargs, dict):
        return None
    try:
        with torch.device("meta"):
            model = PRESETS[name](**kwargs)
    except (TypeError, ValueError, RuntimeError):
        return None
    built = {n: tuple(p.shape) for n, p in model.named_parameters()}
    return model if built == shapes else None
