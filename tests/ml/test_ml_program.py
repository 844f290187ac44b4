"""Training programs captured from PyTorch: export, the graph as data, and execution.

The executor runs a parsed program (never the model's Python) and must train bitwise like eager
PyTorch running the same step; a plain ``torch.optim`` loop must reach the same losses within
float noise.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from offchain.ml import capture, rewrites
from offchain.ml.capture import ExportConfig, _step_function, export_program
from offchain.dispute import program_rules as R
from offchain.dispute.limits import program_unjudgeable_reason
from offchain.ml.errors import GraphError
from offchain.ml.models import CNN, GPT, MLP, ResNet
from offchain.ml.ops import LEAVES, OPS, Node, check_ops_table
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program import Program, ProgramExecutor, StateSlot, donors, execution_context
from offchain.ml.program_training import ProgramTraining
from torch.nn.attention import SDPBackend, sdpa_kernel

ADAMW = OptimizerConfig("adamw", 3e-3, weight_decay=0.01, schedule="cosine", warmup_steps=2, clip_norm=1.0)
FAMILIES = {
    "mlp": (lambda: MLP(64, (32, 32), 10), ExportConfig(16, (64,))),
    "cnn": (lambda: CNN(1, 8, 8, 10, widths=(4, 8)),  # GroupNorm rows of 64 and 32: the fused kernel
            ExportConfig(8, (1, 8, 8), optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))),
    "gpt": (lambda: GPT(50, 16, 32, 4, 2), ExportConfig(4, (16,), loss="lm_cross_entropy", optimizer=ADAMW)),
}


def _batch(config: ExportConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if config.loss == "lm_cross_entropy":
        x = torch.randint(0, 50, (config.batch_size, config.data_dim), generator=generator).float()
        return x, torch.zeros(config.batch_size, dtype=torch.int64)
    x = torch.randn(config.batch_size, config.data_dim, generator=generator)
    return x, torch.randint(0, 10, (config.batch_size,), generator=generator)


def _initial_state(model: nn.Module, config: ExportConfig) -> list[torch.Tensor]:
    params = [p.detach().clone() for p in model.parameters()]
    return params + [torch.zeros_like(p) for p in params for _ in config.optimizer.buffers()]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    torch.manual_seed(0)
    make, config = FAMILIES[request.param]
    model = make()
    return request.param, model, config, export_program(model, config)


def test_program__trains_bitwise_like_eager_pytorch_running_the_same_step(family):
    _name, model, config, program = family
    executor = ProgramExecutor(Program.from_bytes(program.to_bytes()))
    eager = _step_function(model, [n for n, _ in model.named_parameters()], {}, config)
    ours = theirs = _initial_state(model, config)
    generator = torch.Generator().manual_seed(1)
    with execution_context(1), sdpa_kernel([SDPBackend.MATH]):
        for step in range(4):
            x, y = _batch(config, generator)
            hyper = config.optimizer.hyper_table(4)[step]
            result = executor.run(ours, x, y, hyper)
            *theirs, loss = eager(*theirs, x, y, hyper)
            ours = result.state
            assert torch.equal(result.loss, loss)
            assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert any(not torch.equal(a, b) for a, b in zip(ours, _initial_state(model, config)))


def test_program__writing_into_dead_inputs_gives_the_bits_of_keeping_every_value(family):
    _name, model, config, program = family
    executor = ProgramExecutor(program)
    assert executor._donors, "no node writes into a dead input"
    start = _initial_state(model, config)
    before = [t.clone() for t in start]
    constants = {i: t.clone() for i, t in program.constants.items()}
    freed = kept = start
    generator = torch.Generator().manual_seed(2)
    with execution_context(1):
        for step in range(3):
            x, y = _batch(config, generator)
            hyper = config.optimizer.hyper_table(3)[step]
            freed = executor.run(freed, x, y, hyper).state
            kept = executor.run(kept, x, y, hyper, keep_trace=True).state
            assert all(torch.equal(a, b) and a.stride() == b.stride() for a, b in zip(freed, kept))
    assert all(torch.equal(a, b) for a, b in zip(start, before)), "the caller's state was written"
    assert all(torch.equal(program.constants[i], t) for i, t in constants.items()), "a constant was written"


def test_program__elementwise_results_read_only_by_views_are_dense_so_the_views_copy_nothing():
    """The attention's scaled query and key heads are strided like the projection they are split
    from; written dense, the views that batch the heads read them in place, with the same bits."""
    torch.manual_seed(0)
    make, config = FAMILIES["gpt"]
    model = make()
    executor = ProgramExecutor(export_program(model, config))
    nodes = executor.program.nodes
    dense = {executor._plan[position][0][0] for position in executor._dense}
    assert dense and all(nodes[i].op == "mul" for i in dense)
    read_strided = []

    def spying(slots, fn, inputs):
        def kernel(values):
            if inputs[0] in dense:
                read_strided.append(not values[inputs[0]].is_contiguous())
            return fn(values)
        return slots, kernel, inputs

    executor._plan = [spying(*entry) if nodes[entry[0][0]].op == "view" else entry for entry in executor._plan]
    x, y = _batch(config, torch.Generator().manual_seed(2))
    hyper = config.optimizer.hyper_table(1)[0]
    with execution_context(1):
        freed = executor.run(_initial_state(model, config), x, y, hyper)
        assert read_strided and not any(read_strided)
        kept = executor.run(_initial_state(model, config), x, y, hyper, keep_trace=True)
    assert all(torch.equal(a, b) for a, b in zip(freed.state, kept.state))


def test_program__consuming_the_state_gives_the_bits_of_keeping_it_and_reuses_its_memory(family):
    """A step told that nothing reads its state again writes results into the state's tensors:
    the same bits as a step that keeps it, in fewer fresh tensors."""
    _name, model, config, program = family
    executor = ProgramExecutor(program)
    states = {node.id for node in program.nodes if node.op == "state"}
    assert any(donor in states for _kernel, donor in executor._donors_consuming.values())
    generator = torch.Generator().manual_seed(2)
    consumed = [t.clone() for t in _initial_state(model, config)]
    kept = [t.clone() for t in consumed]
    reused = 0
    with execution_context(1):
        for step in range(3):
            x, y = _batch(config, generator)
            hyper = config.optimizer.hyper_table(3)[step]
            old = {t.untyped_storage().data_ptr() for t in consumed}
            consumed = executor.run(consumed, x, y, hyper, consume=True).state
            kept = executor.run(kept, x, y, hyper).state
            assert all(torch.equal(a, b) and a.stride() == b.stride() for a, b in zip(consumed, kept))
            reused += sum(t.untyped_storage().data_ptr() in old for t in consumed)
    assert reused, "no new state tensor took an old one's memory"


def test_program__consumes_no_state_whose_tensors_share_memory(family):
    """Two state slots given views of one buffer: writing one would change the other, so the step
    writes into neither."""
    _name, model, config, program = family
    state = _initial_state(model, config)
    same = [i for i, t in enumerate(state) if t.shape == state[0].shape]
    if len(same) < 2:
        pytest.skip("no two state tensors of one shape")
    state[same[1]] = state[same[0]]
    before = [t.clone() for t in state]
    x, y = _batch(config, torch.Generator().manual_seed(2))
    with execution_context(1):
        ProgramExecutor(program).run(state, x, y, config.optimizer.hyper_table(1)[0], consume=True)
    assert all(torch.equal(a, b) for a, b in zip(state, before))


def test_donors__never_a_leaf_a_kept_value_or_memory_read_later_or_twice():
    def node(i, op, inputs=(), shape=(4,)):
        return Node(i, op, "f32", tuple(inputs), shape)

    nodes = [
        node(0, "state"), node(1, "data_x"),
        node(2, "mul", (0, 1)),            # reads leaves only: nothing to write into
        node(3, "add", (2, 2)),            # 2 dies here: 3 may write into it
        node(4, "view", (3,)),             # shares 3's memory
        node(5, "mul", (3, 1)),            # 3 dies, but its view 4 is read later
        node(6, "sub", (4, 3)),            # the last read of 3 and 4, but through two aliases
        node(7, "neg", (5,)),              # 5 dies here, but 7 is kept (an output)
        node(8, "sqrt", (7,)),             # 7 is kept: never written into
        node(9, "mul", (8, 1), shape=(2, 4)),  # 8 has another shape
    ]
    plan = [((n.id,), None, n.inputs) for n in nodes if n.op not in LEAVES]
    chosen = {plan[position][0][0]: donor for position, (_kernel, donor) in donors(nodes, plan, {7, 9}).items()}
    assert chosen == {3: 2, 7: 5}
    consuming = donors(nodes, plan, {7, 9}, consumable={0})
    assert {plan[position][0][0]: donor for position, (_kernel, donor) in consuming.items()} == {2: 0, 3: 2, 7: 5}


def test_program__matches_a_plain_torch_optim_loop_within_float_noise():
    torch.manual_seed(3)
    _initial = GPT(40, 12, 32, 4, 1)
    torch.manual_seed(3)
    model = GPT(40, 12, 32, 4, 1)
    optimizer = OptimizerConfig("adamw", 1e-2, weight_decay=0.1)
    config = ExportConfig(8, (12,), loss="lm_cross_entropy", optimizer=optimizer)
    executor = ProgramExecutor(export_program(model, config))
    state = _initial_state(model, config)
    plain = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, eps=optimizer.eps)
    x = (torch.arange(8 * 13).reshape(8, 13) % 7).float()  # a learnable pattern
    y = torch.zeros(8, dtype=torch.int64)
    ours, theirs = [], []
    with execution_context(1):
        for step in range(30):
            result = executor.run(state, x, y, optimizer.hyper_table(30)[step])
            state = result.state
            ours.append(float(result.loss))
            tokens = x.long()
            logits = model(tokens[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, 40), tokens[:, 1:].reshape(-1))
            plain.zero_grad()
            loss.backward()
            plain.step()
            theirs.append(loss.item())
    assert ours[-1] < ours[0] - 0.5
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-3
    # Adam turns rounding noise in near-zero gradients into up to lr-sized steps: compare the
    # parameter gap with how far the parameters moved
    moved = max(float((a - b).abs().max()) for a, b in zip(state, _initial_state(_initial, config)))
    gap = max(float((a - b).abs().max()) for a, b in zip(state, map(torch.Tensor.detach, model.parameters())))
    assert gap < 0.05 * moved


@pytest.mark.parametrize("loss, targets", [("mse", 1), ("l1", 2), ("smooth_l1", 3)])
def test_program__a_regression_loss_reads_the_rows_last_values_as_a_plain_torch_loop_does(loss, targets):
    """The model sees the first features of a row; its outputs are compared with the row's last
    ``targets`` values (80 rows x 3 targets: the loss's mean is a long sum the game dissects)."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, targets))
    start = copy.deepcopy(model)
    config = ExportConfig(80, (6,), loss=loss, optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9), targets=targets)
    program = Program.from_bytes(export_program(model, config).to_bytes())
    assert program.nodes[program.leaf("data_x")].shape == (80, 6 + targets) and program.meta["targets"] == targets
    executor, state = ProgramExecutor(program), _initial_state(model, config)
    plain = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(80, 6, generator=torch.Generator().manual_seed(2))
    rows = torch.cat([x, torch.sin(x[:, :targets] * 2) + x[:, -1:]], 1)
    ours, theirs = [], []
    with execution_context(1):
        for step in range(20):
            result = executor.run(state, rows, torch.zeros(80, dtype=torch.int64), config.optimizer.hyper_table(20)[step])
            state = result.state
            ours.append(float(result.loss))
            value = getattr(F, f"{loss}_loss")(model(x), rows[:, 6:])
            plain.zero_grad()
            value.backward()
            plain.step()
            theirs.append(value.item())
    assert ours[-1] < 0.7 * ours[0]
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-5
    moved = max(float((a - b.detach()).abs().max()) for a, b in zip(state, start.parameters()))
    assert max(float((a - b.detach()).abs().max()) for a, b in zip(state, model.parameters())) < 1e-3 * moved


