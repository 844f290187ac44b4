"""Training step of a captured program vs a plain PyTorch loop, per model family.

Program = the step exported by ``offchain/ml/capture.py``, parsed back from its bytes and run by
``ProgramExecutor`` (values freed after their last use, each step but the first writing into the
state before it, as training does). Baseline = the same ``nn.Module`` with
autograd and the matching ``torch.optim`` optimizer, eager PyTorch defaults (its CPU attention
kernel included). Same batches, same intra-op thread count; runs are interleaved and the median
of the repeats is reported as a ratio against the baseline measured in the same process. "sums
cost" is the program against the same step exported with every kernel fused (``long_sums=False``):
what writing long reductions as sums the dispute game dissects costs. Run:

    .venv/bin/python bench/program_speed.py [--threads 1] [--steps 10] [--repeats 3] [--small]
        [--allocator tuned|default] [--device cuda --batch-scale 8] [--family cnn ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from offchain.ml.capture import ExportConfig, export_program, initial_tensors  # noqa: E402
from offchain.ml.models import CNN, GPT, MLP, ResNet  # noqa: E402
from offchain.ml.optim import OptimizerConfig  # noqa: E402
from offchain.ml.program import CapturedStep, Program, ProgramExecutor, execution_context, tune_allocator  # noqa: E402


def families(small: bool, batch_scale: int = 1):
    scale = 4 if small else 1
    sgd = OptimizerConfig("sgd", 0.05, momentum=0.9)
    adamw = OptimizerConfig("adamw", 3e-4, weight_decay=0.1)
    return {
        "mlp": (MLP(1024, (1024 // scale, 1024 // scale), 10),
                ExportConfig(256 // scale * batch_scale, (1024,), optimizer=sgd)),
        "cnn": (CNN(3, 32, 32, 10, widths=(64 // scale, 128 // scale), groups=8),
                ExportConfig(64 // scale * batch_scale, (3, 32, 32), optimizer=sgd)),
        # BatchNorm, strided convolutions (written stride-1 + slice) and 1x1 shortcuts (matmuls)
        "resnet": (ResNet(3, 10, widths=(16, 32, 64)),
                   ExportConfig(64 // scale * batch_scale, (3, 32, 32), optimizer=sgd)),
        "transformer": (GPT(256, 64, 256 // scale, 8, 6 // (2 if small else 1)),
                        ExportConfig(16 // scale * batch_scale, (64,), loss="lm_cross_entropy", optimizer=adamw)),
    }


def _elapsed(start: float) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def batches(config: ExportConfig, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        if config.loss == "lm_cross_entropy":
            x = torch.randint(0, 256, (config.batch_size, config.data_dim), generator=generator).float()
            out.append((x, torch.zeros(config.batch_size, dtype=torch.int64)))
        else:
            out.append((torch.randn(config.batch_size, config.data_dim, generator=generator),
                        torch.randint(0, 10, (config.batch_size,), generator=generator)))
    return out


def plain(model, config: ExportConfig, data, start_state: list | None = None) -> float:
    """A plain loop's steps; ``start_state`` (the parameters) resets the model first, so each repeat
    trains the same steps from the same weights as the program does (data-dependent kernels such as
    max pooling then see the same values)."""
    if start_state is not None:
        with torch.no_grad():
            for p, value in zip(model.parameters(), start_state):
                p.copy_(value)
    opt = config.optimizer
    if opt.name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay, eps=opt.eps)
    _elapsed(0.0)
    start = time.perf_counter()
    for x, y in data:
        if config.loss == "lm_cross_entropy":
            tokens = x.long()
            logits = model(tokens[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        else:
            loss = F.cross_entropy(model(x.view(x.shape[0], *config.input_shape)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opt.clip_norm:  # the exported step clips too
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt.clip_norm)
        optimizer.step()
    return _elapsed(start)


def program_run(executor: ProgramExecutor, state, config: ExportConfig, data, final: list | None = None) -> float:
    table = config.optimizer.hyper_table(len(data)).to(data[0][0].device)
    _elapsed(0.0)
    start = time.perf_counter()
    for step, (x, y) in enumerate(data):
        state = executor.run(state, x, y, table[step], consume=step > 0).state  # as training steps a segment
    elapsed = _elapsed(start)
    if final is not None:
        final[:] = state
    return elapsed


def captured_run(executor: ProgramExecutor, state, config: ExportConfig, data, final: list | None = None) -> float:
    """The same steps replayed from one CUDA graph (`CapturedStep`); capture is not timed."""
    table = config.optimizer.hyper_table(len(data)).to(data[0][0].device)
    step_graph = CapturedStep(executor, state, *data[0], table[0])
    _elapsed(0.0)
    start = time.perf_counter()
    for step, (x, y) in enumerate(data):
        step_graph.run(x, y, table[step])
    elapsed = _elapsed(start)
    if final is not None:
        final[:] = [t.clone() for t in step_graph.state]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="smaller models (a quick check)")
    parser.add_argument("--allocator", choices=["default", "tuned"], default="tuned",
                        help="tuned: program.tune_allocator() (both loops run under it)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (TF32 off, as the numeric contract says)")
    parser.add_argument("--batch-scale", type=int, default=1, help="multiply every batch size (accelerators)")
    parser.add_argument("--family", action="append", choices=["mlp", "cnn", "resnet", "transformer"],
                        help="measure only these (repeatable; default: all)")
    args = parser.parse_args()
    if args.allocator == "tuned" and not tune_allocator():
        print("tune_allocator() did not apply here (not glibc)")
    print(f"device={args.device} threads={args.threads} steps={args.steps} repeats={args.repeats} "
          f"allocator={args.allocator} batch-scale={args.batch_scale} (median step time)")
    graphs = args.device.startswith("cuda")
    print(f"{'family':12} {'params':>10} {'nodes':>6} {'plain ms':>9} {'program ms':>11} {'ratio':>6} "
          f"{'fused ms':>9} {'sums cost':>9}" + (f" {'captured ms':>12} {'ratio':>6} bitwise" if graphs else ""))
    for name, (model, config) in families(args.small, args.batch_scale).items():
        if args.family and name not in args.family:
            continue
        torch.manual_seed(0)
        program = Program.from_bytes(export_program(model, config).to_bytes())
        executor = ProgramExecutor(program)
        fused = ProgramExecutor(export_program(model, config, long_sums=False))  # every kernel as PyTorch fuses it
        model = model.to(args.device)
        params = [p.detach().clone() for p in model.parameters()]
        weights = initial_tensors(model, program)  # parameters and running statistics
        state = [weights[slot.name] if slot.kind != "buffer" else torch.zeros(slot.shape, device=args.device)
                 for slot in program.state]
        data = [(x.to(args.device), y.to(args.device)) for x, y in batches(config, args.steps)]
        plain_times, program_times, fused_times, captured_times = [], [], [], []
        eager_state, captured_state = [], []
        with execution_context(args.threads):
            plain(model, config, data[:2], params)
            program_run(executor, state, config, data[:2])
            for _ in range(args.repeats):
                plain_times.append(plain(model, config, data, params) / args.steps)
                program_times.append(program_run(executor, state, config, data, eager_state) / args.steps)
                fused_times.append(program_run(fused, state, config, data) / args.steps)
                if graphs:
                    captured_times.append(captured_run(executor, state, config, data, captured_state) / args.steps)
        base, ours, kernels = statistics.median(plain_times), statistics.median(program_times), statistics.median(fused_times)
        line = (f"{name:12} {program.num_params():>10,} {len(program.nodes):>6} {base * 1e3:>9.2f} "
                f"{ours * 1e3:>11.2f} {ours / base:>6.2f} {kernels * 1e3:>9.2f} {ours / kernels:>9.3f}")
        if graphs:
            replayed = statistics.median(captured_times)
            same = all(torch.equal(a, b) for a, b in zip(eager_state, captured_state))
            line += f" {replayed * 1e3:>12.2f} {replayed / base:>6.2f} {'yes' if same else 'NO'}"
        print(line)


if __name__ == "__main__":
    main()
