"""A group participant's step as a program (offchain/distributed/stage_program.py): the group
trains by running its participants' programs, which matches the engine; every participant's step
replays exactly from its state and the messages it received, each of which is bit for bit what its
sender's program sent; and a participant that gets one element of its backward wrong is the only
one whose replay disagrees with what it did, the receiver of its bad gradient included."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from offchain.dispute.limits import program_unjudgeable_reason
from offchain.distributed import parts as P
from offchain.distributed.engine import Tamper, run, run_many, run_single
from offchain.distributed.group import group_proof_root, segments
from offchain.distributed.group_proof import GroupProofDocument, GroupProofError, trained_model
from offchain.distributed.replay import check_group, replay_participant
from offchain.distributed import compression as C
from offchain.distributed.spec import AQSGDConfig, DiLoCoConfig, GPTShape, QuantizeConfig, TrainSpec, replica_ranks
from offchain.distributed.stage import StageRunner, build_gpt
from offchain.distributed.stage_program import (
    SUM_ROW,
    Message,
    dequantize,
    export_stage_program,
    group_mail,
    initial_state,
    levels,
    mail_layout,
    messages_of,
    participant_program,
    peers_of,
    published_mail,
    quantize,
    replay_step,
    step_inputs,
    sum_rows,
    train_stage_programs,
)
from offchain.ml.artifacts import Dataset
from offchain.ml.commit import tensor_root
from offchain.ml.demo import program_task
from offchain.ml.errors import GraphError
from offchain.ml.program import Corruption, Program, ProgramExecutor, execution_context

THREE = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=3), stages=3, steps=3, batch_size=4,
                  micro_batches=2, train_rows=16, holdout_rows=16)
TWO_GPIPE = dataclasses.replace(THREE, model=dataclasses.replace(THREE.model, layers=2), stages=2, schedule="gpipe",
                                micro_batches=4, batch_size=8)
TWO_BY_TWO = dataclasses.replace(THREE, model=dataclasses.replace(THREE.model, layers=2), stages=2, replicas=2,
                                 batch_size=8, sampling="task")  # rows drawn as tasks draw them
DILOCO = dataclasses.replace(TWO_BY_TWO, steps=4, diloco=DiLoCoConfig(inner_steps=2))  # two rounds of two steps
SPECS = {"3 stages, 1f1b, clipped": THREE, "2 stages, gpipe": TWO_GPIPE, "2 stages x 2 replicas": TWO_BY_TWO,
         "2 x 2 DiLoCo": DILOCO}


@pytest.fixture(scope="module")
def trained():
    with execution_context(1):
        return {name: train_stage_programs(spec) for name, spec in SPECS.items()}


@pytest.mark.parametrize("name", list(SPECS))
def test_stage_programs__the_group_trained_by_its_participants_programs_matches_the_engine(trained, name):
    spec = SPECS[name]
    programs, records = trained[name]
    with execution_context(1):
        engine = run(spec) if spec.diloco else run_single(spec)  # the whole-model run knows no rounds
    last = [record.losses for sp, record in zip(programs, records) if sp.rank % spec.stages == spec.stages - 1]
    assert [sum(values) / len(values) for values in zip(*last)] == pytest.approx(engine.losses, rel=1e-5)
    for sp, record in zip(programs, records):
        assert all(loss == 0.0 for loss in record.losses) or sp.rank % spec.stages == spec.stages - 1
        # the participant's parameters as one vector: element by element, Adam's normalised steps
        # turn rounding noise into ±lr where a gradient is zero in exact arithmetic (attention's
        # key bias), in the engine as in the programs; a missed micro-batch or a wrong clipping
        # norm moves every parameter by about lr, a distance near 1e-2 of the norm
        params = [(slot.name.split("/", 1)[1], value) for slot, value in zip(sp.program.state, record.states[-1])
                  if slot.kind == "param"]
        ours = torch.cat([value.reshape(-1) for _, value in params])
        want = torch.cat([engine.state[name_].reshape(-1) for name_, _ in params])
        assert (ours - want).norm() <= 1e-4 * want.norm()
        assert not torch.equal(record.states[-1][0], record.states[0][0])  # it trained


@pytest.mark.parametrize("name", list(SPECS))
def test_stage_programs__every_message_received_is_bit_for_bit_what_its_sender_sent(trained, name):
    programs, records = trained[name]
    sent = {}
    for sp, record in zip(programs, records):
        for step, tensors in enumerate(record.sent):
            for message, tensor in zip(sp.sends, tensors):
                sent[(step, message.kind, message.sender, message.micro)] = tensor
    count = 0
    for sp, record in zip(programs, records):
        for step, tensors in enumerate(record.received):
            for message, tensor in zip(sp.receives, tensors):
                assert torch.equal(tensor, sent[(step, message.kind, message.sender, message.micro)])
                count += 1
    assert count == sum(len(sp.receives) for sp in programs) * SPECS[name].steps > 0


@pytest.mark.parametrize("name", list(SPECS))
def test_stage_programs__every_participant_step_replays_exactly_from_its_state_and_received_messages(trained, name):
    spec = SPECS[name]
    programs, records = trained[name]
    with execution_context(1):
        for sp, record in zip(programs, records):
            for step in range(spec.steps):
                replay = replay_step(sp, spec, step, record.states[step], record.received[step])
                assert all(torch.equal(a, b) for a, b in zip(replay.state, record.states[step + 1]))
                assert all(torch.equal(a, b) for a, b in zip(replay.sent, record.sent[step]))


def test_stage_programs__one_wrong_backward_element_shows_only_in_the_cheater_s_replay():
    spec = THREE
    middle = export_stage_program(spec, 1)
    gradient = next(i for i, m in enumerate(middle.sends) if m.kind == "gradient")
    cheat = Corruption(step=1, node=middle.program.sends[gradient], index=0, delta=1e-2)
    with execution_context(1):
        programs, records = train_stage_programs(spec, corrupt={1: cheat})
        verdicts = {}
        for sp, record in zip(programs, records):
            for step in range(spec.steps):
                replay = replay_step(sp, spec, step, record.states[step], record.received[step])
                verdicts[(sp.rank, step)] = (
                    all(torch.equal(a, b) for a, b in zip(replay.state, record.states[step + 1]))
                    and all(torch.equal(a, b) for a, b in zip(replay.sent, record.sent[step])))
    assert [key for key, honest in verdicts.items() if not honest] == [(1, 1)]
    # the receiver of the bad gradient computed on it: its record differs from an honest run's
    with execution_context(1):
        _, honest = train_stage_programs(spec)
    assert not torch.equal(records[0].states[2][0], honest[0].states[2][0])
    assert torch.equal(records[0].states[1][0], honest[0].states[1][0])


def test_stage_programs__a_participant_program_round_trips_and_commits_its_sends():
    sp = export_stage_program(TWO_GPIPE, 0)
    program = Program.from_bytes(sp.program.to_bytes())
    assert program.root == sp.program.root and program.sends == sp.program.sends
    assert program.receives == len(sp.receives) == 5  # four gradients and the other stage's squared norm
    assert [m.kind for m in sp.sends] == ["activation"] * 4 + ["grad_sq"]
    moved = dataclasses.replace(sp.program, sends=sp.program.sends[::-1])
    assert moved.root != sp.program.root
    plain = dataclasses.replace(sp.program, sends=())
    assert plain.root != sp.program.root and plain.outputs_hash == sp.program.outputs_hash
    leaves = {node.op for node in sp.program.nodes} & {"data_x", "data_y", "hyper"}
    assert leaves == {"data_x", "hyper"}  # the first stage reads its rows, not the labels
    middle = export_stage_program(THREE, 1).program
    assert {node.op for node in middle.nodes} & {"data_x", "data_y"} == set()


def test_stage_programs__a_participant_bound_to_its_group_s_mail_round_trips_and_refuses_a_bad_mail():
    sp = export_stage_program(TWO_BY_TWO, 3)
    program = participant_program(sp, TWO_BY_TWO)
    again = Program.from_bytes(program.to_bytes())
    assert again.mail == program.mail and again.root == program.root != sp.program.root
    moved = dataclasses.replace(program, mail=dataclasses.replace(program.mail, offset=program.mail.offset - 1))
    assert moved.root != program.root  # the root commits where its messages sit
    raw = program.to_dict()
    for change, words in (({"inbox": raw["mail"]["inbox"][:-1]}, "place every message"),
                          ({"offset": raw["mail"]["per_step"]}, "mail offset"),
                          ({"root": "0x" + "00" * 32}, "unknown field"),
                          ({"extra": 1}, "unknown field")):
        with pytest.raises(GraphError, match=words):
            Program.from_dict({**raw, "mail": {**raw["mail"], **change}})


def test_stage_programs__an_executor_refuses_missing_or_misshapen_messages():
    spec = TWO_GPIPE
    sp = export_stage_program(spec, 1)
    executor = ProgramExecutor(sp.program)
    x, y, hyper = step_inputs(spec, 0, 1)
    state = initial_state(spec, 1)
    with pytest.raises(GraphError, match="receives 5 message"):
        executor.run(state, x, y, hyper)
    with pytest.raises(GraphError, match="receives 5 message"):
        executor.run(state, x, y, hyper, messages=[torch.zeros(2, 8, 16)])
    shapes = [torch.zeros(2, 8, 16)] * 4 + [torch.zeros(2)]
    with pytest.raises(GraphError, match=r"message 4 is torch.float32\[2\], the step reads float32\[1\]"):
        executor.run(state, x, y, hyper, messages=shapes)


def test_stage_programs__recv_leaves_must_be_numbered_in_order_and_sends_computed():
    sp = export_stage_program(TWO_GPIPE, 1)
    raw = sp.program.to_dict()
    recvs = [i for i, node in enumerate(raw["nodes"]) if node[0] == "recv"]
    raw["nodes"][recvs[0]][4] = [3]
    with pytest.raises(GraphError, match="recv leaves must be numbered"):
        Program.from_dict(raw)
    raw = sp.program.to_dict()
    raw["sends"][0] = recvs[0]
    with pytest.raises(GraphError, match="a sent message is a computed float32 node"):
        Program.from_dict(raw)


@pytest.mark.parametrize("change, words", [
    ({"aqsgd": AQSGDConfig()}, "AQ-SGD"),
    ({"diloco": DiLoCoConfig(compress="topk")}, "DiLoCo's 'topk' pseudo-gradients"),
])
def test_stage_programs__what_is_not_captured_yet_is_refused_in_one_line(change, words):
    with pytest.raises(GraphError, match=words):
        export_stage_program(dataclasses.replace(THREE, **change), 0)


def test_stage_programs__a_participant_step_is_not_postable_as_a_task():
    spec = TWO_GPIPE
    sp = export_stage_program(spec, 0)
    weights = {slot.name: t for slot, t in zip(sp.program.state, initial_state(spec, 0)) if slot.kind == "param"}
    rows, labels, _ = step_inputs(spec, 0, 0)
    task = program_task(sp.program, spec.optimizer_config(), weights, Dataset(rows, labels), steps=4, k=2, seed=1).task
    assert program_unjudgeable_reason(sp.program, task) == (
        "the program is a group participant's step (it receives or sends messages): a task trains a whole model")


@pytest.mark.parametrize("name", list(SPECS))
def test_stage_programs__the_mail_places_every_message_received_where_its_sender_sent_it(trained, name):
    spec = SPECS[name]
    programs, records = trained[name]
    per_step, offsets, inboxes = mail_layout(spec)
    mail = group_mail(records)
    assert len(mail) == spec.steps * per_step and per_step == sum(len(sp.sends) for sp in programs)
    for sp, record in zip(programs, records):
        assert offsets[sp.rank] == sum(len(other.sends) for other in programs[:sp.rank])
        for step, received in enumerate(record.received):
            assert [mail[step * per_step + p] for p in inboxes[sp.rank]] == [tensor_root(t) for t in received]


def test_stage_programs__message_names_are_the_schedule_s():
    received = export_stage_program(THREE, 1).receives
    assert received[0] == Message("activation", 0, 1, 0)
    assert [m.kind for m in received].count("gradient") == THREE.micro_batches
    assert received[-2:] == (Message("grad_sq", 0, 1, -1), Message("grad_sq", 2, 1, -1))
    received, sent = messages_of(TWO_BY_TWO, 3)  # stage 1 of replica 1
    assert received[-2:] == (Message("grad_sum", 1, 3, -1), Message("grad_sq", 2, 3, -1))
    assert sent[-2:] == (Message("grad_sum", 3, -1, -1), Message("grad_sq", 3, -1, -1))
    assert peers_of(TWO_BY_TWO, sent[-2]) == [1] and peers_of(TWO_BY_TWO, sent[-1]) == [2]
    received, sent = messages_of(DILOCO, 3)  # DiLoCo: no gradient all-reduce, pseudo-gradients instead
    assert received[-2:] == (Message("grad_sq", 2, 3, -1), Message("outer", 1, 3, -1))
    assert [m.kind for m in sent] == ["gradient", "gradient", "grad_sq", "outer"] and peers_of(DILOCO, sent[-1]) == [1]


# ── the engine's processes running the programs (TrainSpec.programs) ──
@pytest.fixture(scope="module")
def engine_run(tmp_path_factory):
    """A 2 x 2 group trained by the engine's four processes, each running its step program and
    publishing its parts, a checkpoint every step; and the same group with rank 1 cheating."""
    spec = dataclasses.replace(TWO_BY_TWO, programs=True, checkpoint_interval=1)
    honest, cheated = tmp_path_factory.mktemp("honest"), tmp_path_factory.mktemp("cheated")
    return spec, run(spec, parts_dir=honest), honest, cheated, run(spec, parts_dir=cheated, tamper=Tamper(1, 1))


def _same_bits_as_the_threads(spec, result, programs, records) -> None:
    for sp, rank in zip(programs, result.ranks):
        params = {slot.name.split("/", 1)[1]: value for slot, value in zip(sp.program.state, records[sp.rank].states[-1])
                  if slot.kind == "param"}
        assert rank["state"].keys() == params.keys()
        assert all(torch.equal(rank["state"][name], params[name]) for name in params)
    last = [record.losses for sp, record in zip(programs, records) if sp.rank % spec.stages == spec.stages - 1]
    assert result.losses == pytest.approx([sum(values) / len(values) for values in zip(*last)], abs=1e-6)
    assert result.replicas_equal


def test_stage_programs__the_engine_s_processes_running_them_compute_the_bits_of_the_threads(trained, engine_run):
    spec, result, *_ = engine_run
    _same_bits_as_the_threads(spec, result, *trained["2 stages x 2 replicas"])


def test_stage_programs__three_stages_processes_each_send_their_norm_before_reading_the_others(trained):
    """The last stage's clipping norm sums the others' first (rank order): its own must be sent
    before it reads theirs, or the all-gather never completes."""
    spec = dataclasses.replace(THREE, programs=True)
    _same_bits_as_the_threads(spec, run(spec), *trained["3 stages, 1f1b, clipped"])


def test_stage_programs__every_published_segment_replays_exactly_and_a_cheater_is_the_only_one_rejected(engine_run):
    spec, _result, honest, cheated, _ = engine_run
    check_group(spec, honest)
    verdicts = [replay_participant(spec, honest, rank, segment) for rank, segment in segments(spec)]
    assert all(v.accept and v.exact for v in verdicts), [v.reason for v in verdicts if not v.accept]
    rejected = [(v.rank, v.segment) for v in (replay_participant(spec, cheated, rank, segment)
                                               for rank, segment in segments(spec)) if not v.accept]
    assert rejected == [(1, 1)]  # the tamper after its step 1 is in its checkpoint 2, the end of segment 1


def test_stage_programs__the_published_parts_give_the_threads_mail(trained, engine_run):
    spec, _result, honest, *_ = engine_run
    _, records = trained["2 stages x 2 replicas"]
    assert published_mail(spec, honest) == group_mail(records)


def test_group_result__the_whole_model_is_replica_0_s_last_checkpoints_checked_against_the_proof(engine_run, tmp_path):
    """What a submitter gets of a group task (`trained_model`): the engine's own final model, from
    every participant's proof.json and replica 0's last checkpoint of each stage, nothing else
    fetched; parts whose roots are not the proof's, or a checkpoint in another's place, refused."""
    spec, result, honest, cheated, _ = engine_run
    roots = [P.load_participant(honest, rank).checkpoint_roots for rank in range(spec.world)]
    document = GroupProofDocument({str(f.relative_to(honest)): str(f) for f in honest.rglob("*") if f.is_file()},
                                  group_proof_root(roots, [])[0])
    fetched = []

    def fetch_from(parts: Path, into: Path, swap: dict[str, str] | None = None):
        def fetch(name: str) -> None:
            fetched.append(name)
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            (into / name).write_bytes((parts / (swap or {}).get(name, name)).read_bytes())
        return fetch

    state = trained_model(spec, document, tmp_path / "a", fetch_from(honest, tmp_path / "a"))
    last = len(roots[0]) - 1
    assert sorted(fetched) == sorted([f"rank{r}/proof.json" for r in range(spec.world)]
                                     + [f"rank{s}/checkpoint-{last}.safetensors" for s in range(spec.stages)])
    assert state.keys() == result.state.keys() and all(torch.equal(state[n], result.state[n]) for n in state)
    build_gpt(spec).load_state_dict(state)  # strict: every parameter of the model, by its name
    with pytest.raises(GroupProofError, match="do not give the proof's checkpoints root"):
        trained_model(spec, document, tmp_path / "b", fetch_from(cheated, tmp_path / "b"))
    swapped = {f"rank0/checkpoint-{last}.safetensors": f"rank0/checkpoint-{last - 1}.safetensors"}
    with pytest.raises(P.PartsError, match="does not match its committed root"):
        trained_model(spec, document, tmp_path / "c", fetch_from(honest, tmp_path / "c", swapped))


def test_stage_programs__one_run_of_many_specs_starts_however_many_constants_their_programs_hold():
    """The engine's ranks read their step programs as data. Sent as pickled tensors, every
    constant crossed as shared memory, a file descriptor each, and a process start passes at
    most 253: the distributed bench's eight program specs could not start their ranks."""
    specs = [dataclasses.replace(TWO_GPIPE, programs=True, quantize=QuantizeConfig(4, 8), steps=1, seed=seed)
             for seed in range(7)]
    assert sum(len(export_stage_program(spec, rank).program.constants) for spec in specs for rank in range(2)) > 253
    results = run_many(specs)
    assert [len(result.losses) for result in results] == [1] * len(specs)
    assert len({result.losses[0] for result in results}) == len(specs)  # each ran its own seed's batches