@pytest.mark.parametrize("batch", [8, 80])
def test_program__label_smoothing_trains_as_a_plain_torch_loop_does(batch):
    """Cross-entropy with a share of each target spread over every class (PyTorch's own formula:
    a sum of the log-probabilities beside the picked one), over a short and a long batch."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    config = ExportConfig(batch, (6,), optimizer=OptimizerConfig("adam", 1e-2), label_smoothing=0.2)
    program = Program.from_bytes(export_program(model, config).to_bytes())
    assert program.meta["label_smoothing"] == 0.2
    executor, state = ProgramExecutor(program), _initial_state(model, config)
    plain = torch.optim.Adam(model.parameters(), lr=1e-2, eps=config.optimizer.eps)
    x = torch.randn(batch, 6, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    ours, theirs = [], []
    with execution_context(1):
        for step in range(15):
            result = executor.run(state, x, y, config.optimizer.hyper_table(15)[step])
            state = result.state
            ours.append(float(result.loss))
            value = F.cross_entropy(model(x), y, label_smoothing=0.2)
            plain.zero_grad()
            value.backward()
            plain.step()
            theirs.append(value.item())
    assert ours[-1] < 0.8 * ours[0] and max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-4
    with pytest.raises(GraphError, match="label smoothing 1.5: a cross-entropy loss takes a share in"):
        export_program(model, ExportConfig(8, (6,), label_smoothing=1.5))


def test_program__frozen_parameters_keep_their_values_and_no_optimizer_buffers_as_a_plain_loop():
    """A fine-tuning model: parameters with requires_grad False pass through the step unchanged
    (AdamW's weight decay included) and keep no moments, as the plain loop over the parameters
    that require a gradient trains the rest."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    model[0].requires_grad_(False)
    model[2].bias.requires_grad_(False)
    start = copy.deepcopy(model)
    optimizer = OptimizerConfig("adamw", 1e-2, weight_decay=0.1)
    config = ExportConfig(8, (6,), optimizer=optimizer)
    program = Program.from_bytes(export_program(model, config).to_bytes())
    training = ProgramTraining(program, optimizer, 10, 1)
    assert [slot.name for slot in program.state if slot.kind == "buffer"] == [
        f"{name}.{kind}" for name in ("2.weight", "4.weight", "4.bias") for kind in ("exp_avg", "exp_avg_sq")]
    state = [training.initial_state(capture.initial_tensors(model, program))[name] for name in training.param_names]
    executor = ProgramExecutor(program)
    plain = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1,
                              eps=optimizer.eps)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 4
    with execution_context(1):
        for step in range(10):
            result = executor.run(state, x, y, optimizer.hyper_table(10)[step])
            state = result.state
            value = F.cross_entropy(model(x), y)
            plain.zero_grad()
            value.backward()
            plain.step()
            assert abs(float(result.loss) - value.item()) < 1e-5
    trained = dict(zip(training.param_names, state))
    for name, tensor in start.named_parameters():
        if name in ("0.weight", "0.bias", "2.bias"):
            assert torch.equal(trained[name], tensor.detach()), name
        else:
            assert not torch.equal(trained[name], tensor.detach()), name
            assert torch.allclose(trained[name], dict(model.named_parameters())[name].detach(), atol=1e-5), name


class _Returning(nn.Module):
    """A classifier whose forward returns ``wrap(logits, hidden)``."""

    def __init__(self, wrap) -> None:
        super().__init__()
        self.wrap, self.body, self.head = wrap, nn.Linear(5, 8), nn.Linear(8, 3)

    def forward(self, x):
        hidden = torch.tanh(self.body(x))
        return self.wrap(self.head(hidden), hidden)


@pytest.mark.parametrize("wrap", [lambda logits, hidden: (logits, hidden), lambda logits, hidden: [logits],
                                  lambda logits, hidden: {"hidden": hidden, "logits": logits}],
                         ids=["tuple", "list", "mapping"])
def test_export__a_model_returning_a_tuple_or_a_mapping_trains_on_its_logits(wrap):
    torch.manual_seed(0)
    program = export_program(_Returning(wrap), ExportConfig(4, (5,)))
    torch.manual_seed(0)
    plain = export_program(_Returning(lambda logits, hidden: logits), ExportConfig(4, (5,)))
    assert program.root == plain.root


def test_export__a_model_returning_neither_is_refused_in_one_line():
    with pytest.raises(GraphError, match="the model returned dict: return the outputs the loss reads as a tensor"):
        export_program(_Returning(lambda logits, hidden: {"scores": logits}), ExportConfig(4, (5,)))


def test_export__a_regression_model_s_outputs_must_match_its_targets():
    with pytest.raises(GraphError, match="the model gives 3 values a row; the mse loss compares 2 targets"):
        export_program(nn.Linear(4, 3), ExportConfig(4, (4,), loss="mse", targets=2))


def test_program__bytes_round_trip_and_the_root_commits_to_every_node(family):
    _name, model, config, program = family
    again = Program.from_bytes(program.to_bytes())
    assert again.root == program.root and again.to_bytes() == program.to_bytes()
    assert export_program(model, config).root == program.root
    other = export_program(model, ExportConfig(config.batch_size * 2, config.input_shape, config.loss, config.optimizer))
    assert other.root != program.root


