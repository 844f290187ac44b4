"""How the web app is served: its files, config.json, the built-in datasets and presets, `dtm webapp
export`, and the store's CORS for the app's origin."""

from __future__ import annotations

import gzip
import http.client
import itertools
import json
import math

import pytest
import requests
import yaml
from click.testing import CliRunner

from offchain.cli import main
from offchain.ml import digits_dataset
from offchain.ml.artifacts import ALPHABET, Dataset, save_tensors, text_dataset
from offchain.ml.exporter import mlp_preset
from offchain.ml.optim import OptimizerConfig
from offchain.ml.program import Program
from offchain.ml.program_training import initial_weights
from offchain.node import free_port
from offchain.storage import serve
from offchain.webapp import (
    PRESETS,
    WebAppNotBuilt,
    app_config,
    app_origins,
    builtin_dataset,
    export,
    menu_token,
    preset_combinations,
    preset_menus,
    preset_program,
    serve_app,
)
from offchain.workers.artifacts import check_program_task

LOCAL = {"chain_id": 31337, "block": 5, "contracts": {"Market": "0x" + "11" * 20, "Arbiter": "0x" + "22" * 20},
         "arbiter_kind": "Arbitration", "extra": {}}
PUBLIC = {**LOCAL, "chain_id": 11155111, "block": 700}


@pytest.fixture
def dist(tmp_path):
    built = tmp_path / "dist"
    built.mkdir()
    (built / "index.html").write_text("<!doctype html><title>dtm</title>")
    (built / "app.js").write_text("console.log('app');" * 200)
    return built


@pytest.fixture
def deployments(tmp_path):
    directory = tmp_path / "deployments"
    directory.mkdir()
    (directory / "ethereum-sepolia.yaml").write_text(yaml.safe_dump(PUBLIC))
    (directory / "ethereum-local.yaml").write_text(yaml.safe_dump(LOCAL))
    return directory


def test_config_lists_every_deployment__served_chains_first_with_their_rpc(deployments):
    config = app_config({31337: "http://127.0.0.1:8545"}, "http://127.0.0.1:5001", deployments)
    assert config == {"ipfs_api": "http://127.0.0.1:5001", "deployments": [
        {"name": "ethereum-local", "chain_id": 31337, "block": 5, "rpc_url": "http://127.0.0.1:8545",
         "contracts": LOCAL["contracts"]},
        {"name": "ethereum-sepolia", "chain_id": 11155111, "block": 700, "rpc_url": None,
         "contracts": PUBLIC["contracts"]},
    ]}


def test_server_serves_the_files_gzipped_and_the_config__nothing_outside_dist(dist, deployments):
    config = app_config({}, None, deployments)
    app = serve_app(config, port=0, dist=dist)
    try:
        index = requests.get(app.url)
        assert index.status_code == 200 and index.text.startswith("<!doctype html>")
        assert index.headers["Content-Type"] == "text/html; charset=utf-8"
        raw = requests.get(app.url + "app.js", headers={"Accept-Encoding": "gzip"}, stream=True).raw.read()
        assert gzip.decompress(raw) == (dist / "app.js").read_bytes() and len(raw) < 200
        assert requests.get(app.url + "app.js", headers={"Accept-Encoding": "identity"}).content == (dist / "app.js").read_bytes()
        assert requests.get(app.url + "config.json").json() == json.loads(json.dumps(config))
        host, port = app.httpd.server_address[:2]
        for outside in ("/../deployments/ethereum-local.yaml", "/%2e%2e/deployments/ethereum-local.yaml", "/missing.js"):
            connection = http.client.HTTPConnection(host, port)  # sends the path as written
            connection.request("GET", outside)
            assert connection.getresponse().status == 404
            connection.close()
    finally:
        app.close()


def test_not_built_says_how_to_build(tmp_path):
    with pytest.raises(WebAppNotBuilt, match=r"run `make install`"):
        serve_app({}, port=0, dist=tmp_path / "nothing")


