"""Held-out quality of each model family trained as a program vs a plain PyTorch loop.

Each family trains the same initial weights on the same batches twice: as an exported program run
by ``ProgramExecutor``, and as the ``nn.Module`` with autograd and ``torch.optim``. A second plain
run on another batch order gives the run-to-run noise the difference is compared with.

* MLP on scikit-learn's digits (64 features), SGD with momentum;
* CNN on the same digits as 1x8x8 images (conv, GroupNorm, ReLU, max pool), SGD with momentum;
  and the same CNN with BatchNorm (evaluated with its running statistics, which the program keeps
  as state);
* GPT, a byte-level transformer language model on CPython's help texts (``text_dataset``), AdamW
  with warm-up + cosine and gradient clipping; the metric is held-out loss per token and perplexity.

    .venv/bin/python bench/families.py [--steps 300]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from offchain.ml.artifacts import digits_dataset, text_dataset  # noqa: E402
from offchain.ml.capture import ExportConfig, export_program, initial_tensors  # noqa: E402
from offchain.ml.models import CNN, GPT, MLP  # noqa: E402
from offchain.ml.optim import OptimizerConfig  # noqa: E402
from offchain.ml.program import ProgramExecutor, execution_context  # noqa: E402

HOLDOUT = 0.1


def families():
    sgd = OptimizerConfig("sgd", 0.05, momentum=0.9)
    adamw = OptimizerConfig("adamw", 3e-3, weight_decay=0.01, schedule="cosine", warmup_steps=20, clip_norm=1.0)
    digits, text = digits_dataset(), text_dataset(64)
    return {
        "mlp": (lambda: MLP(64, (64,), 10), ExportConfig(64, (64,), optimizer=sgd), digits),
        "cnn": (lambda: CNN(1, 8, 8, 10, widths=(16, 32)), ExportConfig(64, (1, 8, 8), optimizer=sgd), digits),
        "cnn-batchnorm": (lambda: CNN(1, 8, 8, 10, widths=(16, 32), norm="batch"), ExportConfig(64, (1, 8, 8), optimizer=sgd),
                          digits),
        "gpt": (lambda: GPT(256, 64, 64, 4, 2), ExportConfig(16, (64,), loss="lm_cross_entropy", optimizer=adamw), text),
    }


def split(dataset):
    held = max(1, round(HOLDOUT * dataset.n_rows))
    return (dataset.x[:-held], dataset.y[:-held]), (dataset.x[-held:], dataset.y[-held:])


def loss_of(model, config: ExportConfig, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and, for classifiers, the number of correct predictions."""
    if config.loss == "lm_cross_entropy":
        tokens = x.long()
        logits = model(tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)), torch.tensor(0)
    logits = model(x.view(x.shape[0], *config.input_shape))
    return F.cross_entropy(logits, y), (logits.argmax(1) == y).sum()


def evaluate(model, config: ExportConfig, held) -> str:
    model.eval()
    with torch.no_grad():
        loss, correct = loss_of(model, config, *held)
    if config.loss == "lm_cross_entropy":
        return f"loss {loss.item():.4f} ppl {math.exp(loss.item()):7.3f}"
    return f"loss {loss.item():.4f} acc {100 * correct.item() / len(held[1]):5.1f}%"


def batches(train, batch_size: int, steps: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, len(train[0]), (batch_size,), generator=generator) for _ in range(steps)]


def run_plain(make, config: ExportConfig, train, order) -> torch.nn.Module:
    torch.manual_seed(0)
    model = make()
    opt = config.optimizer
    if opt.name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum)
        scheduler = None
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay, eps=opt.eps)
        table = opt.hyper_table(len(order))[:, 0] / opt.lr
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: float(table[min(s, len(order) - 1)]))
    for index in order:
        loss, _ = loss_of(model, config, train[0][index], train[1][index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opt.clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt.clip_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return model


def run_program(make, config: ExportConfig, train, order) -> torch.nn.Module:
    torch.manual_seed(0)
    model = make()
    program = export_program(model, config)
    executor, weights = ProgramExecutor(program), initial_tensors(model, program)
    state = [weights[slot.name] if slot.kind != "buffer" else torch.zeros(slot.shape) for slot in program.state]
    table = config.optimizer.hyper_table(len(order))
    for step, index in enumerate(order):
        state = executor.run(state, train[0][index], train[1][index], table[step]).state
    trained = {slot.name: value for slot, value in zip(program.state, state) if slot.kind != "buffer"}
    model.load_state_dict(trained, strict=False)  # parameters and running statistics
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    print(f"steps={args.steps}, held-out = last {HOLDOUT:.0%} of the rows, 1 thread")
    for name, (make, config, dataset) in families().items():
        train, held = split(dataset)
        order = batches(train, config.batch_size, args.steps, seed=1)
        start = time.perf_counter()
        with execution_context(1):
            program = run_program(make, config, train, order)
            plain = run_plain(make, config, train, order)
            noise = run_plain(make, config, train, batches(train, config.batch_size, args.steps, seed=2))
        params = sum(p.numel() for p in program.parameters())
        print(f"{name:13} {params:>8,} params  program {evaluate(program, config, held)}  |  plain "
              f"{evaluate(plain, config, held)}  |  plain, other batch order {evaluate(noise, config, held)}"
              f"  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