def test_stage_programs__a_spec_with_programs_refuses_what_its_programs_cannot_compute():
    with pytest.raises(ValueError, match="not captured as programs yet"):
        dataclasses.replace(THREE, programs=True, aqsgd=AQSGDConfig(bits=4))
    with pytest.raises(ValueError, match="top-k sorts"):
        dataclasses.replace(DILOCO, programs=True, diloco=DiLoCoConfig(2, compress="topk"))
    with pytest.raises(ValueError, match="bits must be an integer"):
        dataclasses.replace(DILOCO, programs=True, diloco=DiLoCoConfig(2, compress="quant", bits=1))
    with pytest.raises(ValueError, match="every DiLoCo round is whole"):
        dataclasses.replace(DILOCO, programs=True, steps=5)
    dataclasses.replace(DILOCO, programs=True, diloco=DiLoCoConfig(2, compress="quant", bits=4))


# ── DiLoCo: rounds of inner steps, pseudo-gradients at their ends ───
def test_stage_programs__diloco_replicas_exchange_pseudo_gradients_at_a_round_s_end_and_take_its_outer_step(trained):
    """Inside a round every replica trains on its own and its pseudo-gradient message is zero;
    at a round's end the replicas send ``global - params``, and each takes the outer Nesterov step
    (`compression.OuterNesterov`) of their mean from the global parameters: the replicas'
    parameters, global parameters and velocities then agree bit for bit."""
    spec = DILOCO
    d = spec.diloco
    programs, records = trained["2 x 2 DiLoCo"]
    for stage in range(spec.stages):
        sp, replicas = programs[stage], [records[rank] for rank in replica_ranks(spec, stage)]
        names = [slot.name for slot in sp.program.state]
        params = [i for i, name in enumerate(names) if name.startswith("param/")]
        glob = [names.index("diloco.global/" + names[i].split("/", 1)[1]) for i in params]
        velocity = [names.index("diloco.velocity/" + names[i].split("/", 1)[1]) for i in params]
        assert all(programs[rank].sends[-1].kind == "outer" for rank in replica_ranks(spec, stage))
        for step in range(spec.steps):
            pseudo = [record.sent[step][-1] for record in replicas]
            after = [record.states[step + 1] for record in replicas]
            if (step + 1) % d.inner_steps:
                assert not any(p.any() for p in pseudo)
                assert not torch.equal(after[0][params[0]], after[1][params[0]])  # each trains on its own
                continue
            before = replicas[0].states[step]
            mean = (pseudo[0] + pseudo[1]) / spec.replicas
            nesterov = C.OuterNesterov(d.outer_lr, d.outer_momentum)
            nesterov.velocity = [before[i].clone() for i in velocity]
            expected = [before[i].clone() for i in glob]
            nesterov.step(expected, [part.view(t.shape) for part, t in zip(mean.split([t.numel() for t in expected]), expected)])
            for state in after:
                assert all(torch.equal(state[i], want) for i, want in zip(params, expected))
                assert all(torch.equal(state[i], state[j]) for i, j in zip(params, glob))
                assert all(torch.equal(state[i], want) for i, want in zip(velocity, nesterov.velocity))
            assert all(torch.equal(after[0][i], after[1][i]) for i in params + glob + velocity)  # Adam's stay each its own