def _tampered(program: Program, edit) -> bytes:
    obj = json.loads(program.to_bytes())
    edit(obj)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("edit, message", [
    (lambda o: o["nodes"][-1].__setitem__(3, [7, 7]), "declared"),
    (lambda o: o["nodes"][-1].__setitem__(0, "sort"), "unknown op"),
    (lambda o: o["nodes"][-1].__setitem__(2, [len(o["nodes"])]), "input"),
    (lambda o: o["nodes"][0].__setitem__(4, [5]), "state leaves"),
    (lambda o: o.__setitem__("outputs", o["outputs"][:-1]), "whole next state"),
    (lambda o: o["constants"].__setitem__(next(iter(o["constants"])), "AAAA"), "const"),
])
def test_program__malformed_files_are_refused_with_one_line(family, edit, message):
    _name, _model, _config, program = family
    with pytest.raises(GraphError, match=message) as error:
        Program.from_bytes(_tampered(program, edit))
    assert "\n" not in str(error.value)


def test_program__view_out_of_its_input_is_refused():
    program = export_program(*_tiny_mlp())
    obj = json.loads(program.to_bytes())
    view = next(i for i, n in enumerate(obj["nodes"]) if n[0] == "view")
    obj["nodes"][view][4][0] += 10**6
    with pytest.raises(GraphError, match="view reads element"):
        Program.from_bytes(json.dumps(obj).encode())


def _tiny_mlp():
    torch.manual_seed(0)
    return MLP(4, (3,), 2), ExportConfig(2, (4,))


class _WithNoise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x + torch.randn_like(x))


class _WithSort(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(torch.sort(x, dim=1).values)


class _WithIntegerBits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x * ((x > 0).long() & (x < 1).long()))


class _Uncopyable(nn.Module):
    """A BatchNorm model holding a lock (no deep copy of it can be made)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        self.lock = __import__("threading").Lock()

    def forward(self, x):
        return self.layers(x)


@pytest.mark.parametrize("model, words", [
    (_WithNoise(), ["random", "test_ml_program.py:", "randn_like"]),
    (_WithIntegerBits(), ["bitwise_and", "on integers", "test_ml_program.py:", "& (x < 1)"]),
    (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, momentum=None), nn.Linear(4, 2)),
     ["BatchNorm1d(momentum=None)", "cumulative average", "give it a momentum"]),
    (_Uncopyable(), ["cannot be copied to rewrite its BatchNorm layers", "lock"]),
    (_WithSort(), ["aten.sort", "not in the verifiable op set", "test_ml_program.py:", "torch.sort"]),
])
def test_export__op_outside_the_set_names_the_op_and_the_model_line(model, words):
    with pytest.raises(GraphError) as error:
        export_program(model, ExportConfig(2, (4,)))
    for word in words:
        assert word in str(error.value)


def test_export__a_presets_nodes_name_their_line_in_the_presets_file():
    """The presets live in this package; their lines are the model's lines all the same (the demo's
    dispute names the attention line it ends in)."""
    program = export_program(GPT(17, 8, 16, 2, 1), ExportConfig(2, (8,), loss="lm_cross_entropy"))
    softmax = next(node.id for node in program.nodes if node.op == "safe_softmax")
    assert "models.py:" in program.describe(softmax)
    assert "scaled_dot_product_attention" in program.describe(softmax)


class _Unnamed(nn.Module):
    """A model no preset covers: residual tanh/SiLU/sigmoid blocks, mean pooling over a sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = x.view(x.shape[0], 2, 6)
        x = x + torch.tanh(self.a(x)) * torch.sigmoid(self.b(x))
        return self.head(F.silu(x).mean(dim=1))


def test_export__a_model_outside_the_presets_using_supported_ops_trains():
    torch.manual_seed(0)
    model = _Unnamed()
    config = ExportConfig(8, (12,), optimizer=OptimizerConfig("adam", 1e-2))
    executor = ProgramExecutor(export_program(model, config))
    state = _initial_state(model, config)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 12, generator=generator), torch.randint(0, 3, (8,), generator=generator)
    losses = []
    for step in range(80):
        result = executor.run(state, x, y, config.optimizer.hyper_table(80)[step])
        state = result.state
        losses.append(float(result.loss))
    assert losses[-1] < 0.25 * losses[0]


@pytest.mark.parametrize("function", [torch.round, torch.floor, torch.ceil, torch.trunc, torch.frac],
                         ids=lambda f: f.__name__)
def test_export__round_floor_ceil_trunc_frac_are_torch_s_bit_for_bit_from_casts_and_masks(function):
    """Ties to even, a zero keeps its sign, floats past 2^23, infinities and NaN are whole already:
    the bits of torch's functions, from ops the judge checks exactly (no rule of their own)."""
    edges = [0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.49999997, 0.3, -0.3, 3.7, -3.7, 2.0**23 - 0.5, 2.0**23,
             2.0**22 + 0.5, 1e30, float("inf"), float("-inf"), float("nan"), -0.0, 0.0, 1.0000001, -7.5, 123456.5]
    noise = torch.randn(20_000, generator=torch.Generator().manual_seed(0)) * 1000
    noise[::3] = noise[::3].floor() + 0.5
    for values in (torch.tensor(edges), noise):
        slots = [StateSlot("param/w", tuple(values.shape), "param")]
        step = lambda w, x, y, hyper: (w, torch.zeros(()), function(w))  # noqa: E731
        x, y, hyper = torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), torch.zeros(1)
        program = capture.capture_step(step, [torch.zeros(values.shape), x, y, hyper], slots, ["lr"])
        assert {node.op for node in program.nodes} >= {"cast", "where"}
        sent = ProgramExecutor(program).run([values], x, y, hyper).sent[0]
        assert torch.equal(sent.view(torch.int32), function(values).view(torch.int32))


class _ManyHeads(nn.Module):
    """Twenty small heads whose outputs are concatenated: a cat of more tensors than a node reads."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(4, 1) for _ in range(20))
        self.out = nn.Linear(20, 10)

    def forward(self, x):
        return self.out(torch.cat([head(x) for head in self.heads], dim=1))


def test_export__a_cat_of_more_tensors_than_a_node_reads_is_a_tree_of_cats_with_eager_s_bits():
    torch.manual_seed(0)
    model = _ManyHeads()
    config = ExportConfig(8, (4,))
    program = Program.from_bytes(export_program(model, config).to_bytes())
    cats = [node for node in program.nodes if node.op == "cat"]
    assert len(cats) >= 4 and max(len(node.inputs) for node in program.nodes) <= 8
    eager = _step_function(model, [n for n, _ in model.named_parameters()], {}, config)
    state = _initial_state(model, config)
    x, y = _batch(config, torch.Generator().manual_seed(1))
    hyper = config.optimizer.hyper_table(1)[0]
    with execution_context(1):
        result = ProgramExecutor(program).run(state, x, y, hyper)
        *theirs, loss = eager(*state, x, y, hyper)
    assert torch.equal(result.loss, loss) and all(torch.equal(a, b) for a, b in zip(result.state, theirs))


class _Picking(nn.Module):
    """A leaky ReLU, the last position picked out and a slice of positions averaged (the gradients of
    select and slice), after torch's own MultiheadAttention (its packed projection is split by
    selects) or a linear layer."""

    def __init__(self, attention: bool) -> None:
        super().__init__()
        self.mix = nn.MultiheadAttention(8, 2, batch_first=True) if attention else nn.Linear(8, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        h = self.mix(x, x, x, need_weights=False)[0] if isinstance(self.mix, nn.MultiheadAttention) else self.mix(x)
        h = F.leaky_relu(h, 0.1)
        return self.head(h[:, -1] + h[:, 1:3].mean(1))


def _program_and_eager_steps(model: nn.Module, steps: int, input_shape: tuple[int, ...] = (5, 8),
                             optimizer: OptimizerConfig = OptimizerConfig("adam", 1e-2)):
    """The program's and the eager step's losses and states over ``steps`` steps on one batch."""
    config = ExportConfig(4, input_shape, optimizer=optimizer)
    program = Program.from_bytes(export_program(model, config).to_bytes())
    eager = _step_function(model, [n for n, _ in model.named_parameters()], {}, config)
    executor, (x, y) = ProgramExecutor(program), _batch(config, torch.Generator().manual_seed(1))
    ours = theirs = _initial_state(model, config)
    out = []
    for step in range(steps):
        hyper = config.optimizer.hyper_table(steps)[step]
        with execution_context(1):
            result = executor.run(ours, x, y, hyper)
            *theirs, loss = eager(*theirs, x, y, hyper)
        ours = result.state
        out.append((result.loss, loss, ours, theirs))
    return program, out


def test_export__leaky_relu_select_and_slice_take_eager_s_bits():
    torch.manual_seed(0)
    program, steps = _program_and_eager_steps(_Picking(attention=False), 3)
    assert {"where", "gt", "cat"} <= {node.op for node in program.nodes}
    # the gradients' zeros are views of one scalar constant, not stored tensors
    assert all(tensor.numel() <= 8 for tensor in program.constants.values())
    for ours, eager_loss, state, eager_state in steps:
        assert torch.equal(ours, eager_loss) and all(torch.equal(a, b) for a, b in zip(state, eager_state))


def test_export__a_1d_convolution_is_the_2d_one_over_a_height_of_1_with_eager_s_bits():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(),
                          nn.Conv1d(6, 5, 1), nn.Flatten(), nn.Linear(5 * 6, 10))
    program, steps = _program_and_eager_steps(model, 3, input_shape=(4, 11))
    convolutions = [node for node in program.nodes if node.op.startswith("conv2d")]
    assert len(convolutions) == 2 + 3 + 2  # two forward, both gradients of the second, input's not for the first
    assert all(len(node.shape) == 4 and node.shape[2] == 1 for node in convolutions if node.op != "conv2d_grad_bias")
    for ours, eager_loss, state, eager_state in steps:
        assert torch.equal(ours, eager_loss) and all(torch.equal(a, b) for a, b in zip(state, eager_state))


def test_export__torch_multihead_attention_trains_as_eager_does():
    """Eager's attention kernels sum in another order than the captured ones: float noise, no more."""
    torch.manual_seed(0)
    _, steps = _program_and_eager_steps(_Picking(attention=True), 30)
    assert all(abs(float(ours - eager)) < 1e-4 for ours, eager, _, _ in steps)
    assert float(steps[-1][0]) < 0.5 * float(steps[0][0])


