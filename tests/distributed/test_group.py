"""A group task from the command line (offchain/distributed/group.py, `dtm group ...`): the spec
every machine trains is strict JSON; a group trained as one command or rank by rank over TCP
publishes the same root; `group verify` passes an honest group and names a cheater."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from offchain.cli import main
from offchain.distributed import parts as P
from offchain.distributed.spec import DiLoCoConfig, LinkConfig
from offchain.distributed.group import (
    GroupError, load_spec, save_spec, segments, spec_from_json, spec_to_json, verify_group,
)
from offchain.ml.optim import OptimizerConfig
from tests.distributed.test_participants import PIPE_DP, SPECS

ROUND_TRIPS = {
    **SPECS,
    "split, gpipe, sgd, slow link": dataclasses.replace(
        SPECS["3x1"], model=dataclasses.replace(PIPE_DP.model, layers=4), split=(2, 1, 1), schedule="gpipe", optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9),
        link=LinkConfig(0.01, 1e6), seed=7),
    "diloco top-k": dataclasses.replace(PIPE_DP, diloco=DiLoCoConfig(2, compress="topk", fraction=0.25)),
    "task sampling, programs": dataclasses.replace(PIPE_DP, aqsgd=None, sampling="task", programs=True),
}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_a_spec_survives_json(name, tmp_path):
    spec = ROUND_TRIPS[name]
    save_spec(spec, tmp_path / "spec.json")
    loaded = load_spec(tmp_path / "spec.json")
    # the default optimizer is written out: the same task on a machine whose default differs
    assert loaded == dataclasses.replace(spec, optimizer=spec.optimizer_config())


BAD = {
    "another format": (lambda d: d.update(format="dtm-task/1"), "format must be"),
    "unknown field": (lambda d: d.update(gpus=8), "unknown field 'gpus'"),
    "missing field": (lambda d: d.pop("seed"), "lacks 'seed'"),
    "nested unknown": (lambda d: d["model"].update(experts=4), "model has unknown field 'experts'"),
    "nested missing": (lambda d: d["aqsgd"].pop("bits"), "aqsgd lacks 'bits'"),
    "string for int": (lambda d: d.update(steps="6"), "steps must be a int"),
    "bool for int": (lambda d: d["model"].update(dim=True), "model.dim must be a int"),
    "infinite float": (lambda d: d["link"].update(latency_s=float("inf")), "link.latency_s must be a float"),
    "split of strings": (lambda d: d.update(split=["1", "1"]), "split must be a list"),
    "bad optimizer": (lambda d: d["optimizer"].update(name="lion"), "unknown optimizer 'lion'"),
    "inconsistent": (lambda d: d.update(steps=5), "steps must be a multiple of checkpoint_interval"),
    "unknown sampling": (lambda d: d.update(sampling="shuffle"), "sampling must be one of"),
    "aq-sgd sampled as tasks": (lambda d: d.update(sampling="task"), "AQ-SGD's caches need each sample on one replica"),
    "programs of aq-sgd": (lambda d: d.update(programs=True), "not captured as programs yet"),
    "programs not a bool": (lambda d: d.update(programs=1), "programs must be a bool"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_spec_is_refused_in_one_line(name):
    doc = json.loads(json.dumps(spec_to_json(PIPE_DP)))
    edit, message = BAD[name]
    edit(doc)
    with pytest.raises(GroupError, match=message) as error:
        spec_from_json(doc)
    assert "\n" not in str(error.value)


def test_a_file_that_is_no_spec_is_refused(tmp_path):
    (tmp_path / "bytes").write_bytes(b"\xff\x00")
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, message in (("bytes", "not JSON"), ("list.json", "not a group spec"), ("absent", "No such file")):
        with pytest.raises(GroupError, match=message):
            load_spec(tmp_path / name)


def test_dtm_group_spec_writes_a_spec_that_loads(tmp_path):
    out = tmp_path / "spec.json"
    result = CliRunner().invoke(main, ["group", "spec", str(out), "--stages", "2", "--replicas", "2",
                                       "--aqsgd-bits", "4", "--diloco", "4", "--steps", "8", "--interval", "4"])
    assert result.exit_code == 0, result.output
    spec = load_spec(out)
    assert (spec.world, spec.aqsgd.bits, spec.diloco.inner_steps, spec.checkpoint_interval) == (4, 4, 4, 4)
    plain = CliRunner().invoke(main, ["group", "spec", str(out), "--stages", "2", "--sampling", "task", "--programs"])
    assert plain.exit_code == 0, plain.output
    assert (load_spec(out).sampling, load_spec(out).programs) == ("task", True)
    rounds = CliRunner().invoke(main, ["group", "spec", str(out), "--replicas", "2", "--programs", "--diloco", "4",
                                       "--diloco-bits", "6"])
    assert rounds.exit_code == 0, rounds.output
    assert (load_spec(out).diloco.inner_steps, load_spec(out).diloco.compress, load_spec(out).diloco.bits) == (4, "quant", 6)
    alone = CliRunner().invoke(main, ["group", "spec", str(out), "--diloco-bits", "6"])
    assert alone.exit_code == 1 and "it needs --diloco" in alone.output
    torn = CliRunner().invoke(main, ["group", "spec", str(out), "--programs", "--diloco", "5"])
    assert torn.exit_code == 1 and "every DiLoCo round is whole" in torn.output
    compressed = CliRunner().invoke(main, ["group", "spec", str(out), "--programs", "--aqsgd-bits", "4"])
    assert compressed.exit_code == 1 and "not captured as programs yet" in compressed.output
    quantised = CliRunner().invoke(main, ["group", "spec", str(out), "--programs", "--quantize", "4",
                                          "--quantize-sums", "6"])
    assert quantised.exit_code == 0, quantised.output
    assert dataclasses.astuple(load_spec(out).quantize) == (4, 8, 6)
    unprogrammed = CliRunner().invoke(main, ["group", "spec", str(out), "--quantize", "4"])
    assert unprogrammed.exit_code == 1 and "it needs programs" in unprogrammed.output
    bad = CliRunner().invoke(main, ["group", "spec", str(tmp_path / "x.json"), "--steps", "7", "--interval", "4"])
    assert bad.exit_code == 1 and "multiple of checkpoint_interval" in bad.output


# ── training and verifying ───────────────────────────────────────────
@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    """A 2 x 2 AQ-SGD group: four processes, pipeline and data parallel, compressed."""
    path = tmp_path_factory.mktemp("group") / "spec.json"
    save_spec(PIPE_DP, path)
    return path


@pytest.fixture(scope="module")
def honest_run(spec_file, tmp_path_factory):
    parts = tmp_path_factory.mktemp("honest-parts")
    result = CliRunner().invoke(main, ["group", "run", str(spec_file), "--parts", str(parts)])
    assert result.exit_code == 0, result.output
    return parts, result.output


def test_dtm_group_run_then_verify_accepts_every_participant(spec_file, honest_run):
    parts, output = honest_run
    root = P.load_group_root(parts).hex()
    assert f"group root {root}" in output and "trained 6 steps" in output
    result = CliRunner().invoke(main, ["group", "verify", str(spec_file), str(parts)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (exact") == len(segments(PIPE_DP)) == 12
    assert f"group root {root}: replayed 12 participant segments" in result.output


def test_dtm_group_verify_names_the_cheater(spec_file, tmp_path):
    parts = tmp_path / "parts"
    result = CliRunner().invoke(main, ["group", "run", str(spec_file), "--parts", str(parts), "--cheat", "3:4"])
    assert result.exit_code == 0, result.output
    verdict = verify_group(PIPE_DP, parts)
    assert verdict.cheaters == [3]
    assert [(v.rank, v.segment) for v in verdict.verdicts if not v.accept] == [(3, 2)]
    result = CliRunner().invoke(main, ["group", "verify", str(spec_file), str(parts)])
    assert result.exit_code == 1
    assert "rank 3 segment 2: REJECT: end state at distance" in result.output
    assert "cheating participant(s): rank 3" in result.output


def test_a_sample_replays_that_many_segments_drawn_by_the_seed(honest_run):
    parts, _ = honest_run
    drawn = [[(v.rank, v.segment) for v in verify_group(PIPE_DP, parts, sample=3, seed=seed).verdicts]
             for seed in (1, 1, 2)]
    assert len(drawn[0]) == 3 and drawn[0] == drawn[1] and drawn[0] != drawn[2]
    assert set(drawn[0]) <= set(segments(PIPE_DP))


def test_parts_that_contradict_their_roots_reject_their_publisher(honest_run, tmp_path):
    import shutil

    parts = tmp_path / "parts"
    shutil.copytree(honest_run[0], parts)
    proof = json.loads((parts / "rank2" / "proof.json").read_text())
    proof["checkpoint_roots"][1] = "00" * 32
    (parts / "rank2" / "proof.json").write_text(json.dumps(proof))
    with pytest.raises(GroupError, match="rank 2: proof.json's proof root does not commit its roots"):
        verify_group(PIPE_DP, parts)
    with pytest.raises(GroupError, match="not a group's published parts"):
        verify_group(PIPE_DP, tmp_path)


def test_ranks_joining_over_tcp_train_the_group_run_trains(spec_file, honest_run, tmp_path):
    """Four `dtm group join` processes (one per machine, here all on loopback) publish the same
    group root as `dtm group run`: where each rank runs changes nothing it commits."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    parts = tmp_path / "joined"
    procs = [subprocess.Popen([sys.executable, "-m", "offchain.cli", "group", "join", str(spec_file),
                               "--rank", str(rank), "--master", f"127.0.0.1:{port}", "--parts", str(parts),
                               "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(PIPE_DP.world)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    assert "rank 1 (stage 1, replica 0): trained 6 steps" in outputs[1]
    assert P.load_group_root(parts) == P.load_group_root(honest_run[0])
    assert verify_group(PIPE_DP, parts, sample=2).accept


def test_a_rank_alone_gives_up_in_one_line(spec_file, tmp_path):
    result = CliRunner().invoke(main, ["group", "join", str(spec_file), "--rank", "1", "--master", "127.0.0.1:1",
                                       "--parts", str(tmp_path), "--timeout", "2"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: rank 1: the group failed") and result.output.count("\n") == 1
    bad = CliRunner().invoke(main, ["group", "join", str(spec_file), "--rank", "9", "--master", "127.0.0.1:1",
                                    "--parts", str(tmp_path)])
    assert bad.exit_code == 1 and "rank 9 is not a rank of a 2 x 2 group" in bad.output



def test_dtm_group_post_refuses_a_spec_the_game_could_not_judge_before_touching_the_chain(tmp_path):
    """A group whose participants do not run their programs: one line, and no RPC is ever reached
    (the one given is dead)."""
    out = tmp_path / "g.json"
    assert CliRunner().invoke(main, ["group", "spec", str(out), "--stages", "2", "--sampling", "task"]).exit_code == 0
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "--rpc", "http://127.0.0.1:1", "group", "post", str(out)])
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        "Error: a group task needs programs: its participants train by the steps the game judges"]