def test_export_writes_static_files_with_the_config(dist, deployments, tmp_path):
    out = export(tmp_path / "site", app_config({}, "https://ipfs.example", deployments), dist=dist)
    assert (out / "index.html").read_bytes() == (dist / "index.html").read_bytes()
    assert json.loads((out / "config.json").read_text())["ipfs_api"] == "https://ipfs.example"


def test_store_answers_the_apps_origin_and_refuses_others(tmp_path):
    web_port = free_port()
    with serve(str(tmp_path / "ipfs"), port=0, cors_origins=app_origins(web_port)) as store:
        for origin in app_origins(web_port):
            preflight = requests.options(f"{store.url}/api/v0/add", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert preflight.status_code == 200
            assert preflight.headers["Access-Control-Allow-Origin"] == origin
            assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
            assert preflight.headers["Vary"] == "Origin"
            added = requests.post(f"{store.url}/api/v0/add", files={"file": b"hello world\n"}, headers={"Origin": origin})
            assert added.json()["Hash"] == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
            assert added.headers["Access-Control-Allow-Origin"] == origin
        other = {"Origin": f"http://127.0.0.1:{web_port + 1}"}
        assert requests.options(f"{store.url}/api/v0/add", headers=other).status_code == 403
        refused = requests.post(f"{store.url}/api/v0/add", files={"file": b"x"}, headers=other)
        assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


def test_every_preset_the_app_offers_is_a_task_the_dispute_game_can_judge():
    presets = json.loads(PRESETS.read_text())
    intervals = presets["mlp"]["checkpoint_interval"]
    for name in presets["mlp"]["datasets"]:
        data = Dataset.from_bytes(builtin_dataset(name))
        for hidden, batch in itertools.product(presets["mlp"]["hidden"], presets["mlp"]["batch_size"]):
            program, optimizer, weights = mlp_preset(data.input_dim, (hidden,), int(data.y.max()) + 1,
                                                     batch_size=batch, lr=0.1)
            for k in intervals:
                check_program_task(program, optimizer, weights, data, steps=10 * k, k=k, seed=1)
    assert presets["programs"].keys() == {"CNN", "GPT"}
    for name, preset in presets["programs"].items():  # the presets exported as programs, on their data,
        data = Dataset.from_bytes(builtin_dataset(preset["dataset"]))  # each combination of their menus, every interval
        for choices in preset_combinations(name).values():
            program_bytes, weights = preset_program(name, choices)
            program = Program.from_bytes(program_bytes)
            for k in intervals:
                check_program_task(program, OptimizerConfig.from_dict(program.meta["optimizer"]),
                                   initial_weights(program, weights), data, steps=10 * k, k=k, seed=1)
    trained = {*presets["mlp"]["datasets"], *(preset["dataset"] for preset in presets["programs"].values())}
    assert trained == presets["datasets"].keys()  # every built-in dataset is some model's


def test_each_menu_of_a_program_preset_sets_one_model_keyword_or_optimizer_option():
    """The first value of each menu is the preset's own; every combination is a program of its own,
    with the chosen keyword or option."""
    assert list(preset_menus("GPT")) == ["dim", "layers", "lr"] and list(preset_menus("CNN")) == ["widths", "lr"]
    for name, preset in json.loads(PRESETS.read_text())["programs"].items():
        combinations = preset_combinations(name)
        assert len(combinations) == 1 + math.prod(map(len, preset_menus(name).values()))  # and NAME
        for key, values in preset_menus(name).items():
            assert (key in preset["kwargs"]) != (key in preset["optimizer"])
            assert values[0] == {**preset["kwargs"], **preset["optimizer"]}[key]
            assert len(set(map(menu_token, values))) == len(values)
        programs = {stem: preset_program(name, choices) for stem, choices in combinations.items()}
        assert programs[name] == preset_program(name) == programs[list(combinations)[1]]  # NAME is its first
        assert len(set(programs.values())) == len(combinations) - 1
    gpt = Program.from_bytes(preset_program("GPT", {"dim": 16, "layers": 2, "lr": 0.003})[0])
    assert gpt.meta["optimizer"]["lr"] == 0.003 and gpt.meta["optimizer"]["weight_decay"] == 0.01
    assert Program.from_bytes(preset_program("GPT")[0]).meta["optimizer"]["lr"] == 0.01
    one_block = Program.from_bytes(preset_program("GPT", {"dim": 16, "layers": 1, "lr": 0.003})[0])
    assert len(gpt.state) > len(one_block.state)
    for refused in ({"dim": 64, "layers": 1, "lr": 0.01}, {"dim": 32, "layers": 1},
                    {"dim": 32, "layers": 1, "lr": 0.01, "heads": 2}):
        with pytest.raises(KeyError):
            preset_program("GPT", refused)


def test_the_gpt_preset_is_the_demos_transformer_as_dtm_model_export_writes_it(tmp_path):
    """The demo's GPT (vocab 49, 12 positions, width 32, 4 heads, one block; AdamW, warm-up, cosine,
    clipping; batch 4), on 400 rows of 13 tokens of the text."""
    program, weights = tmp_path / "gpt.json", tmp_path / "gpt.safetensors"
    kwargs = {"vocab": len(ALPHABET) + 1, "seq_len": 12, "dim": 32, "heads": 4, "layers": 1}
    done = CliRunner().invoke(main, [
        "model", "export", "offchain.ml.models:GPT", "--kwargs", json.dumps(kwargs), "--input-shape", "12",
        "--loss", "lm_cross_entropy", "--batch-size", "4", "--optimizer", "adamw", "--lr", "0.01",
        "--weight-decay", "0.01", "--warmup-steps", "6", "--schedule", "cosine", "--clip-norm", "1",
        "--out", str(program), "--weights-out", str(weights)])
    assert done.exit_code == 0, done.output
    assert preset_program("GPT") == (program.read_bytes(), weights.read_bytes())
    text = Dataset.from_bytes(builtin_dataset("text"))
    assert text.x.shape == (400, 13) and text.x.equal(text_dataset(12, ALPHABET).x[:400]) and not text.y.any()


def test_builtin_datasets_are_served_as_the_cli_publishes_them(dist, deployments):
    app = serve_app(app_config({}, None, deployments), port=0, dist=dist)
    try:
        served = requests.get(app.url + "datasets/digits.safetensors")
        assert served.content == digits_dataset().to_bytes()
        assert requests.get(app.url + "datasets/other.safetensors").status_code == 404
        text = text_dataset(12, ALPHABET, 400).to_bytes()
        assert requests.get(app.url + "datasets/text.safetensors").content == text
        for name in ("CNN", "GPT"):
            program, weights = preset_program(name)
            assert requests.get(app.url + f"presets/{name}.json").content == program
            assert requests.get(app.url + f"presets/{name}.safetensors").content == weights
        program, weights = preset_program("GPT", {"dim": 16, "layers": 2, "lr": 0.003})
        assert requests.get(app.url + "presets/GPT-dim16-layers2-lr0.003.json").content == program
        assert requests.get(app.url + "presets/GPT-dim16-layers2-lr0.003.safetensors").content == weights
        assert requests.get(app.url + "presets/CNN-widths4x16-lr0.02.json").content == preset_program(
            "CNN", {"widths": [4, 16], "lr": 0.02})[0]
        for missing in ("presets/MLP.json", "presets/CNN.txt", "presets/CNN", "datasets/digits.json"):
            assert requests.get(app.url + missing).status_code == 404, missing
        # the MLP preset sized by the data: the program and initial weights `dtm task post` makes
        program, _, weights = mlp_preset(2, (16,), 3, batch_size=64, lr=0.25)
        assert requests.get(app.url + "presets/MLP-input2-hidden16-classes3-batch64-lr0.25.json").content == \
            program.to_bytes()
        assert requests.get(app.url + "presets/MLP-input2-hidden16-classes3-batch64-lr0.25.safetensors").content == \
            save_tensors(weights)
        for refused in ("MLP-input2-hidden17-classes3-batch64-lr0.25", "MLP-input2-hidden16-classes1-batch64-lr0.25",
                        "MLP-input5000-hidden16-classes3-batch64-lr0.25", "MLP-input2-hidden16-classes3-batch64-lr11",
                        "MLP-input2-hidden16-classes3-batch8-lr0.25", "MLP-input2-hidden16-classes3-batch64-lr0.1.2"):
            answer = requests.get(app.url + f"presets/{refused}.json")
            assert answer.status_code == 404 and answer.text == (
                f"not found: {refused}: the MLP preset takes 1 to 4096 features, 2 to 256 classes, hidden 16 or "
                "32 or 64, batch 16 or 32 or 64 and a learning rate in (0, 10]\n"), answer.text
        offered = {"GPT": "dim 32 or 16; layers 1 or 2; lr 0.01 or 0.003", "CNN": "widths 4x8 or 4x16; lr 0.05 or 0.02"}
        for refused in ("GPT-dim64-layers1-lr0.01", "GPT-dim16-layers2", "GPT-dim16-layers2-lr0.003-heads2",
                        "GPT-layers2-dim16-lr0.003", "CNN-widths8x16-lr0.05"):  # off the menus, or out of their order
            answer = requests.get(app.url + f"presets/{refused}.json")
            name = refused[:3]
            assert answer.status_code == 404 and answer.text == (
                f"not found: {refused}.json: the {name} preset's menus offer {offered[name]}\n"), answer.text
    finally:
        app.close()


def test_dtm_webapp_export(dist, deployments, tmp_path, monkeypatch):
    monkeypatch.setattr("offchain.webapp.DIST", dist)
    env = {"DTM_DEPLOYMENTS_DIR": str(deployments)}
    out = tmp_path / "site"
    done = CliRunner().invoke(main, ["webapp", "export", "--out", str(out), "--rpc-url", "31337=http://127.0.0.1:8545",
                                     "--ipfs-api", "http://127.0.0.1:5001"], env=env)
    assert done.exit_code == 0, done.output
    config = json.loads((out / "config.json").read_text())
    assert [(d["name"], d["rpc_url"]) for d in config["deployments"]] == [
        ("ethereum-local", "http://127.0.0.1:8545"), ("ethereum-sepolia", None)]
    assert (out / "datasets" / "digits.safetensors").read_bytes() == digits_dataset().to_bytes()
    assert (out / "datasets" / "text.safetensors").read_bytes() == builtin_dataset("text")
    for hidden, batch in ((16, 16), (64, 64)):  # the MLP on the digits at the page's learning rate
        program, _, weights = mlp_preset(64, (hidden,), 10, batch_size=batch, lr=0.1)
        assert (out / "presets" / f"MLP-input64-hidden{hidden}-classes10-batch{batch}-lr0.1.json").read_bytes() == \
            program.to_bytes()
    for name in ("CNN", "GPT"):  # every combination of the menus, and the preset's own also as NAME
        for stem, choices in preset_combinations(name).items():
            assert (out / "presets" / f"{stem}.json").read_bytes() == preset_program(name, choices)[0]
            assert (out / "presets" / f"{stem}.safetensors").read_bytes() == preset_program(name, choices)[1]
    assert len(list((out / "presets").iterdir())) == 2 * (1 + 4 + 1 + 8 + 3 * 3)  # CNN, GPT, the MLP on the digits
    bad = CliRunner().invoke(main, ["webapp", "export", "--out", str(out), "--rpc-url", "local"], env=env)
    assert bad.exit_code == 2 and "'local' is not CHAIN_ID=URL" in bad.output