#: activations eager PyTorch runs as kernels the op set has no node of its own for
WRITTEN_WITH_OTHER_OPS = {
    "softplus": lambda: nn.Softplus(beta=2.0), "elu": nn.ELU, "selu": nn.SELU, "celu": lambda: nn.CELU(0.5),
    "mish": nn.Mish, "logsigmoid": nn.LogSigmoid, "gelu-tanh": lambda: nn.GELU(approximate="tanh"),
    "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid, "relu6": nn.ReLU6,
    "hardtanh": lambda: nn.Hardtanh(-0.5, 0.5), "prelu": lambda: nn.PReLU(16),
}


def _close_to_eager(steps, tolerance: float = 1e-6) -> None:
    """Each step's loss and state within ``tolerance`` of eager's, and the loss going down."""
    for ours, eager_loss, state, eager_state in steps:
        assert abs(float(ours - eager_loss)) <= tolerance
        assert all(torch.allclose(a, b, rtol=0, atol=tolerance) for a, b in zip(state, eager_state))
    assert float(steps[-1][0]) < 0.9 * float(steps[0][0])


@pytest.mark.parametrize("name", sorted(WRITTEN_WITH_OTHER_OPS))
def test_export__activations_without_a_node_of_their_own_train_as_eager_does(name):
    """torch's own decompositions write them (and their backward) with the op set's ops: log1p and
    expm1 as log(1 + x) and exp(x) − 1, clamps as maximum/minimum, branches as where."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), WRITTEN_WITH_OTHER_OPS[name](), nn.Linear(16, 10))
    _, steps = _program_and_eager_steps(model, 10, input_shape=(8,))
    _close_to_eager(steps)


#: average pools over 4 channels of 8×8 (pool, features after it)
POOLS = {
    "2x2": (lambda: nn.AvgPool2d(2), 64), "3x3-padded": (lambda: nn.AvgPool2d(3, 2, 1), 64),
    "padding-not-counted": (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), 64),
    "divisor": (lambda: nn.AvgPool2d(2, divisor_override=3), 64), "adaptive": (lambda: nn.AdaptiveAvgPool2d(2), 16),
}


def _after_a_convolution(layer: nn.Module, features: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), layer, nn.Flatten(), nn.Linear(features, 10))


@pytest.mark.parametrize("name", sorted(POOLS))
def test_export__an_average_pool_is_a_depthwise_convolution_of_ones_over_the_counts(name):
    make, features = POOLS[name]
    torch.manual_seed(0)
    program, steps = _program_and_eager_steps(_after_a_convolution(make(), features), 10, input_shape=(2, 8, 8))
    depthwise = [node for node in program.nodes if node.op.startswith("conv2d") and node.attrs[6] == 4]
    assert {node.op for node in depthwise} == {"conv2d", "conv2d_grad_input"}
    _close_to_eager(steps)


#: layers after a convolution over 4 channels of 8×8 (layer, features after it, an op it must not leave)
REWRITTEN_LAYERS = {
    "adaptive-max-pool": (lambda: nn.AdaptiveMaxPool2d((1, 4)), 16, "max_pool2d_grad"),
    "upsample-by-2": (lambda: nn.Upsample(scale_factor=2), 4 * 16 * 16, "sum"),
    "upsample-to-a-size": (lambda: nn.Upsample(size=(16, 24)), 4 * 16 * 24, "sum"),
    "instance-norm": (lambda: nn.InstanceNorm2d(4, affine=True), 4 * 64, "rsqrt"),
    "instance-norm-plain": (lambda: nn.InstanceNorm2d(4), 4 * 64, "rsqrt"),
    "zero-pad": (lambda: nn.ZeroPad2d((1, 0, 2, 1)), 4 * 11 * 9, "cat"),
    "pixel-shuffle": (lambda: nn.PixelShuffle(2), 256, "view"), "pixel-unshuffle": (lambda: nn.PixelUnshuffle(2), 256, "view"),
    "bilinear-by-1.5": (lambda: nn.Upsample(scale_factor=1.5, mode="bilinear"), 4 * 12 * 12, "bmm"),
    "bilinear-aligned-to-a-size": (lambda: nn.Upsample(size=(11, 5), mode="bilinear", align_corners=True), 4 * 11 * 5, "bmm"),
    "bicubic-by-2": (lambda: nn.Upsample(scale_factor=2, mode="bicubic"), 4 * 16 * 16, "bmm"),
    "bicubic-aligned-to-a-size": (lambda: nn.Upsample(size=(5, 11), mode="bicubic", align_corners=True), 4 * 5 * 11, "bmm"),
    "nearest-by-1.5": (lambda: nn.Upsample(scale_factor=1.5), 4 * 12 * 12, "embedding_grad"),
    "nearest-exact-to-a-size": (lambda: nn.Upsample(size=(11, 5), mode="nearest-exact"), 4 * 11 * 5, "embedding_grad"),
    "reflection-pad": (lambda: nn.ReflectionPad2d((1, 2, 2, 0)), 4 * 10 * 11, "embedding_grad"),
    "replication-pad": (lambda: nn.ReplicationPad2d(1), 4 * 10 * 10, "embedding_grad"),
    "circular-pad": (lambda: nn.CircularPad2d((2, 1, 0, 1)), 4 * 9 * 11, "embedding_grad"),
    "channel-shuffle": (lambda: nn.ChannelShuffle(2), 256, "view"),
    "unfold-tiling": (lambda: nn.Unfold(2, stride=2), 4 * 4 * 16, "view"),
    "unfold-overlapping": (lambda: nn.Unfold(3, padding=1, stride=2), 4 * 9 * 16, "cat"),
    "fold-of-unfold": (lambda: nn.Sequential(nn.Unfold(3, padding=1), nn.Fold((8, 8), 3, padding=1)), 256, "add"),
}


@pytest.mark.parametrize("name", sorted(REWRITTEN_LAYERS))
def test_export__pools_upsampling_padding_shuffles_and_instance_norm_train_as_eager_does(name):
    """An adaptive max pool is the max pool of its window, a nearest upsample by whole factors an
    expanded view (its gradient block sums), by others and edge pads lookups of constant indices
    (their gradients the lookups' sums), a bilinear or bicubic one two products with constant
    interpolation matrices, a zero pad a cat of zeros, pixel (un)shuffles views, unfold strided slices (a view
    where its blocks tile the plane) and fold their gradient,
    InstanceNorm the moments as sums (SGD: the conv bias before a norm has a zero gradient, whose
    rounding noise Adam would blow up to lr-sized steps)."""
    make, features, op = REWRITTEN_LAYERS[name]
    torch.manual_seed(0)
    program, steps = _program_and_eager_steps(_after_a_convolution(make(), features), 10, input_shape=(2, 8, 8),
                                              optimizer=OptimizerConfig("sgd", 0.1, momentum=0.9))
    assert op in {node.op for node in program.nodes}
    _close_to_eager(steps)


#: transposed convolutions after a strided convolution over 2 channels of 8×8 (layer, features after it)
TRANSPOSED = {
    "plain": (lambda: nn.ConvTranspose2d(4, 6, 3), 6 * 6 * 6),
    "strided-output-padding": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), 6 * 8 * 8),
    "grouped-dilated": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, dilation=2, bias=False), 6 * 11 * 11),
}


@pytest.mark.parametrize("name", sorted(TRANSPOSED))
def test_export__a_transposed_convolution_is_the_input_gradient_of_the_one_it_transposes(name):
    """conv2d_grad_input of its input (the output's shape carried by zeros), its input gradient a
    conv2d, its weight gradient a conv2d_grad_weight with input and gradient swapped."""
    make, features = TRANSPOSED[name]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(), make(), nn.ReLU(), nn.Flatten(),
                          nn.Linear(features, 10))
    program, steps = _program_and_eager_steps(model, 10, input_shape=(2, 8, 8),
                                              optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))
    assert sum(node.op == "conv2d" for node in program.nodes) == 2  # the first layer's, the transposed one's gradient
    _close_to_eager(steps)


def test_export__a_1d_transposed_convolution_is_the_2d_one_over_a_height_of_1():
    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose1d(2, 4, 3, stride=2, padding=1, output_padding=1), nn.Flatten(),
                          nn.Linear(4 * 8, 10))
    _, steps = _program_and_eager_steps(model, 10, input_shape=(2, 4), optimizer=OptimizerConfig("sgd", 0.05))
    _close_to_eager(steps)


#: 1x1 convolutions over more than 16 channels of planes over SPREAD_PLANE elements (layer, input, features)
POINTWISE = {
    "2d": (lambda: nn.Conv2d(20, 24, 1), (20, 12, 12), 24 * 144),
    "2d-strided-without-bias": (lambda: nn.Conv2d(20, 24, 1, stride=(2, 3), bias=False), (20, 13, 13), 24 * 7 * 5),
    "1d": (lambda: nn.Conv1d(20, 24, 1), (20, 150), 24 * 150),
}


@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_export__a_pointwise_convolution_over_wide_planes_is_a_matmul_over_channels(name):
    """Its reductions would read one term a plane apart (more leaves than the game opens): as a
    matmul of the channels-last pixels they read rows; a stride picks pixels by a strided slice,
    whose gradient spreads the incoming one with zeros between."""
    make, shape, features = POINTWISE[name]
    torch.manual_seed(0)
    model = nn.Sequential(make(), nn.ReLU(), nn.Flatten(), nn.Linear(features, 10))
    program, steps = _program_and_eager_steps(model, 5, input_shape=shape,
                                              optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))
    assert not any(node.op.startswith("conv2d") for node in program.nodes)
    _close_to_eager(steps)


#: strided convolutions whose input gradient would read the weight over more leaves than the game
#: opens, after a convolution that needs that gradient (layer, input, features, whether grouped)
STRIDED = {
    "3x3-stride-2": (lambda: nn.Conv2d(64, 32, 3, stride=2, padding=1), (8, 8, 8), 32 * 16, False),
    "grouped-3x3-stride-2": (lambda: nn.Conv2d(64, 64, 3, stride=2, padding=1, groups=2), (8, 8, 8), 64 * 16, True),
    "1d-5-stride-2": (lambda: nn.Conv1d(64, 32, 5, stride=2), (8, 40), 32 * 18, False),
}


def _after_a_wide_convolution(layer: nn.Module, shape: tuple[int, ...], features: int):
    """The program and eager steps of ``layer`` after a 3x3 convolution from 8 to 64 channels
    (so its input gradient is needed), over inputs of ``shape``."""
    torch.manual_seed(0)
    first = (nn.Conv2d if len(shape) == 3 else nn.Conv1d)(8, 64, 3, padding=1)
    model = nn.Sequential(first, nn.ReLU(), layer, nn.ReLU(), nn.Flatten(), nn.Linear(features, 10))
    return _program_and_eager_steps(model, 5, input_shape=shape, optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))


@pytest.mark.parametrize("name", sorted(STRIDED))
def test_export__a_strided_convolution_s_input_gradient_reads_the_flipped_weight_over_the_spread_gradient(name):
    """The output gradient spread with zeros (``slice_backward`` with a step) and convolved at
    stride 1 with the flipped weight; a grouped one is the stride-1 convolution strided by a slice."""
    make, shape, features, grouped = STRIDED[name]
    program, steps = _after_a_wide_convolution(make(), shape, features)
    convolutions = [node for node in program.nodes if node.op.startswith("conv2d")]
    if grouped:
        assert all(node.attrs[:2] == (1, 1) for node in convolutions)
    else:
        assert not any(node.op == "conv2d_grad_input" for node in convolutions)
        assert sorted(node.attrs[1] for node in convolutions if node.op == "conv2d") == [1, 1, 2]
    _close_to_eager(steps)


#: stride-1 convolutions whose fused input gradient would read the weight over too many leaves
#: (layer, input after a 3x3 convolution to 64 channels, features)
FLIPPED = {
    "3x3-padded": (lambda: nn.Conv2d(64, 32, 3, padding=1), (8, 6, 6), 32 * 36),
    "3x3-dilated": (lambda: nn.Conv2d(64, 32, 3, padding=2, dilation=2), (8, 6, 6), 32 * 36),
    "1d-5": (lambda: nn.Conv1d(64, 32, 5, padding=1), (8, 12), 32 * 10),
}


@pytest.mark.parametrize("name", sorted(FLIPPED))
def test_export__a_wide_convolution_s_input_gradient_convolves_with_the_flipped_weight(name):
    """conv2d(grad, flip(w) with in and out channels swapped, padding d·(k − 1) − p): it reads a
    kernel per output channel where the fused gradient reads one weight row per channel."""
    make, shape, features = FLIPPED[name]
    program, steps = _after_a_wide_convolution(make(), shape, features)
    assert not any(node.op == "conv2d_grad_input" for node in program.nodes)
    assert sum(node.op == "conv2d" for node in program.nodes) == 3
    _close_to_eager(steps)


class _MobileBlock(nn.Module):
    """A depthwise 3x3 and a pointwise convolution with BatchNorm and ReLU6, on 3x32x32 images."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6(),
                                   nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU6())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.block(self.stem(x)), 1).flatten(1))


