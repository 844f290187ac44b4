"""The `dtm` command: accounts, and clear errors for what a user can get wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from click.testing import CliRunner

from offchain.cli import main


def _run(tmp_path, *args, env=None):
    return CliRunner().invoke(main, ["--home", str(tmp_path), *args], env={"DTM_PASSWORD": "hunter2", **(env or {})})


def test_account_new_list_and_keystore_is_encrypted(tmp_path):
    created = _run(tmp_path, "account", "new", "alice")
    assert created.exit_code == 0, created.output
    name, address = created.output.split()[:2]
    listed = _run(tmp_path, "account", "list")
    assert listed.output.split() == [name, address]
    keystore = json.loads((tmp_path / "keystores" / "alice.json").read_text())
    assert "crypto" in keystore and (tmp_path / "keystores" / "alice.json").stat().st_mode & 0o077 == 0


def test_account_import__round_trips_the_key(tmp_path):
    from offchain import accounts

    key = "0x" + "11" * 32
    result = _run(tmp_path, "account", "import", "bob", env={"DTM_PRIVATE_KEY": key})
    assert result.exit_code == 0, result.output
    assert accounts.load(tmp_path, "bob", "hunter2").key.hex().removeprefix("0x") == key[2:]


def test_account__duplicate_bad_name_and_wrong_password__clear_errors(tmp_path):
    _run(tmp_path, "account", "new", "carol")
    assert "already exists" in _run(tmp_path, "account", "new", "carol").output
    assert "use letters" in _run(tmp_path, "account", "new", "../evil").output
    wrong = _run(tmp_path, "--account", "carol", "stake", "--role", "solver", "--amount", "1",
                 env={"DTM_PASSWORD": "wrong"})
    assert wrong.exit_code != 0 and "wrong password" in wrong.output


def test_dead_rpc__clear_error_after_retries(tmp_path):
    result = _run(tmp_path, "--rpc", "http://127.0.0.1:9", "task", "status", "1")
    assert result.exit_code != 0
    assert "RPC unreachable" in result.output


def test_deployment_without_a_game_checker__names_it_and_says_to_deploy_again():
    from web3 import Web3

    from offchain.chain.client import GAME_CHECKERS, Market
    from offchain.chain.deployment import Deployment, DeploymentNotFound

    address = "0x" + "11" * 20
    contracts = {name: address for name in ("Market", "Arbiter", *GAME_CHECKERS)}
    assert Market(Web3(), Deployment(1, 0, contracts)).program_links is not None
    del contracts["ProgramLinkChecker"]
    with pytest.raises(DeploymentNotFound, match="lacks the game's ProgramLinkChecker .* deploy the suite again"):
        Market(Web3(), Deployment(1, 0, contracts))
    assert Market(Web3(), Deployment(1, 0, {"Market": address, "Arbiter": address}, "ManualArbiter")).programs is None


def test_missing_account__usage_error(tmp_path):
    result = _run(tmp_path, "--rpc", "http://127.0.0.1:9", "stake", "--role", "solver", "--amount", "1")
    assert result.exit_code != 0 and "--account" in result.output


def test_solver_run__corrupt_op_without_the_element_cheat__usage_error_before_any_network(tmp_path):
    result = _run(tmp_path, "--rpc", "http://127.0.0.1:9", "solver", "run", "--cheat", "skip", "--corrupt-op", "bmm")
    assert result.exit_code == 2 and "--corrupt-op goes with --cheat element" in result.output
    assert "RPC" not in result.output


def _csv(tmp_path, name: str, header: str, last) -> object:
    """50 rows: two features i % 7 and i % 3, then ``last(i % 7, i % 3)``."""
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(f"{i % 7},{i % 3},{last(i % 7, i % 3)}" for i in range(50)) + "\n")
    return path


def _pets_csv(tmp_path):
    return _csv(tmp_path, "pets.csv", "a,b,kind", lambda a, b: ("cat", "dog", "bird")[(a + b) % 3])


def test_task_post__own_csv__nothing_is_uploaded_before_the_chain_checks_pass(tmp_path):
    from offchain.ml import load_dataset
    from offchain.storage import LocalStore
    from offchain.storage.errors import ContentNotFound

    csv = _pets_csv(tmp_path)
    result = _run(tmp_path, "task", "post", "--data", str(csv), "--hidden", "4", "--steps", "8", "--k", "4",
                  "--batch-size", "4")
    assert "data pets.csv: 45 training rows + 5 held-out, 2 features, 3 classes; labels bird=0, cat=1, dog=2" \
        in result.output
    assert "Error: choose an account" in result.output
    training = load_dataset(csv, holdout=0.1, seed=1).train.to_bytes()   # --seed 1 splits too
    cid = LocalStore(tmp_path / "elsewhere").add_bytes(training)
    with pytest.raises(ContentNotFound):
        LocalStore(tmp_path / "ipfs").cat(cid, timeout=1)


def test_task_post__data_options__one_line_errors(tmp_path):
    csv = _pets_csv(tmp_path)
    (tmp_path / "book.txt").write_text("a tiny book " * 20)
    for args, message in (
        (["--data", str(csv), "--dataset", "digits"], "--data and --dataset are mutually exclusive"),
        (["--holdout", "0.2"], "apply to --data only"),
        (["--data", str(csv), "--classes", "2"], "--classes 2: the data has labels up to 2"),
        (["--data", str(tmp_path / "book.txt"), "--seq-len", "15"], "token data needs a sequence model"),
        (["--data", str(tmp_path / "book.txt")], "give a sequence length (--seq-len)"),
    ):
        result = _run(tmp_path, "task", "post", *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output


MODEL_FILE = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, hidden), nn.Tanh(), nn.Linear(hidden, 3))

    def forward(self, x):
        return self.body(x.flatten(1))
'''


def test_model_export_then_quote__own_model_file(tmp_path):
    from offchain.ml.program import Program

    source = tmp_path / "my_model.py"
    source.write_text(MODEL_FILE)
    program_file = tmp_path / "net.json"
    result = _run(tmp_path, "model", "export", f"{source}:Net", "--kwargs", '{"hidden": 16}', "--input-shape",
                    "3,4", "--optimizer", "adamw", "--lr", "0.01", "--schedule", "cosine", "--warmup-steps", "5",
                    "--out", str(program_file), "--weights-out", str(tmp_path / "init.safetensors"))
    assert result.exit_code == 0, result.output
    program = Program.from_bytes(program_file.read_bytes())
    assert program.num_params() == 12 * 16 + 16 + 16 * 3 + 3
    assert f"graph root 0x{program.root.hex()}" in result.output
    assert (tmp_path / "init.safetensors").stat().st_size > 4 * program.num_params()
    quote = _run(tmp_path, "task", "quote", str(program_file), "--steps", "100", "--eth-per-tflop", "1000")
    assert quote.exit_code == 0, quote.output
    flops = program.work()["flops"]
    assert f"{flops * 100 / 1e12:.4f} TFLOP" in quote.output


def _prices_csv(tmp_path):
    return _csv(tmp_path, "prices.csv", "rooms,age,price", lambda rooms, age: rooms * 0.5 - age * 0.25 + 1)


def test_task_post__regression_csv__an_mlp_regressor_judgeable_before_the_chain(tmp_path):
    """--targets 1: the label column is a float target; the MLP preset becomes a regressor (one
    output, mean squared error) and passes the task's checks (the dispute game can judge it)
    before an account is asked for."""
    result = _run(tmp_path, "task", "post", "--data", str(_prices_csv(tmp_path)), "--targets", "1", "--hidden", "4",
                  "--steps", "8", "--k", "4", "--batch-size", "4")
    assert "data prices.csv: 45 training rows + 5 held-out, 2 features, 1 regression target" in result.output
    assert "Error: choose an account" in result.output, result.output


def test_regression__export_and_post_refuse_a_mismatched_kind_in_one_line__label_smoothing_recorded(tmp_path):
    from offchain.ml.program import Program

    source, csv = tmp_path / "my_model.py", _prices_csv(tmp_path)
    source.write_text(MODEL_FILE)
    export = ["model", "export", f"{source}:Net", "--input-shape", "12"]
    regressor, classifier = tmp_path / "regressor.json", tmp_path / "classifier.json"
    for out, extra in ((regressor, ["--loss", "mse", "--targets", "3"]), (classifier, ["--label-smoothing", "0.1"])):
        done = _run(tmp_path, *export, *extra, "--out", str(out), "--weights-out", str(out.with_suffix(".st")))
        assert done.exit_code == 0, done.output
    assert Program.from_bytes(regressor.read_bytes()).meta["targets"] == 3
    assert Program.from_bytes(classifier.read_bytes()).meta["label_smoothing"] == 0.1
    for args, message in (
        ([*export, "--targets", "2", "--out", str(tmp_path / "x.json")], "--targets applies to the regression losses"),
        ([*export, "--loss", "mse", "--targets", "2", "--out", str(tmp_path / "x.json")],
         "the model gives 3 values a row; the mse loss compares 2 targets"),
        ([*export, "--loss", "mse", "--targets", "3", "--label-smoothing", "0.1", "--out", str(tmp_path / "x.json")],
         "label smoothing 0.1: a cross-entropy loss takes a share in [0, 1)"),
        (["task", "post", "--data", str(csv), "--targets", "1", "--classes", "2"], "--classes: a regressor has one output"),
        (["task", "post", "--data", str(csv), "--targets", "1", "--program", str(classifier), "--weights",
          str(classifier.with_suffix(".st"))], "the program's cross_entropy loss takes labelled rows (no --targets); "
                                               "the data has --targets 1"),
        (["task", "post", "--data", str(csv), "--program", str(regressor), "--weights", str(regressor.with_suffix(".st"))],
         "the program's mse loss takes 3 regression targets a row (--targets 3); the data has labelled rows"),
    ):
        result = _run(tmp_path, *args)
        [error] = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert result.exit_code != 0 and message in error, (args, result.output)
        assert "Traceback" not in result.output


def test_model_export__a_model_file_imports_the_modules_beside_it(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "blocks_beside.py").write_text(
        "from torch import nn\n\nclass Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.inner = nn.Linear(12, 12)\n\n    def forward(self, x):\n        return x + self.inner(x).relu()\n")
    (tmp_path / "models" / "net.py").write_text(MODEL_FILE.replace("import torch\n", "import torch\nfrom blocks_beside import Block\n")
                                                .replace("nn.Sequential(", "nn.Sequential(Block(), "))
    result = _run(tmp_path, "model", "export", f"{tmp_path / 'models' / 'net.py'}:Net", "--input-shape", "12",
                  "--out", str(tmp_path / "net.json"))
    assert result.exit_code == 0, result.output
    assert "program " in result.output and "graph root 0x" in result.output


def test_model_export__batch_norm_and_elu__the_weights_carry_the_running_statistics(tmp_path):
    from offchain.ml.program import Program
    from offchain.ml.program_training import initial_weights

    source = tmp_path / "normed.py"
    normed = "nn.Linear(12, hidden), nn.BatchNorm1d(hidden), nn.ELU()"
    source.write_text(MODEL_FILE.replace("nn.Linear(12, hidden), nn.Tanh()", normed))
    program_file, weights_file = tmp_path / "net.json", tmp_path / "init.safetensors"
    result = _run(tmp_path, "model", "export", f"{source}:Net", "--input-shape", "12", "--out", str(program_file),
                  "--weights-out", str(weights_file))
    assert result.exit_code == 0, result.output
    program = Program.from_bytes(program_file.read_bytes())
    weights = initial_weights(program, weights_file.read_bytes())
    assert torch.equal(weights["body.1.running_var"], torch.ones(8)) and not weights["body.1.running_mean"].any()
    assert {slot.name for slot in program.state if slot.kind == "stat"} == {"body.1.running_mean", "body.1.running_var"}


def test_model_export__bad_reference_and_op_outside_the_set__one_line(tmp_path):
    missing = _run(tmp_path, "model", "export", "nothere.py:Net", "--input-shape", "3", "--out", str(tmp_path / "x"))
    assert missing.exit_code != 0 and "no model file nothere.py" in missing.output
    source = tmp_path / "sorting.py"
    source.write_text(MODEL_FILE.replace("return self.body(x.flatten(1))", "return self.body(x.flatten(1).sort().values)"))
    refused = _run(tmp_path, "model", "export", f"{source}:Net", "--input-shape", "12", "--out", str(tmp_path / "x"))
    assert refused.exit_code != 0
    assert "aten.sort" in refused.output and "sorting.py:" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


UNJUDGEABLE_MODEL = '''
from torch import nn

class Net(nn.Module):
    """A padded 1x1 convolution over 32 channels of 32x32 images: one read per 4 KiB plane."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 1), nn.ReLU(), nn.Conv2d(32, 2, 1, padding=1), nn.Flatten(),
                                  nn.Linear(2 * 34 * 34, 3))

    def forward(self, x):
        return self.body(x)
