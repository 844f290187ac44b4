"""Every participant of a multi-process training task publishes its parts (offchain/distributed/
parts.py), and any one participant's segment replays in one process (replay.py): honest ones
exactly, a cheater is caught, and the participants downstream of a bad message still pass."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from offchain.distributed import parts as P
from offchain.distributed.engine import Tamper, run, run_many, run_single
from offchain.distributed.spec import AQSGDConfig, DiLoCoConfig, GPTShape, TrainSpec
from offchain.distributed.replay import check_group, replay_participant

# 2 stages x 2 replicas, AQ-SGD: 2 steps per epoch, so segments 1 and 2 send 4-bit deltas
PIPE_DP = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=2), stages=2, replicas=2, steps=6,
                    batch_size=8, micro_batches=2, train_rows=16, holdout_rows=16,
                    aqsgd=AQSGDConfig(bits=4, grad_bits=8, warmup_epochs=1), checkpoint_interval=2)
SPECS = {
    "2x2 aqsgd": PIPE_DP,
    "3x1": dataclasses.replace(PIPE_DP, model=dataclasses.replace(PIPE_DP.model, layers=3), stages=3, replicas=1,
                               steps=4, batch_size=4, aqsgd=None),
    "2x2 aqsgd+diloco": dataclasses.replace(PIPE_DP, diloco=DiLoCoConfig(inner_steps=3, compress="quant", bits=4)),
}


def _segments(spec):
    return [(rank, segment) for rank in range(spec.world) for segment in range(spec.steps // spec.checkpoint_interval)]


def _rejected(spec, parts_dir):
    verdicts = {key: replay_participant(spec, parts_dir, *key) for key in _segments(spec)}
    return {key for key, verdict in verdicts.items() if not verdict.accept}, verdicts


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    names = [*SPECS, "2x2 aqsgd again"]
    dirs = {name: tmp_path_factory.mktemp(name.replace(" ", "-").replace("+", "-")) for name in names}
    specs = [*SPECS.values(), PIPE_DP, dataclasses.replace(PIPE_DP, checkpoint_interval=0)]
    results = run_many(specs, parts_dirs=[*dirs.values(), None])
    return dirs, dict(zip([*names, "2x2 aqsgd uncommitted"], results))


@pytest.mark.parametrize("name", list(SPECS))
def test_every_participant_replays_exactly(honest, name):
    dirs, _ = honest
    spec = SPECS[name]
    rejected, verdicts = _rejected(spec, dirs[name])
    assert not rejected, [verdicts[key].reason for key in rejected]
    for verdict in verdicts.values():
        assert verdict.exact and verdict.distance == 0.0 and not verdict.wrong_messages
        assert verdict.messages > 0


def test_group_root_is_reproducible(honest):
    dirs, _ = honest
    first, again = check_group(PIPE_DP, dirs["2x2 aqsgd"]), check_group(PIPE_DP, dirs["2x2 aqsgd again"])
    assert first == again == P.load_group_root(dirs["2x2 aqsgd"])
    roots = [P.load_participant(dirs["2x2 aqsgd"], q).proof_root for q in range(PIPE_DP.world)]
    assert len(set(roots)) == PIPE_DP.world
    assert P.group_root(roots) == first


def test_committing_leaves_the_training_unchanged(honest):
    _, results = honest
    committed, plain = results["2x2 aqsgd"], results["2x2 aqsgd uncommitted"]
    assert all(torch.equal(committed.state[n], plain.state[n]) for n in plain.state)
    assert committed.losses == plain.losses
    # three pipeline stages: the clipping norm summed in rank order, as in one process
    single = run_single(SPECS["3x1"])
    assert all(torch.equal(results["3x1"].state[n], single.state[n]) for n in single.state)


def test_published_parts_are_safetensors_and_json(honest):
    dirs, _ = honest
    spec, parts_dir = PIPE_DP, dirs["2x2 aqsgd"]
    proof = json.loads((parts_dir / "rank1" / "proof.json").read_text())
    assert len(proof["checkpoint_roots"]) == spec.steps // spec.checkpoint_interval + 1
    assert len(proof["message_roots"]) == spec.steps // spec.checkpoint_interval
    with safe_open(str(parts_dir / "rank1" / "checkpoint-1.safetensors"), framework="pt") as file:
        order = json.loads(file.metadata()["order"])
    assert order[0].startswith("param/") and any(n.startswith("exp_avg_sq/") for n in order)
    assert any(n.startswith("aqsgd.received/") for n in order)  # stage 1 receives activations
    with safe_open(str(parts_dir / "rank0" / "messages-1.safetensors"), framework="pt") as file:
        listing = json.loads(file.metadata()["messages"])
        assert all(file.get_tensor(key).dtype == torch.uint8 for key in file.keys())
    assert {entry["op"] for entry in listing} == {"send", "all_reduce"}


def test_a_message_that_does_not_match_its_senders_root_is_refused(honest, tmp_path):
    """A receiver's input is opened against its sender's commitment: a published message changed
    after the fact is the sender's parts failing, not the receiver's replay."""
    import shutil

    parts_dir = tmp_path / "parts"
    shutil.copytree(honest[0]["2x2 aqsgd"], parts_dir)
    path = parts_dir / "rank0" / "messages-1.safetensors"
    with safe_open(str(path), framework="pt") as file:
        metadata, tensors = file.metadata(), {key: file.get_tensor(key) for key in file.keys()}
    tensors["000000"][0] ^= 1
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(P.PartsError) as error:
        replay_participant(PIPE_DP, parts_dir, 1, 1)
    assert error.value.rank == 0
    assert replay_participant(PIPE_DP, parts_dir, 1, 0).accept  # other segments are untouched


def _cheating_run(parts_dir, cheat):
    """The 2x2 run with one participant cheating, then every segment of every participant
    replayed: (rejected, verdicts)."""
    run(PIPE_DP, parts_dir=parts_dir, tamper=cheat)
    return _rejected(PIPE_DP, parts_dir)


def test_perturbed_parameters_are_caught(tmp_path):
    cheater, step = 1, 2  # stage 1 of replica 0, first step of segment 1
    rejected, verdicts = _cheating_run(tmp_path, Tamper(cheater, step))
    assert rejected == {(cheater, 1)}
    verdict = verdicts[cheater, 1]
    assert verdict.distance > 1e-4 and not verdict.exact
    assert verdict.wrong_messages  # what it sent after the perturbation is not what its inputs give


class RecorderCheat(Tamper):
    """A cheat that replaces the rank's ``Recorder.<method>`` with ``cheat(honest)``, in the
    rank's own process (which the run started); its parameters stay as trained."""

    method = ""

    def install(self, rank):
        if rank == self.rank:
            setattr(P.Recorder, self.method, self.cheat(getattr(P.Recorder, self.method)))

    def apply(self, runner, step):
        pass