def _padded_and_resampled() -> nn.Module:
    """Reflection and circular padding, a fractional nearest upsample and an unfold: lookups of
    constant indices and strided slices over a 32x32 image."""
    return nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(3, 8, 3), nn.Upsample(scale_factor=1.5), nn.CircularPad2d(1),
                         nn.Conv2d(8, 8, 3, stride=2), nn.Unfold(2, stride=2), nn.Flatten(), nn.Linear(32 * 169, 10))


@pytest.mark.parametrize("make", [_MobileBlock, lambda: ResNet(3, 10, widths=(32, 64)), _padded_and_resampled],
                         ids=["mobilenet", "resnet", "padded-and-resampled"])
def test_export__mobilenet_and_resnet_blocks_on_32x32_images_are_judgeable(make):
    from offchain.ml.artifacts import Dataset
    from offchain.ml.demo import program_task

    torch.manual_seed(0)
    model = make()
    config = ExportConfig(4, (3, 32, 32))
    program = export_program(model, config)
    data = Dataset(torch.randn(8, 3 * 32 * 32), torch.randint(0, 10, (8,)))
    task = program_task(program, config.optimizer, capture.initial_tensors(model, program), data, steps=2, k=1, seed=1).task
    assert program_unjudgeable_reason(program, task) is None


@pytest.mark.parametrize("picked, features", [((slice(None, None, 2),), 8), ((slice(1, None, 3),), 5),
                                              ((slice(2, 13, 4),), 3), ((slice(None, None, 5),), 4)])
def test_export__the_gradient_of_a_strided_slice_is_eager_s_bits(picked, features):
    torch.manual_seed(0)
    model = _Applying(lambda h: h[(slice(None), *picked)])
    model.head = nn.Linear(features, 10)
    _, steps = _program_and_eager_steps(model, 5, input_shape=(8,))
    for ours, eager_loss, state, eager_state in steps:
        assert torch.equal(ours, eager_loss) and all(torch.equal(a, b) for a, b in zip(state, eager_state))


class _Recurrent(nn.Module):
    def __init__(self, kind: str, **options) -> None:
        super().__init__()
        self.rnn = getattr(nn, kind)(8, 16, batch_first=True, **options)
        self.head = nn.Linear(16 * (2 if options.get("bidirectional") else 1), 10)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


