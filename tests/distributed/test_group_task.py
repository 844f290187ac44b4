"""A group task as the market holds it (docs/group-tasks.md §4.3): derived from its spec alike by
every worker, refused when its participants could not be judged, and its proof document read
strictly."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from offchain.dispute.limits import UnjudgeableTask
from offchain.distributed import stage_program
from offchain.distributed.group import GroupError, group_proof_root, group_task, spec_bytes, spec_from_json
from offchain.distributed.group_proof import FORMAT, GroupProofDocument, GroupProofError, read_document
from offchain.distributed.spec import GPTShape, QuantizeConfig, TrainSpec
from offchain.distributed.stage import build_gpt
from offchain.ml.commit import merkle_root
from offchain.storage import LocalStore
from offchain.workers.artifacts import check_group_judgeable, fetch_any_task, publish_group_task

SPEC = TrainSpec(model=GPTShape(seq_len=8, dim=16, heads=2, layers=2), stages=2, steps=2, batch_size=4,
                 micro_batches=2, train_rows=16, holdout_rows=16, sampling="task", checkpoint_interval=1,
                 programs=True)


def test_group_task__workers_on_threads_of_one_process_derive_the_same_weights():
    """A solver and a verifier derive a posted group task at once: each must get the seed's
    initial weights, whatever the other draws from torch's global generator meanwhile."""
    reference = [p.detach().clone() for p in build_gpt(SPEC).parameters()]
    built: list[list] = []

    def build() -> None:
        for _ in range(20):
            built.append([p.detach() for p in build_gpt(SPEC).parameters()])

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 60 and all(all(a.equal(b) for a, b in zip(reference, w)) for w in built)


def test_group_task__its_spec_document_gives_the_same_task():
    posted = group_task(SPEC)
    again = group_task(spec_from_json(json.loads(spec_bytes(SPEC))))
    assert again.hash() == posted.hash() and len(posted.participants) == 2


@pytest.mark.parametrize("change, words", [({"programs": False}, "needs programs"),
                                           ({"checkpoint_interval": 0}, "needs a checkpoint_interval")])
def test_group_task__a_spec_whose_participants_the_game_could_not_judge_is_refused(change, words):
    with pytest.raises(GroupError, match=words):
        group_task(dataclasses.replace(SPEC, **change))


def test_group_task__a_participant_step_the_game_could_not_judge_is_refused_at_publish_and_at_fetch(tmp_path):
    """As a single task is (tests/arbitration/test_arbitration_limits.py): a checkpoint interval
    the solver cannot dissect, here every participant's, is refused before the spec is uploaded,
    and a spec uploaded by other tooling is refused by the workers that fetch it."""
    store = LocalStore(tmp_path / "ipfs")
    fine = group_task(SPEC)
    assert fetch_any_task(store, publish_group_task(store, fine).spec_cid, fine.hash()).hash() == fine.hash()
    long = group_task(dataclasses.replace(SPEC, steps=257, checkpoint_interval=257))
    with pytest.raises(UnjudgeableTask, match="^group participant 0: checkpoint interval 257 exceeds 256"):
        publish_group_task(store, long)
    with pytest.raises(UnjudgeableTask, match="^group participant 0: checkpoint interval 257"):
        fetch_any_task(store, store.add_bytes(spec_bytes(long.spec)), long.hash())


def test_group_task__a_quantised_row_max_is_a_tree_of_maxima_the_judge_reads_whole(monkeypatch):
    """A 2-stage group whose 128-value rows (8 positions × 16 wide) are quantised: its row maxima
    are maxima of at most 64 terms, so every participant is judgeable; as one amax per row (an
    amax is not dissected) the game could not judge it."""
    quantised = dataclasses.replace(SPEC, quantize=QuantizeConfig(4, 8))
    check_group_judgeable(group_task(quantised))
    monkeypatch.setattr(stage_program, "_max_abs", lambda rows: rows.abs().amax(1))
    stage_program.export_stage_program.cache_clear()
    try:
        with pytest.raises(UnjudgeableTask, match="amax.*reduces 128 terms"):
            check_group_judgeable(group_task(quantised))
    finally:
        stage_program.export_stage_program.cache_clear()


def test_group_proof__the_document_is_read_only_when_its_roots_give_the_proof_root():
    checkpoints_root, proof_root = group_proof_root([[bytes(32)] * 3] * 2, [bytes.fromhex("11" * 32)])
    doc = {"format": FORMAT, "files": {"rank0/proof.json": "Qm1", "group.json": "Qm2"},
           "checkpoints_root": "0x" + checkpoints_root.hex(), "mail_root": "0x" + merkle_root([bytes.fromhex("11" * 32)]).hex()}
    assert read_document(json.dumps(doc).encode(), proof_root) == GroupProofDocument(doc["files"], checkpoints_root)
    wrong = {"another proof root": (doc, bytes(32), "do not give the proof root"),
             "a path outside the parts": ({**doc, "files": {"../etc/passwd": "Qm"}}, proof_root, "part paths"),
             "an absolute path": ({**doc, "files": {"/rank0/proof.json": "Qm"}}, proof_root, "part paths"),
             "a name with a newline": ({**doc, "files": {"group.json\n": "Qm"}}, proof_root, "part paths"),
             "no files": ({**doc, "files": {}}, proof_root, "part paths"),
             "another format": ({**doc, "format": "x"}, proof_root, "not a group proof document"),
             "a short root": ({**doc, "mail_root": "0x12"}, proof_root, "mail_root is not")}
    for what, (document, root, words) in wrong.items():
        with pytest.raises(GroupProofError, match=words):
            read_document(json.dumps(document).encode(), root)
    with pytest.raises(GroupProofError, match="not JSON"):
        read_document(b"\xff", proof_root)
