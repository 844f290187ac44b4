"""The multi-machine scheduler: its cost model by hand, its search against brute force and
against DT-FM's search, determinism, layer balancing, and strict network files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from offchain.distributed import (
    SCENARIOS, Network, SchedulerError, Workload, brute_force, dtfm_search, evaluate, in_order_schedule,
    load_network, random_schedule, save_network, schedule,
)
from offchain.distributed.scheduler import _tsp_heuristic, balance_layers, bottleneck_matching, open_tsp

FAST = dict(population=16, trials=30, max_swaps=200)


def tiny() -> tuple[Network, Workload]:
    latency = np.ones((4, 4))
    latency[0, 1] = latency[1, 0] = 0.5
    bandwidth = np.full((4, 4), 2.0)
    bandwidth[0, 2] = bandwidth[2, 0] = 4.0
    network = Network(("a", "b", "c", "d"), np.array([10.0, 10.0, 20.0, 20.0]), latency, bandwidth)
    workload = Workload(layers=3, flops_per_layer=10, activation_bytes=4, parameter_bytes=8, micro_batches=2,
                        stages=2, replicas=2)
    return network, workload


def test_cost_model_by_hand():
    network, workload = tiny()
    cost = evaluate(network, workload, [(0, 1), (2, 3)], [1, 2])
    # compute: stage times 1·10/10 = 1 and 2·10/20 = 1; GPipe with 2 micro-batches: 1 + 1 + (2−1)·1
    assert cost.compute == pytest.approx(3.0)
    # data parallel: stage 0 sends 8/2 bytes to its peer twice: 2·(0.5 + 8/(2·2)) = 5;
    # stage 1 holds 16 bytes of gradients: 2·(1 + 16/(2·2)) = 10; the slower one counts
    assert cost.data_parallel == pytest.approx(10.0)
    # pipeline: 2 micro-batches × 4 bytes per link: a→c 1 + 8/4 = 3, b→d 1 + 8/2 = 5; ×2 (fwd, bwd)
    assert cost.pipeline == pytest.approx(10.0)
    assert cost.total == pytest.approx(23.0)


def test_compression_and_outer_sync_by_hand():
    network, workload = tiny()
    compressed = Workload(**{**workload.__dict__, "activation_compression": 2.0, "gradient_compression": 4.0,
                             "sync_every": 2})
    cost = evaluate(network, compressed, [(0, 1), (2, 3)], [1, 2])
    assert cost.pipeline == pytest.approx(2 * (1 + (8 / 2) / 2))  # slowest link b→d: 8 bytes halved, over 2 B/s
    # stage 1: 16/4 bytes of gradients, synced every 2nd step
    assert cost.data_parallel == pytest.approx(2 * (1 + (16 / 4) / (2 * 2)) / 2)
    assert cost.compute == pytest.approx(3.0)


def test_exact_subproblems_match_enumeration():
    rng = np.random.default_rng(3)
    for n in range(2, 8):
        sym = rng.random((n, n))
        sym = sym + sym.T
        total, path = open_tsp(sym)
        assert sorted(path) == list(range(n))
        brute = min(sum(sym[p[i], p[i + 1]] for i in range(n - 1)) for p in itertools.permutations(range(n)))
        assert total == pytest.approx(brute)
        assert sum(sym[path[i], path[i + 1]] for i in range(n - 1)) == pytest.approx(total)
        heuristic, tour = _tsp_heuristic(sym)  # used beyond 12 stages
        assert sorted(tour) == list(range(n)) and heuristic >= total - 1e-12
        assert sum(sym[tour[i], tour[i + 1]] for i in range(n - 1)) == pytest.approx(heuristic)
        m = rng.integers(0, 5, (n, n)).astype(float)
        value, match = bottleneck_matching(m)
        assert sorted(match) == list(range(n))
        assert max(m[i, match[i]] for i in range(n)) == value
        assert value == min(max(m[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))


def random_network(rng: np.random.Generator, n: int) -> Network:
    latency = rng.uniform(0.001, 0.1, (n, n))
    bandwidth = rng.uniform(1e7, 1e9, (n, n))
    return Network(tuple(f"d{i}" for i in range(n)), rng.choice([65e12, 125e12, 312e12], n),
                   np.triu(latency, 1) + np.triu(latency, 1).T, np.triu(bandwidth, 1) + np.triu(bandwidth, 1).T)


@pytest.mark.parametrize("n,stages", [(6, 2), (6, 3), (8, 2), (8, 4)])
def test_search_finds_the_brute_force_optimum(n, stages):
    rng = np.random.default_rng(n * 10 + stages)
    for _ in range(2):
        network = random_network(rng, n)
        workload = Workload.gpt3_xl(stages=stages, replicas=n // stages, layers=12)
        best = brute_force(network, workload)
        found = schedule(network, workload, seed=1, **FAST).schedule
        assert found.cost.total <= best.cost.total * (1 + 1e-9)
        assert found.cost == evaluate(network, workload, found.stages, found.layers)


def test_deterministic_for_a_seed():
    network = SCENARIOS["world-wide, mixed GPUs"](12)
    workload = Workload.gpt3_xl(stages=3, replicas=4)
    first = schedule(network, workload, seed=7, **FAST)
    second = schedule(network, workload, seed=7, **FAST)
    assert first.schedule == second.schedule
    assert first.history == second.history
    assert dtfm_search(network, workload, seed=7, population=16, trials=30).schedule == \
        dtfm_search(network, workload, seed=7, population=16, trials=30).schedule


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_ours_never_worse_than_dtfm_or_naive(name):
    network = SCENARIOS[name](16)
    workload = Workload.gpt3_xl(stages=4, replicas=4)
    baseline = dtfm_search(network, workload, seed=0, population=16, trials=30)
    ours = schedule(network, workload, seed=0, baseline=baseline, **FAST).schedule
    assert ours.cost.total <= baseline.schedule.cost.total
    assert ours.cost.total <= in_order_schedule(network, workload).cost.total * (1 + 1e-9)
    rng = np.random.default_rng(0)
    assert ours.cost.total <= min(random_schedule(network, workload, rng).cost.total for _ in range(5))
    assert sorted(d for row in ours.stages for d in row) == list(range(16))


def test_heterogeneous_speeds_balance_layers():
    assert balance_layers(np.array([3.0, 1.0]), 24).tolist() == [18, 6]
    assert balance_layers(np.array([1.0, 1.0, 1.0]), 24).tolist() == [8, 8, 8]
    assert balance_layers(np.array([100.0, 1.0]), 5).tolist() == [4, 1]  # every stage keeps a layer
    speeds = np.array([312e12, 125e12, 65e12, 65e12])
    counts = balance_layers(speeds, 40)
    assert counts.sum() == 40
    worst = (counts / speeds).max()
    for split in itertools.product(range(1, 38), repeat=3):  # no split has a faster slowest stage
        rest = 40 - sum(split)
        if rest >= 1:
            assert (np.array([*split, rest]) / speeds).max() >= worst - 1e-18

    # Two fast and two slow devices on a uniform network: fast ones share a stage with 3× the layers.
    flat = np.full((4, 4), 0.001)
    network = Network(("f0", "s0", "f1", "s1"), np.array([3e14, 1e14, 3e14, 1e14]), flat, np.full((4, 4), 1e10))
    workload = Workload.gpt3_xl(stages=2, replicas=2)
    result = schedule(network, workload, **FAST).schedule
    by_stage = {frozenset(group): n for group, n in zip(result.stages, result.layers)}
    assert by_stage == {frozenset({0, 2}): 18, frozenset({1, 3}): 6}
    assert result.cost.total < in_order_schedule(network, workload).cost.total


def test_workload_and_layout_errors():
    network, workload = tiny()
    with pytest.raises(SchedulerError, match="3 stages × 2 replicas = 6 devices, the network has 4"):
        schedule(network, Workload(**{**workload.__dict__, "stages": 3}))
    with pytest.raises(SchedulerError, match="cannot fill"):
        Workload(**{**workload.__dict__, "layers": 1})
    with pytest.raises(SchedulerError, match="every device exactly once"):
        evaluate(network, workload, [(0, 1), (1, 3)], [1, 2])


def test_network_file_round_trip(tmp_path):
    network = SCENARIOS["regional geo"](8)
    save_network(network, tmp_path / "net.json")
    loaded = load_network(tmp_path / "net.json")
    assert loaded.names == network.names
    assert np.array_equal(loaded.latency, network.latency) and np.array_equal(loaded.bandwidth, network.bandwidth)


GOOD = {"devices": [{"name": "a", "flops": 1e14}, {"name": "b", "flops": 2e14}],
        "latency": [[0, 0.01], [0.01, 0]], "bandwidth": [[0, 1e9], [1e9, 0]]}


@pytest.mark.parametrize("doc,message", [
    ([], "top level must be an object"),
    ({k: v for k, v in GOOD.items() if k != "latency"}, "missing key 'latency'"),
    ({**GOOD, "extra": 1}, "unknown key 'extra'"),
    ({**GOOD, "devices": []}, "devices must be a non-empty list"),
    ({**GOOD, "devices": [{"name": "a"}, {"name": "b", "flops": 1}]}, r"devices\[0\] must be an object"),
    ({**GOOD, "devices": [{"name": "a", "flops": 1}, {"name": "a", "flops": 1}]}, "duplicate"),
    ({**GOOD, "devices": [{"name": "a", "flops": -1}, {"name": "b", "flops": 1}]}, r"flops must be > 0"),
    ({**GOOD, "devices": [{"name": "a", "flops": "fast"}, {"name": "b", "flops": 1}]}, "finite number"),
    ({**GOOD, "latency": [[0, 0.01]]}, "list of 2 rows"),
    ({**GOOD, "latency": [[0, 0.01], [0.01]]}, r"latency\[1\] must be a list of 2 numbers"),
    ({**GOOD, "latency": [[0, -1], [-1, 0]]}, r"latency\[0\]\[1\] must be ≥ 0"),
    ({**GOOD, "bandwidth": [[0, 0], [0, 0]]}, r"bandwidth\[0\]\[1\] must be > 0"),
    ({**GOOD, "bandwidth": [[0, 1e9], [2e9, 0]]}, "not symmetric"),
    ({**GOOD, "bandwidth": [[0, True], [True, 0]]}, "finite number"),
])
def test_malformed_network_files_give_one_line_errors(tmp_path, doc, message):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchedulerError, match=message) as error:
        load_network(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_unreadable_and_non_json_files(tmp_path):
    with pytest.raises(SchedulerError, match="cannot read") as error:
        load_network(tmp_path / "missing.json")
    assert "\n" not in str(error.value)
    (tmp_path / "bad.json").write_text("{\"devices\": [\n")
    with pytest.raises(SchedulerError, match="not JSON: .* line 2") as error:
        load_network(tmp_path / "bad.json")
    assert "\n" not in str(error.value)


def test_cli_prints_a_schedule_and_one_line_errors(tmp_path):
    from click.testing import CliRunner

    from offchain.cli import main

    save_network(SCENARIOS["multi universities"](4), tmp_path / "net.json")
    args = ["schedule", "--network", str(tmp_path / "net.json"), "--layers", "4", "--trials", "5"]
    ok = CliRunner().invoke(main, [*args, "--stages", "2", "--replicas", "2"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("cost ") and "stage 1 (layers 2-3): " in ok.output
    bad = CliRunner().invoke(main, [*args, "--stages", "4", "--replicas", "2"])
    assert bad.exit_code == 1
    assert bad.output.strip() == "Error: 4 stages × 2 replicas = 8 devices, the network has 4"
    (tmp_path / "net.json").write_text("{}")
    broken = CliRunner().invoke(main, [*args, "--stages", "2", "--replicas", "2"])
    assert broken.output.strip() == f"Error: {tmp_path / 'net.json'}: missing key 'devices'"


def test_a_stage_with_a_slow_sync_sheds_layers():
    # Equal speeds, but every link of device 3 is slow: whichever stage holds it syncs slowly,
    # so the split that minimises compute alone (12 + 12) is not the cheapest.
    bandwidth = np.full((4, 4), 1e10)
    bandwidth[3, :] = bandwidth[:, 3] = 1e7
    network = Network(("a", "b", "c", "d"), np.full(4, 1e14), np.zeros((4, 4)), bandwidth)
    workload = Workload.gpt3_xl(stages=2, replicas=2, micro_batches=4)
    result = schedule(network, workload, **FAST).schedule
    slow_stage = next(s for s, group in enumerate(result.stages) if 3 in group)
    assert result.layers[slow_stage] < 12
    assert result.cost.total < evaluate(network, workload, result.stages, [12, 12]).total
    assert result.cost.total <= brute_force(network, workload).cost.total