'''


def test_model_export__a_program_the_game_cannot_judge_is_written_with_a_one_line_warning(tmp_path):
    source = tmp_path / "wide.py"
    source.write_text(UNJUDGEABLE_MODEL)
    result = _run(tmp_path, "model", "export", f"{source}:Net", "--input-shape", "1,32,32", "--batch-size", "2",
                  "--out", str(tmp_path / "wide.json"))
    assert result.exit_code == 0 and (tmp_path / "wide.json").exists()
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "workers will not take it" in warning[0] and "spread over 32 leaves" in warning[0]
    (tmp_path / "mlp.py").write_text(MODEL_FILE)
    fine = _run(tmp_path, "model", "export", f"{tmp_path / 'mlp.py'}:Net", "--input-shape", "12",
                "--out", str(tmp_path / "mlp.json"))
    assert fine.exit_code == 0 and "warning:" not in fine.output


def test_task_post__program_options__one_line_errors_before_any_network(tmp_path):
    """A program comes with its weights, fixes its own model, batch and optimizer, and must fit the
    data and the chain's judge; each mistake is one line, nothing sent."""
    source = tmp_path / "my_model.py"
    source.write_text(MODEL_FILE)
    program, weights = tmp_path / "net.json", tmp_path / "init.safetensors"
    assert _run(tmp_path, "model", "export", f"{source}:Net", "--kwargs", '{"hidden": 16}', "--input-shape", "3,4",
                "--out", str(program), "--weights-out", str(weights)).exit_code == 0
    post = ("--dev-account", "1", "--rpc", "http://127.0.0.1:9", "task", "post", "--program", str(program))
    cases = [
        ((), "--program and --weights go together"),
        (("--weights", str(weights), "--lr", "0.5"), "--lr: a program fixes its own model, batch size and optimizer"),
        (("--weights", str(weights)), "the data has 64 features a row; the program takes 12"),
        (("--weights", str(program)), "header"),  # not a safetensors file
    ]
    for extra, message in cases:
        result = _run(tmp_path, *post, *extra)
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output and result.output.count("Error:") == 1


@pytest.mark.parametrize("args, message", [
    (["task", "post", "--hidden", "64", "--hidden=32"], "--hidden given 2 times; give it once"),
    (["task", "post", "--hidden", "64,x"], "Invalid value for --hidden: '64,x': give positive widths separated by commas"),
    (["task", "post", "--hidden", "64,0"], "Invalid value for --hidden: '64,0': give positive widths separated by commas"),
    (["task", "post", "--hidden", "3000000"], "Error: an MLP of widths 64-3000000-10 has 225,000,010 parameters: 858 MiB "
                                              "of weights, over the 512 MiB a file may hold"),
    (["--rpc", "foo://bar", "task", "post"], "RPC URL 'foo://bar' is not an http:// or https:// URL"),
    (["task", "post", "--payment", "-1"], "Invalid value for --payment: must be positive"),
    (["task", "post", "--train-window", "0"], "Invalid value for --train-window: must be positive"),
    (["task", "post", "--solver-stake", "-2"], "Invalid value for --solver-stake: must not be negative"),
])
def test_task_post__bad_options_fail_fast_in_one_line_before_any_network(tmp_path, args, message):
    started = time.monotonic()
    result = _run(tmp_path, "--dev-account", "1", *args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output and time.monotonic() - started < 5


def test_unexpected_error__one_line_unless_debug(tmp_path, monkeypatch):
    import offchain.ml.exporter as exporter

    source = tmp_path / "m.py"
    source.write_text(MODEL_FILE)
    program = tmp_path / "p.json"
    assert _run(tmp_path, "model", "export", f"{source}:Net", "--input-shape", "12", "--out", str(program)).exit_code == 0

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(exporter, "quote", broken)
    plain = _run(tmp_path, "task", "quote", str(program), "--steps", "3")
    assert plain.exit_code == 1
    assert plain.output == "Error: boom (RuntimeError; run with --debug for the traceback)\n"
    debug = _run(tmp_path, "--debug", "task", "quote", str(program), "--steps", "3")
    assert isinstance(debug.exception, RuntimeError)


def test_reader_closing_the_pipe__quiet_exit(tmp_path):
    """`dtm ... | head`: once the reader is gone the command stops without an error line."""
    network = tmp_path / "net.json"
    network.write_text(json.dumps({"devices": [{"name": "a", "flops": 1e14}, {"name": "b", "flops": 3e14}],
                                   "latency": [[0, 0.01], [0.01, 0]], "bandwidth": [[0, 1e8], [1e8, 0]]}))
    command = [sys.executable, "-c", "from offchain.cli import main; main()", "--home", str(tmp_path),
               "schedule", "--network", str(network), "--stages", "2", "--replicas", "1", "--trials", "10"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    proc.stdout.close()  # before the command has printed anything (its imports alone take longer)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert err == b""
