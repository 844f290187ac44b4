"""Your own model posted from the web app: a program exported by `dtm model export`, uploaded in the
page with its initial weights, posted, and the same task `publish_program_task` builds; a program
the page refuses, with its line, sending nothing; the price line against Python's work figures."""

from __future__ import annotations

import math
import re

import pytest
import torch

from offchain.ml import digits_dataset
from offchain.ml.artifacts import ALPHABET, save_tensors, text_dataset
from offchain.ml.demo import program_task
from offchain.ml.exporter import mlp_preset
from offchain.ml.models import MLP
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program import Program
from offchain.ml.program_training import initial_weights
from offchain.storage import KuboStore, compute_cid
from offchain.webapp import menu_token, preset_program
from offchain.workers.artifacts import check_program_task, fetch_task

pytestmark = pytest.mark.e2e

SUBMITTER, POSTER, REFUSER, PRESET, GPT_PRESET, GPT_SIZED = 1, 8, 7, 6, 9, 5


FLOPS = r"([\d.]+) (T|G|M|k|)FLOP"  # a figure of three significant digits and its unit


def flops_of(figure: str, unit: str) -> float:
    return float(figure) * {"T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3, "": 1}[unit]


def close(shown: float, exact: float) -> bool:
    return abs(shown / exact - 1) < 5e-3


def export(market_app, tmp_path, name: str, input_dim: int, hidden: int) -> tuple[str, str]:
    """net.json and init.safetensors, as a user exports them."""
    program, weights = tmp_path / f"{name}.json", tmp_path / f"{name}.safetensors"
    market_app.dtm("model", "export", "offchain.ml.models:MLP", "--kwargs",
                   f'{{"input_dim": {input_dim}, "hidden": [{hidden}], "classes": 10}}', "--input-shape", str(input_dim),
                   "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9",
                   "--out", str(program), "--weights-out", str(weights))
    return str(program), str(weights)


def test_a_program_posted_from_the_page_is_the_one_python_builds_and_checks(market_app, tmp_path):
    # a task of the MLP preset first, so the page has a recent rate: 1 ETH for its work
    market_app.dtm("--dev-account", str(SUBMITTER), "task", "post", "--steps", "40", "--k", "10", "--payment", "1")
    mlp_flops = mlp_preset(64, (32,), 10, batch_size=32, lr=0.1)[0].work()["flops"] * 40
    program_file, weights_file = export(market_app, tmp_path, "net", 64, 16)
    seen = market_app.browse("post_program", steps=40, k=10, program=program_file, weights=weights_file,
                             wallet=market_app.wallet(POSTER))
    assert seen["page_errors"] == []
    program = Program.from_bytes(open(program_file, "rb").read())
    flops = program.work()["flops"]
    summary = re.fullmatch(rf"net\.json: 1,210 parameters, {len(program.nodes)} nodes, {FLOPS} per step; "
                           r"batches of 8 rows of 64 features; sgd, lr 0\.1\.", seen["summary"])
    assert summary and close(flops_of(*summary.groups()), flops), seen["summary"]
    assert seen["mlp_fields_disabled"] is True
    assert seen["mlp_datasets"] == ["digits"] and seen["datasets"] == ["digits", "text"]  # your program: any
    # the price: the program's work × steps, at the rate the CLI's task paid (1 ETH for its work)
    shown = re.fullmatch(rf"Work: {FLOPS} a step × 40 steps = {FLOPS}\. Recent tasks paid ([\d.]+) ETH per "
                         r"TFLOP \(median of 1\): about ([\d.]+) ETH for this one\.", seen["price"])
    assert shown, seen["price"]
    assert close(flops_of(*shown.groups()[0:2]), flops) and close(flops_of(*shown.groups()[2:4]), flops * 40)
    assert close(float(shown[5]), 1e12 / mlp_flops) and close(float(shown[6]), flops * 40 / mlp_flops)
    assert seen["payment"] == shown[6]

    task_id, spec_cid = market_app.posted(seen, POSTER)
    view = market_app.market().task(task_id)
    assert seen["requests"].count("eth_sendTransaction") == 1

    # what `dtm task post --program net.json --weights init.safetensors --steps 40` publishes
    optimizer = OptimizerConfig.from_dict(program.meta["optimizer"])
    weights = initial_weights(program, open(weights_file, "rb").read())
    options = dict(steps=40, k=10, seed=1)
    check_program_task(program, optimizer, weights, digits_dataset(), **options)
    reference = program_task(program, optimizer, weights, digits_dataset(), **options, cid=compute_cid)
    assert spec_cid == compute_cid(reference.task.to_bytes())
    assert view.spec_hash == reference.task.hash()
    fetched = fetch_task(KuboStore(market_app.store_url), spec_cid, view.spec_hash)  # every artifact is there and checks
    assert fetched.task == reference.task and fetched.task.committed_graph_root == reference.task.committed_graph_root
    assert fetched.weights_bytes == reference.weights_bytes and fetched.spec_bytes == program.to_bytes()


# each model preset with its menus' choices (none: the first of each), the account posting it, its
# built-in dataset as Python builds it, its summary line's tail (the page waits for it)
TEXT = lambda: text_dataset(12, ALPHABET, 400)  # noqa: E731
PRESETS = {
    "CNN": ("CNN", None, PRESET, "digits", digits_dataset, "batches of 16 rows of 64 features; sgd, lr 0.05"),
    "GPT": ("GPT", None, GPT_PRESET, "text", TEXT, "batches of 4 rows of 13 tokens; adamw, lr 0.01"),
    "GPT-dim16-layers2-lr0.003": ("GPT", {"dim": 16, "layers": 2, "lr": 0.003}, GPT_SIZED, "text", TEXT,
                                  "batches of 4 rows of 13 tokens; adamw, lr 0.003"),
}


@pytest.mark.parametrize("case", PRESETS)
def test_a_model_preset_posted_from_the_page_is_the_exported_program_on_its_data_and_the_workers_take_it(
        market_app, case):
    """The page's CNN and GPT presets are `dtm model export` of presets.json, with the sizes and
    learning rate chosen from their menus, served next to the app; each is offered on its own
    dataset only (the GPT on the text, the CNN on the digits), and posted there it is the task
    Python builds, and the workers' check (`fetch_task`: every element judgeable) passes."""
    preset, choices, account, dataset, data, tail = PRESETS[case]
    menus = {key: menu_token(value) for key, value in (choices or {}).items()}
    seen = market_app.browse("post_program", preset=preset, menus=menus, summary_has=tail,
                             steps=30, k=10, unpriced=True, wallet=market_app.wallet(account))
    assert seen["page_errors"] == []
    assert seen["mlp_datasets"] == ["digits"] and seen["datasets"] == [dataset] and seen["dataset"] == dataset
    program_bytes, weights_bytes = preset_program(preset, choices)
    program = Program.from_bytes(program_bytes)
    params = sum(math.prod(slot.shape) for slot in program.state if slot.kind == "param")
    summary = re.fullmatch(rf"the {preset} preset: {params:,} parameters, {len(program.nodes)} nodes, "
                           rf"{FLOPS} per step; {re.escape(tail)}\.", seen["summary"])
    assert summary and close(flops_of(*summary.groups()), program.work()["flops"]), seen["summary"]
    assert seen["mlp_fields_disabled"] is True
    task_id, spec_cid = market_app.posted(seen, account)
    optimizer = OptimizerConfig.from_dict(program.meta["optimizer"])
    reference = program_task(program, optimizer, initial_weights(program, weights_bytes), data(), steps=30,
                             k=10, seed=1, cid=compute_cid)
    assert spec_cid == compute_cid(reference.task.to_bytes())
    fetched = fetch_task(KuboStore(market_app.store_url), spec_cid, market_app.market().task(task_id).spec_hash)
    assert fetched.task == reference.task and fetched.spec_bytes == program_bytes


def test_programs_the_page_refuses_each_say_why_and_send_nothing(market_app, tmp_path):
    program_file, weights_file = export(market_app, tmp_path, "narrow", 8, 4)
    torch.manual_seed(0)
    wrong = tmp_path / "wrong.safetensors"  # the weights of another width
    wrong.write_bytes(save_tensors({n: p.detach() for n, p in MLP(8, (5,), 10).named_parameters()}))
    before = market_app.market().call("task_count")
    seen = market_app.browse("refuse_program", program=program_file, weights=weights_file, wrong_weights=str(wrong),
                             wallet=market_app.wallet(REFUSER))
    assert seen["page_errors"] == []
    line = "wrong.safetensors: tensor layers.0.weight has shape [5,8]; the program's state needs [4,8]."
    assert seen["wrong_weights"] == seen["wrong_weights_posting"] == {"kind": "error", "text": line}
    assert seen["wrong_data"] == seen["wrong_data_posting"] == {"kind": "error", "text": "The data has 64 features a "
                                                                                       "row; the program takes 8."}
    assert "eth_sendTransaction" not in seen["requests"]
    assert market_app.market().call("task_count") == before