def test_stage_programs__diloco_s_processes_send_nothing_inside_a_round_and_every_segment_replays_exactly(trained, tmp_path):
    """The engine's processes running DiLoCo's programs: the links carry the pseudo-gradients at
    rounds' ends only (the module engine's bytes a step, float32; 4-bit codes save exactly their
    packing), every message arrives as the threads' sent it, every segment replays exactly."""
    spec = dataclasses.replace(DILOCO, programs=True, checkpoint_interval=1)
    result = run(spec, parts_dir=tmp_path / "float32")
    _same_bits_as_the_threads(spec, result, *trained["2 x 2 DiLoCo"])
    assert result.bytes_per_step == run(DILOCO).bytes_per_step
    quantised = dataclasses.replace(spec, diloco=dataclasses.replace(spec.diloco, compress="quant", bits=4))
    with execution_context(1):
        _, records = train_stage_programs(quantised)
    coded = run(quantised, parts_dir=tmp_path / "quantised")
    assert published_mail(quantised, tmp_path / "quantised") == group_mail(records)
    for run_spec, parts in ((spec, tmp_path / "float32"), (quantised, tmp_path / "quantised")):
        verdicts = [replay_participant(run_spec, parts, rank, segment) for rank, segment in segments(run_spec)]
        assert all(v.accept and v.exact for v in verdicts), [v.reason for v in verdicts if not v.accept]
    saved = 0
    for stage in range(spec.stages):  # each replica gathers the other's pseudo-gradient, once a round
        count = sum(p.numel() for p in StageRunner(spec, stage).params)
        saved += 2 * (4 * count - C.quantized_size(sum_rows(count), SUM_ROW, 4)) / spec.diloco.inner_steps
    assert result.bytes_per_step - coded.bytes_per_step == saved