RECURRENT = {"lstm": ("LSTM", {}), "lstm-2-layers": ("LSTM", {"num_layers": 2}),
             "gru-bidirectional": ("GRU", {"bidirectional": True}), "rnn-relu": ("RNN", {"nonlinearity": "relu"})}


@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_export__recurrent_layers_train_as_eager_does(name):
    """nn.LSTM, nn.GRU and nn.RNN traced in PyTorch's composite form (matmuls, sigmoid, tanh and a
    stack of the steps as a cat), not oneDNN's fused CPU layer; eager runs the fused one."""
    kind, options = RECURRENT[name]
    torch.manual_seed(0)
    program, steps = _program_and_eager_steps(_Recurrent(kind, **options), 10)
    assert "cat" in {node.op for node in program.nodes}
    assert torch.backends.mkldnn.enabled  # the switch is back
    _close_to_eager(steps)


def test_export__an_lstm_s_dropout_between_layers_draws_its_masks_from_the_task_seed():
    program = export_program(_Recurrent("LSTM", num_layers=2, dropout=0.2), ExportConfig(4, (5, 8)))
    assert "bernoulli" in {node.op for node in program.nodes}


@pytest.mark.parametrize("layer, features, message", [
    (nn.AvgPool2d(3, 2, ceil_mode=True), 64, "ceil_mode adding a partial window"),
    (nn.AdaptiveAvgPool2d(3), 36, r"adaptive_avg_pool2d from \[8, 8\] to \[3, 3\]"),
    (nn.AdaptiveMaxPool2d(3), 36, r"adaptive_max_pool2d from \[8, 8\] to \[3, 3\]"),
    (nn.LocalResponseNorm(2), 256, r"aten.avg_pool3d.default is not in the verifiable op set .* at "
     r"torch/nn/modules/normalization.py:\d+: return F.local_response_norm"),
    (nn.InstanceNorm2d(4, track_running_stats=True), 256, "InstanceNorm2d with track_running_stats"),
])
def test_export__a_layer_no_rewrite_expresses_is_refused_in_one_line(layer, features, message):
    with pytest.raises(GraphError, match=message) as error:
        export_program(_after_a_convolution(layer, features), ExportConfig(4, (2, 8, 8)))
    assert "\n" not in str(error.value)


class _Applying(nn.Module):
    """A linear layer, ``function`` of its output, a linear head."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function
        self.inner, self.head = nn.Linear(8, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.function(self.inner(x)))


#: tensor functions eager PyTorch runs as kernels the op set has no node of its own for
FUNCTIONS = {
    "pow-5": lambda h: h.pow(5), "pow-minus-2": lambda h: (h.abs() + 1).pow(-2), "pow-1.5": lambda h: h.abs().pow(1.5),
    "pow-0": lambda h: h**0 + h, "normalize": lambda h: F.normalize(h, dim=1),
    "l1-norm": lambda h: h / h.norm(p=1, dim=1, keepdim=True),
    "max-norm": lambda h: h / torch.linalg.vector_norm(h, float("inf")),
    "var": lambda h: h / (h.var(1, keepdim=True, correction=0) + 1), "std": lambda h: h / h.std(),
    "var-mean": lambda h: (lambda v, m: (h - m) / (v + 1).sqrt())(*torch.var_mean(h, 1, keepdim=True)),
    "std-mean": lambda h: (lambda v, m: h + (v * m).unsqueeze(1))(*torch.std_mean(h, 1)),
    "logsumexp": lambda h: h - torch.logsumexp(h, 1, keepdim=True), "amin": lambda h: h - h.amin(1, keepdim=True),
    "isinf": lambda h: torch.where(torch.isinf(h) | (h == float("-inf")), 0.0, h),
    "max-over-a-dim": lambda h: h - h.max(dim=1, keepdim=True).values, "min-over-a-dim": lambda h: h + torch.min(h, 0)[0],
    "max-of-all": lambda h: h / torch.max(h.abs()), "min-of-all": lambda h: h - h.min(),
    "pad-and-crop": lambda h: F.pad(h, (2, -2), value=0.5), "glu": lambda h: torch.cat([F.glu(h, 1)] * 2, 1),
    "eye": lambda h: h @ (torch.eye(16) * 2), "threshold": lambda h: F.threshold(h, 0.1, 2.0),
    "hardshrink": lambda h: F.hardshrink(h, 0.2), "softshrink": lambda h: F.softshrink(h, 0.2),
    "clamp-by-tensors": lambda h: torch.clamp(h, min=h.mean(1, keepdim=True), max=torch.full((16,), 0.3)),
    "exp2-log2-log10-erfc": lambda h: torch.exp2(h) + torch.log2(h.abs() + 1) + torch.log10(h.abs() + 1) + torch.erfc(h),
    "flip": lambda h: h * h.flip(1), "roll": lambda h: h * torch.roll(h, (1, -3), (0, 1)),
    "roll-flat": lambda h: h + torch.roll(h, 5), "cumsum": lambda h: torch.cumsum(h, 1) / 16,
    "rot90-fliplr": lambda h: (h.reshape(-1, 4, 4).rot90(1, [1, 2]) + h.reshape(-1, 4, 4).fliplr()).reshape(-1, 16),
    "bilinear": lambda h: F.bilinear(h, h.flip(1), torch.linspace(-1, 1, 16 ** 3).reshape(16, 16, 16) / 16),
    "list-index": lambda h: h[:, [0, 3, 3, 7] * 4], "tensor-index": lambda h: h[:, torch.arange(15, -1, -1)] * h,
    "mask-index": lambda h: h[:, torch.arange(16) % 2 == 0].repeat(1, 2), "index-negative": lambda h: h[:, [-1, 0] * 8],
    "index-select": lambda h: torch.index_select(h, 1, torch.tensor([1, 2] * 8)),
    "index-by-data": lambda h: h[:, (h.detach().abs() * 4).long().clamp(0, 15)[0]],
    "gather": lambda h: torch.gather(h, 1, (torch.arange(16) * 5 % 16).expand(h.shape[0], 16)),
    "gather-by-data": lambda h: torch.gather(h, 1, (h.detach().abs() * 4).long().clamp(0, 15)),
    "take-along-dim": lambda h: torch.take_along_dim(h.reshape(-1, 4, 4), torch.tensor([[[3], [0], [1], [1]]]), 2)
                                .expand(-1, 4, 4).reshape(-1, 16),
    "tril-triu": lambda h: (torch.tril(h.reshape(-1, 4, 4)) + torch.triu(h.reshape(-1, 4, 4), 1) * 2).reshape(-1, 16),
    "diagonal": lambda h: torch.diagonal(h.reshape(-1, 4, 4), dim1=1, dim2=2).repeat(1, 4),
    "unfold-windows": lambda h: torch.cat([h.unfold(1, 4, 2).mean(-1), h[:, :9]], 1),
    "prod": lambda h: h * torch.prod(torch.sigmoid(h) + 0.5, 1, keepdim=True) + torch.sigmoid(h).prod(),
    "prod-with-zeros": lambda h: torch.relu(h).reshape(-1, 4, 4).prod(dim=2).repeat(1, 4),
    "cumprod": lambda h: torch.cumprod(torch.sigmoid(h) + 0.5, 1) + torch.tanh(h).cumprod(dim=0),
    "index-pair": lambda h: h.reshape(-1, 4, 4)[torch.tensor([0, 1]), torch.tensor([[2], [3]])].reshape(1, -1) * h,
    "index-pair-by-data": lambda h: h + h[torch.arange(h.shape[0]), (h.detach().abs() * 4).long().clamp(0, 15)[:, 0]]
                                    .unsqueeze(1),
}


@pytest.mark.parametrize("dim", [0, None])
def test_export__weight_normalisation_trains_as_eager_does(dim):
    """``weight_norm``'s parametrization calls a fused kernel; before autograd it is v·g/‖v‖."""
    torch.manual_seed(0)
    norm = nn.utils.parametrizations.weight_norm
    model = nn.Sequential(norm(nn.Linear(5, 16), dim=dim), nn.ReLU(), norm(nn.Linear(16, 10)))
    _, steps = _program_and_eager_steps(model, 10, input_shape=(5,))
    _close_to_eager(steps)