@dataclasses.dataclass(frozen=True)
class CorruptedActivation(RecorderCheat):
    """Flips the last byte of the first message the rank sends at its step ``step``."""

    method = "send"

    def cheat(self, send_honestly):
        def corrupting_send(recorder, payload, dst, codec=None):
            if recorder.step == self.step and not getattr(recorder, "cheated", False):
                recorder.cheated = True
                payload = payload.clone()
                payload[-1] ^= 1
            send_honestly(recorder, payload, dst, codec)
        return corrupting_send


@dataclasses.dataclass(frozen=True)
class CorruptedGradientSync(RecorderCheat):
    """Adds 1 to the first element of the rank's stage-0 gradient contribution at step ``step``."""

    method = "all_reduce"

    def cheat(self, all_reduce_honestly):
        def corrupting_all_reduce(recorder, tensor, ranks):
            if recorder.step == self.step and ranks == (0, 2):
                tensor[0] += 1.0
            all_reduce_honestly(recorder, tensor, ranks)
        return corrupting_all_reduce


def test_corrupted_activation_is_caught_and_its_receiver_passes(tmp_path):
    cheater = 0  # stage 0 of replica 0 corrupts its first 4-bit activation delta of step 3
    rejected, verdicts = _cheating_run(tmp_path, CorruptedActivation(cheater, 3))
    assert rejected == {(cheater, 1)}
    verdict = verdicts[cheater, 1]
    # its own state replays exactly (it cached what it should have sent): only the message check sees it
    assert verdict.exact
    assert len(verdict.wrong_messages) == 1
    # the receiver computed on the corrupted message and is judged on it: it passes, exactly
    assert verdicts[cheater + 1, 1].accept and verdicts[cheater + 1, 1].exact


def test_corrupted_gradient_sync_is_caught_and_the_other_replica_passes(tmp_path):
    cheater = 2  # stage 0 of replica 1 adds to its gradient contribution at step 3
    rejected, verdicts = _cheating_run(tmp_path, CorruptedGradientSync(cheater, 3))
    assert rejected == {(cheater, 1)}
    assert verdicts[cheater, 1].wrong_messages and not verdicts[cheater, 1].exact
    assert verdicts[0, 1].exact  # replica 0's stage 0 summed the published (corrupted) contribution