# ── quantised stage messages (TrainSpec.quantize) ────────────────────
def test_quantize__a_message_is_the_compression_codec_s_codes_and_scales_and_crosses_the_wire_exactly():
    """The traced quantiser gives the codes and scales of `compression.quantize_rows` (a row longer
    than a chunk included), its inverse the codec's dequantised tensor bit for bit, and the wire
    carries the message in ``bits`` a code, back to the float32 bits the sender committed."""
    x = torch.randn(4, 16, 24, generator=torch.Generator().manual_seed(1)) * torch.tensor([1e-3, 1.0, 30.0, 0.0]).view(4, 1, 1)
    for bits in (2, 4, 8):
        message = quantize(x, bits)
        codes, scales = C.quantize_rows(x, bits)
        assert torch.equal(message[-4:], scales) and torch.equal(message[:-4], (codes - levels(bits)).float().view(-1))
        assert torch.equal(dequantize(message, x.shape, bits), C.dequantize_rows(codes, scales, bits))
        wire = C.pack_program_message(message, 4, bits)
        assert wire.numel() == C.quantized_size(4, 16 * 24, bits) < x.numel() * 4 * bits / 16
        back = C.unpack_program_message(wire, 4, 16 * 24, bits)
        assert torch.equal(back.view(torch.int32), message.view(torch.int32))
    assert not (quantize(-x.abs() * 1e-9 + 0.0, 4).view(torch.int32) == -2**31).any()  # no −0 code
    with pytest.raises(ValueError, match="not integers"):
        C.pack_program_message(message + 0.5, 4, 8)