def test_export__lookups_by_data_indices_compute_nothing_with_integers_and_integer_arithmetic_is_refused():
    """A gather or an index by data-dependent positions compares them with constants (a gather's
    one-hot rows) or looks them up; integers are never added or multiplied in a program, as the
    judge has no rule for it: a model that does is refused, naming the op and its line."""
    torch.manual_seed(0)
    for function in (FUNCTIONS["gather-by-data"], FUNCTIONS["index-by-data"], FUNCTIONS["index-negative"],
                     FUNCTIONS["index-pair-by-data"]):
        program = export_program(_Applying(function), ExportConfig(4, (8,)))
        integer = {node.op for node in program.nodes if node.dtype in ("i64", "bool") and node.op not in LEAVES}
        assert integer <= {"cast", "maximum", "minimum", "view", "eq", "where"}, integer
    with pytest.raises(GraphError, match=r"aten.add.Tensor on integers is not in the verifiable op set .* at "
                                         r"test_ml_program.py:\d+: "):
        export_program(_Applying(lambda h: h[:, (h.detach().abs() * 3).long() + 1][:, 0]), ExportConfig(4, (8,)))


class _Bagged(nn.Module):
    """Bags of 6 token ids (from the features) through an ``nn.EmbeddingBag``, then a linear head."""

    def __init__(self, **options) -> None:
        super().__init__()
        self.bag, self.head = nn.EmbeddingBag(20, 8, **options), nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.bag((x.abs() * 7).long().clamp(0, 19)))


@pytest.mark.parametrize("options", [{"mode": "mean"}, {"mode": "sum"}, {"mode": "max"}, {"padding_idx": 0}],
                         ids=["mean", "sum", "max", "mean-padding"])
def test_export__an_embedding_bag_of_fixed_bags_is_lookups_and_a_reduction_as_eager_trains(options):
    torch.manual_seed(0)
    program, steps = _program_and_eager_steps(_Bagged(**options), 10, input_shape=(6,))
    assert "embedding" in {node.op for node in program.nodes}
    _close_to_eager(steps)


def test_export__the_indices_of_a_max_over_a_dim_are_refused_where_read():
    with pytest.raises(GraphError, match="argmax"):
        export_program(_Applying(lambda h: h * h.max(1, keepdim=True).indices), ExportConfig(4, (8,)))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_export__tensor_functions_without_a_node_of_their_own_train_as_eager_does(name):
    """Whole powers as products (by squaring), others as exp(p·log x); norms, variances and
    logsumexp as sums (torch's decompositions or ours); comparisons with ±inf as ones with ±max;
    flips and rolls as lookups of constant indices, running sums as products with a triangle of
    ones, a bilinear form as an einsum; indexing by one tensor, index_select and gather as lookups
    or one-hot products (constant or data indices), their gradients the lookups' sums or the
    transposed products, x[rows, cols] as one-hot products; products and running products as
    trees and scans of products; tril/triu as a constant mask;
    diagonal and unfold views, their gradients the sums at the view's positions."""
    torch.manual_seed(0)
    _, steps = _program_and_eager_steps(_Applying(FUNCTIONS[name]), 10, input_shape=(8,))
    _close_to_eager(steps)


def _batch_norm_net(affine: bool = True) -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8, affine=affine), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 40), nn.BatchNorm1d(40, momentum=0.3), nn.ReLU(),
                         nn.Linear(40, 10))


@pytest.mark.parametrize("affine", [True, False])
def test_export__batch_norm_trains_as_a_plain_torch_loop_and_keeps_its_running_statistics_as_state(affine):
    """The batch's moments as sums, and the running mean and (unbiased) variance returned by the
    step as ``stat`` state (from the initial weights): against torch's own BatchNorm and SGD."""
    torch.manual_seed(0)
    model = _batch_norm_net(affine)
    optimizer = OptimizerConfig("sgd", 0.05, momentum=0.9)
    config = ExportConfig(16, (2, 8, 8), optimizer=optimizer)
    program = Program.from_bytes(export_program(model, config).to_bytes())
    stats = [slot.name for slot in program.state if slot.kind == "stat"]
    assert stats == ["1.running_mean", "1.running_var", "6.running_mean", "6.running_var"]
    assert isinstance(model[1], nn.BatchNorm2d)  # the export worked on a copy
    weights = capture.initial_tensors(model, program)
    assert torch.equal(weights["1.running_var"], torch.ones(8))
    state = [weights[slot.name] if slot.kind != "buffer" else torch.zeros(slot.shape) for slot in program.state]
    plain = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = _batch(config, torch.Generator().manual_seed(1))
    executor, losses = ProgramExecutor(program), []
    with execution_context(1):
        for step in range(15):
            result = executor.run(state, x, y, optimizer.hyper_table(15)[step])
            state = result.state
            loss = F.cross_entropy(model(x.reshape(16, 2, 8, 8)), y)
            plain.zero_grad()
            loss.backward()
            plain.step()
            losses.append((float(result.loss), loss.item()))
    assert losses[-1][0] < 0.5 * losses[0][0]
    assert max(abs(ours - theirs) for ours, theirs in losses) < 1e-5
    ours = dict(zip((slot.name for slot in program.state), state))
    theirs = dict(model.named_parameters()) | dict(model.named_buffers())
    for name in [*stats, *(n for n, _ in model.named_parameters())]:
        assert torch.allclose(ours[name], theirs[name].detach(), rtol=1e-4, atol=1e-5), name
    assert float((ours["6.running_var"] - 1).abs().max()) > 0.1  # the statistics moved