QUANTISED = dataclasses.replace(TWO_BY_TWO, programs=True, checkpoint_interval=1, quantize=QuantizeConfig(4, 8, 8))


def test_stage_programs__quantised_messages_cross_the_links_packed_and_every_segment_replays_exactly(tmp_path):
    """Four processes, stage messages in 4 bits forward and 8 backward, all-reduce contributions in
    8: the links carry the packed codes (the bytes a step sends drop by exactly the packing of
    those messages), every message arrives as
    its sender's program computed it (the published mail is the threads'), every segment replays
    exactly, and the loss follows the uncompressed run's."""
    with execution_context(1):
        _, records = train_stage_programs(QUANTISED)
        _, plain = train_stage_programs(dataclasses.replace(QUANTISED, quantize=None))
    result = run(QUANTISED, parts_dir=tmp_path)
    uncompressed = run(dataclasses.replace(QUANTISED, quantize=None), parts_dir=tmp_path / "plain")
    assert published_mail(QUANTISED, tmp_path) == group_mail(records)
    verdicts = [replay_participant(QUANTISED, tmp_path, rank, segment) for rank, segment in segments(QUANTISED)]
    assert all(v.accept and v.exact for v in verdicts), [v.reason for v in verdicts if not v.accept]
    rows, per_row = QUANTISED.activation_shape[0], math.prod(QUANTISED.activation_shape[1:])
    stage_messages = QUANTISED.replicas * QUANTISED.micro_batches  # each way, per step
    saved = stage_messages * (2 * 4 * rows * per_row - C.quantized_size(rows, per_row, 4) - C.quantized_size(rows, per_row, 8))
    for stage in range(QUANTISED.stages):  # each replica gathers the other's contribution
        count = sum(p.numel() for p in StageRunner(QUANTISED, stage).params)
        saved += 2 * (4 * count - C.quantized_size(sum_rows(count), SUM_ROW, 8))
    assert uncompressed.bytes_per_step - result.bytes_per_step == saved
    losses = [r.losses for r in records[1::2]]
    assert losses != [r.losses for r in plain[1::2]]  # the messages were quantised
    assert result.losses[-1] == pytest.approx(uncompressed.losses[-1], rel=0.02)