class _Pooled(nn.Module):
    """A convolution whose features are averaged over 144 pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


#: (model, config, fused kernels that reduce over more than 64 terms and must be written as sums)
LONG_SUMS = {
    "gpt-positions": (lambda: GPT(50, 24, 32, 4, 1), ExportConfig(4, (24,), loss="lm_cross_entropy", optimizer=ADAMW),
                      {"embedding_grad", "nll_loss", "nll_loss_weight", "layer_norm_grad_weight"}),
    "layer-norm-96": (lambda: nn.Sequential(nn.Linear(16, 96), nn.LayerNorm(96), nn.GELU(), nn.Linear(96, 10)),
                      ExportConfig(8, (16,), optimizer=ADAMW),
                      {"layer_norm", "layer_norm_mean", "layer_norm_rstd", "layer_norm_grad_input"}),
    "cnn-batch": (lambda: CNN(1, 8, 8, 10), ExportConfig(16, (1, 8, 8)), {"group_norm", "group_norm_mean", "group_norm_rstd"}),
    "pooled": (_Pooled, ExportConfig(8, (1, 12, 12)), {"mean"}),
}


@pytest.mark.parametrize("name", sorted(LONG_SUMS))
def test_export__reductions_longer_than_the_judge_reads_are_written_as_sums_the_game_dissects(name):
    """Over more than 64 terms the fused kernels give way to sums (and one-hot matmuls), which the
    dispute game dissects: the program has none of them, trains like the eager step within float
    noise, and a task of it is judgeable; at 64 terms or fewer the fused kernels stay."""
    make, config, fused = LONG_SUMS[name]
    torch.manual_seed(0)
    model = make()
    program = export_program(model, config)
    assert not fused & _long_ops(program)
    task = type("Task", (), {"checkpoint_interval": 1, "steps": 2, "dataset_rows": 64})()
    assert program_unjudgeable_reason(program, task) is None
    executor, eager = ProgramExecutor(program), _step_function(model, [n for n, _ in model.named_parameters()], {}, config)
    ours = theirs = _initial_state(model, config)
    generator = torch.Generator().manual_seed(1)
    with execution_context(1):
        for step in range(3):
            x, y = _batch(config, generator)
            hyper = config.optimizer.hyper_table(3)[step]
            result = executor.run(ours, x, y, hyper)
            *theirs, loss = eager(*theirs, x, y, hyper)
            ours = result.state
            assert abs(float(result.loss) - float(loss)) < 1e-5
            assert max(float((a - b).abs().max()) for a, b in zip(ours, theirs)) < 1e-3
    if name == "gpt-positions":  # 16 positions a batch
        short = export_program(make(), ExportConfig(1, (16,), loss=config.loss, optimizer=config.optimizer))
        assert fused <= {n.op for n in short.nodes}


def _long_ops(program: Program) -> set[str]:
    """Ops of the nodes with an element that reads more than 64 terms of one input."""
    return {n.op for n in program.nodes if n.op not in LEAVES
            and any(len(flat) > 64 for _, flat in R.element_inputs(n, [program.nodes[i] for i in n.inputs], 0))}


def test_position_sums__equal_the_fused_kernels_within_float_noise():
    """Each rewrite against the ATen kernel it replaces, on its edge cases: a padding row, an
    ignored target inside the classes and one outside, both reductions, LayerNorm without affine."""
    g = torch.Generator().manual_seed(0)
    close = lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-6)  # noqa: E731
    grad, ids = torch.randn(5, 20, 8, generator=g), torch.randint(0, 7, (5, 20), generator=g)
    for padding in (-1, 3):
        ours = rewrites._embedding_grad_by_matmul(grad, ids, 7, padding, False)
        assert close(ours, aten_embedding_grad(grad, ids, 7, padding)) and (padding < 0 or not ours[padding].any())
    logp, target = torch.randn(100, 9, generator=g).log_softmax(-1), torch.randint(0, 9, (100,), generator=g)
    for ignore in (-100, 2):
        for reduction in (1, 2):
            loss, total = rewrites._nll_loss_by_sums(logp, target, None, reduction, ignore)
            want, want_total = torch.ops.aten.nll_loss_forward.default(logp, target, None, reduction, ignore)
            assert close(loss, want) and torch.equal(total, want_total)
    x = torch.randn(4, 30, 80, generator=g) * 3 + 1
    for affine in (True, False):
        w, b = (torch.randn(80, generator=g), torch.randn(80, generator=g)) if affine else (None, None)
        out, mean, rstd = torch.ops.aten.native_layer_norm.default(x, [80], w, b, 1e-5)
        ours = rewrites._layer_norm_by_sums(x, [80], w, b, 1e-5)
        assert all(close(a, c) for a, c in zip(ours, (out, mean, rstd)))
        go = torch.randn(4, 30, 80, generator=g)
        want = torch.ops.aten.native_layer_norm_backward.default(go, x, [80], mean, rstd, w, b, [True, affine, affine])
        ours = rewrites._layer_norm_backward_by_sums(go, x, [80], mean, rstd, w, b, [True, affine, affine])
        assert all(a is None and c is None or close(a, c) for a, c in zip(ours, want))
    images = torch.randn(3, 8, 5, 5, generator=g)
    w, b = torch.randn(8, generator=g), torch.randn(8, generator=g)
    want = torch.ops.aten.native_group_norm.default(images, w, b, 3, 8, 25, 2, 1e-5)
    assert all(close(a, c) for a, c in zip(rewrites._group_norm_by_sums(images, w, b, 3, 8, 25, 2, 1e-5), want))
    assert close(rewrites._mean_by_sum(images, [1, 2, 3]), images.mean((1, 2, 3)))
    assert rewrites._mean_by_sum(images, [2, 3]) is NotImplemented  # 25 terms: the fused kernel


def aten_embedding_grad(grad, ids, count, padding):
    return torch.ops.aten.embedding_dense_backward.default(grad, ids, count, padding, False)


def test_work__matmul_flops_of_an_mlp_step_are_exact():
    """Forward 2·B·Σ(in·out); backward twice that, minus the unneeded input gradient of layer 1."""
    torch.manual_seed(0)
    program = export_program(MLP(20, (30,), 5), ExportConfig(8, (20,)))
    matmuls = sum(OPS[n.op].flops(n, [program.nodes[i] for i in n.inputs])
                  for n in program.nodes if n.op in ("mm", "addmm"))
    layers = 20 * 30 + 30 * 5
    assert matmuls == 2 * 8 * layers * 3 - 2 * 8 * 20 * 30
    assert program.work()["flops"] > matmuls


def test_optimizer__schedule_warmup_then_cosine_and_bias_corrections():
    config = OptimizerConfig("adam", 1.0, schedule="cosine", warmup_steps=4, min_lr_ratio=0.1)
    table = config.hyper_table(104)
    assert table[:4, 0].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert table[54, 0].item() == pytest.approx(0.55, abs=1e-6)
    assert table[103, 0].item() == pytest.approx(0.1, abs=1e-3)
    assert table[0, 1].item() == pytest.approx(10.0, rel=1e-6)
    assert table[0, 2].item() == pytest.approx(1 / 0.001**0.5, rel=1e-6)
    assert OptimizerConfig("sgd", 0.5, schedule="step", step_size=10, gamma=0.5).lr_at(25, 100) == 0.125


def test_optimizer__bad_config_is_refused():
    with pytest.raises(Exception, match="unknown optimizer"):
        OptimizerConfig("lion")
    with pytest.raises(Exception, match="lr"):
        OptimizerConfig("sgd", float("nan"))


def test_ops__codes_are_unique_bytes_and_shared_with_the_judge():
    from offchain.dispute.judge import OP_CODES

    check_ops_table()
    for name, code in OP_CODES.items():
        if name in OPS:
            assert OPS[name].code == code


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_safe_softmax__the_kernel_gives_the_bits_of_aten_safe_softmax_on_any_row(dtype):
    """The kernel runs the plain softmax and falls back to ``_safe_softmax`` only when a row comes
    out NaN: rows all -inf (zeros), rows with NaN or +inf (NaN) and causal rows are its bits."""
    kernel = OPS["safe_softmax"].build(Node(0, "safe_softmax", "f32", (0,), (6, 8), (1,)))
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    z = z + torch.full((8, 8), float("-inf"), dtype=dtype).triu(1)[:6]
    assert torch.equal(kernel([z]), torch.ops.aten._safe_softmax(z, 1))
    z[1] = float("-inf")
    z[2, 3], z[3, 0], z[4, 0] = float("nan"), float("inf"), float("-inf")
    expected = torch.ops.aten._safe_softmax(z, 1)
    assert torch.equal(expected[1], torch.zeros(8, dtype=dtype))
    assert torch.equal(kernel([z]).nan_to_num(7.0), expected.nan_to_num(7.0))


def test_text_dataset__real_text_shipped_with_python_in_byte_rows():
    from offchain.ml.artifacts import text_corpus, text_dataset

    data = text_dataset(32)
    corpus = text_corpus()
    assert len(corpus) > 400_000 and b"assert" in corpus
    assert data.x.shape == (len(corpus) // 33, 33)
    assert bytes(data.x[0].to(torch.uint8).tolist()) == corpus[:33]
    assert text_dataset(32).x.equal(data.x)


def test_executor_float64__an_honest_variant_close_to_float32_but_not_bitwise(family):
    """Per-node float64 evaluation rounded to float32: the verifier's honest perturbation."""
    _name, model, config, program = family
    state = _initial_state(model, config)
    x, y = _batch(config, torch.Generator().manual_seed(5))
    hyper = config.optimizer.hyper_table(1)[0]
    with execution_context(1):
        narrow = ProgramExecutor(program).run(state, x, y, hyper)
        wide = ProgramExecutor(program, precision="float64").run(state, x, y, hyper)
    assert all(t.dtype == torch.float32 for t in wide.state)
    gaps = [float((a - b).abs().max()) for a, b in zip(narrow.state, wide.state)]
    assert 0 < max(gaps) < 1e-3
    assert abs(float(narrow.loss) - float(wide.loss)) < 1e-4


class _WithDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 64)
        self.b = nn.Linear(64, 3)

    def forward(self, x):
        return self.b(F.dropout(F.relu(self.a(x)), 0.25))


def test_dropout__masks_come_from_the_step_key_and_the_element_index():
    from offchain.ml.ops import bernoulli_element
    from offchain.ml.program import step_key

    torch.manual_seed(0)
    model = _WithDropout()
    config = ExportConfig(32, (16,), optimizer=OptimizerConfig("sgd", 0.1))
    program = Program.from_bytes(export_program(model, config).to_bytes())
    [mask] = [n for n in program.nodes if n.op == "bernoulli"]
    assert mask.shape == (32, 64) and mask.attrs[1] == round(0.75 * 2**32)
    executor = ProgramExecutor(program)
    state = _initial_state(model, config)
    x, y = torch.randn(32, 16), torch.randint(0, 3, (32,))
    hyper = config.optimizer.hyper_table(1)[0]
    with pytest.raises(GraphError, match="step_key"):
        executor.run(state, x, y, hyper)
    traces = [executor.run(state, x, y, hyper, keep_trace=True, rng=step_key(7, step)).trace for step in (0, 0, 1)]
    first, again, other = (trace[mask.id] for trace in traces)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert 0.70 < float(first.mean()) < 0.80
    key = step_key(7, 0)
    for index in (0, 1, 777, 32 * 64 - 1):
        assert first.flatten()[index].item() == bernoulli_element(key, mask.attrs[0], mask.attrs[1], index)
    from offchain.dispute import judge, program_rules

    rng = program.nodes[mask.inputs[0]]
    for index in (5, 900):
        assert program_rules.element_inputs(mask, [rng], index) == [(0, [0])]
        honest = judge.f32_bits(first.flatten()[index].item())
        assert program_rules.check(mask, [rng], index, [[key]], honest)
        assert not program_rules.check(mask, [rng], index, [[key]], judge.f32_bits(1.0) ^ honest)
    active = traces[0][next(n.id for n in program.nodes if n.op == "relu")]
    assert float((active * (1 - first)).abs().sum()) > 0  # active units were dropped
    losses = []
    for step in range(60):
        result = executor.run(state, x, y, hyper, rng=step_key(7, step))
        state = result.state
        losses.append(float(result.loss))
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
