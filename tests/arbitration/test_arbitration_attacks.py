"""Attacks on the dispute game, each named after what it tries, each with the defence it meets:

* demand griefing: the challenger repeats large data-availability demands so that the honest solver
  pays far more gas answering than the challenger pays asking;
* non-canonical padding: a tensor committed with non-zero padding bytes or padding leaves, so that
  two roots hold the same values;
* training from the solver's own weights: checkpoint 0 is not the task's initial weights;
* market coupling: the game needs nothing of the market but `dispute_view` and `resolve`, and
  tells it whether the challenger's win was proven;
* code headroom: every contract keeps 2 KiB under the EIP-170 limit.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import arbitration_testing as T
import boa
import pytest
import torch
from eth_utils import keccak

from offchain.chain.suite import CONTRACTS, TaskState
from offchain.dispute import game as G
from offchain.dispute import moves as M
from offchain.dispute import program_moves as P
from offchain.ml.commit import (
    TensorRangeProof,
    CommitmentError,
    keccak256,
    leaf_hashes,
    merkle_root,
    sized_root,
    tensor_bytes,
    tensor_range_proof,
    tensor_root,
    verify_range_proof,
    verify_tensor_range,
)
from offchain.ml.program import trace_roots

VYPER = Path(sys.executable).parent / "vyper"
GWEI = 10**9
ANSWER_GAS, ANSWER_ELEMENT_GAS, FEE_MARGIN = 400_000, 2_200, 2


def _set_basefee(wei: int) -> None:
    boa.env.evm.vm.state.execution_context._base_fee_per_gas = wei


@pytest.fixture(autouse=True)
def _restore_basefee():
    before = boa.env.evm.vm.state.execution_context.base_fee_per_gas
    yield
    _set_basefee(before)


def _demand(suite, parties, play, dispute_id, node, start, count, value=None):
    args = P.demand_args(suite.game.address, dispute_id, play.step_data(), node, start, count)
    fee = suite.game.demand_fee(count) if value is None else value
    return T.tx_gas(suite.programs, "demand_elements", parties.verifier, *args, value=fee)


def _post(suite, parties, play, dispute_id, node, start, count):
    args = M.post_args(suite.game.address, dispute_id, play.trace, node, start, count)
    return T.tx_gas(suite.checker, "post_elements", parties.solver, *args)


def _credits(suite, parties) -> int:
    return sum(suite.game.credits(getattr(parties, name)) for name in ("solver", "verifier", "whistleblower",
                                                                      "stranger", "submitter"))


def _assert_accounting(suite, parties) -> None:
    """The game holds exactly the fees of open demands plus what it owes."""
    assert boa.env.get_balance(suite.game.address) == suite.game.fees_held() + _credits(suite, parties)


@functools.cache
def _digits():
    from offchain.ml import cheats

    demo = T.digits_demo(steps=20, k=10, batch_size=32)
    return T.genuine_play(demo, cheats.honest_run(demo), 1, 4)


# ------------------------------------------------------------------------------- A. demand griefing


def test_demand_griefing__repeated_and_overlapping_demands_are_refused(suite, parties):
    """The same 512 elements demanded again, or any range overlapping them, is refused; adjacent
    ranges and other nodes are still open to demand."""
    play = _digits()
    _, dispute_id = T.play_to_prove(suite, parties, play)
    node = play.program.outputs[0]
    _demand(suite, parties, play, dispute_id, node, 512, 512)
    _post(suite, parties, play, dispute_id, node, 512, 512)
    for start, count in ((512, 512), (1, 512), (1023, 1), (600, 8), (1000, 100)):
        with boa.env.prank(parties.verifier), boa.reverts("arbitration: elements already posted"):
            suite.programs.demand_elements(*P.demand_args(suite.game.address, dispute_id, play.step_data(), node, start,
                                                          count), value=suite.game.demand_fee(count))
    _demand(suite, parties, play, dispute_id, node, 0, 512)       # ends where the answered range starts
    _post(suite, parties, play, dispute_id, node, 0, 512)
    _demand(suite, parties, play, dispute_id, node, 1024, 1)      # starts where it ended
    _post(suite, parties, play, dispute_id, node, 1024, 1)
    _demand(suite, parties, play, dispute_id, play.program.leaf("data_x"), 512, 8)  # same range, another node
    assert suite.game.disputes(dispute_id).demands == 4


def test_demand_griefing__every_demand_pays_for_its_answer(suite, parties):
    """Each demand costs the challenger at least FEE_MARGIN x the gas its answer costs the solver,
    over every leaf layout (single elements, ranges straddling leaves, whole leaves, int64 labels);
    the fee is the solver's once it answers. Without the fee 64 demands of 512 cost the solver
    about 69 M gas against the challenger's 6 M."""
    play = _digits()
    program = play.program
    _, dispute_id = T.play_to_prove(suite, parties, play)
    for basefee in (1, 7 * GWEI, 37 * GWEI):
        _set_basefee(basefee)
        for count in (1, 512):
            assert suite.game.demand_fee(count) == (ANSWER_GAS + count * ANSWER_ELEMENT_GAS) * basefee * FEE_MARGIN
            assert M.demand_fee(count, basefee) == suite.game.demand_fee(count)
            assert M.demand_value(count, basefee) >= M.demand_fee(count, basefee + basefee // 8)
    cases = [(program.leaf("data_y"), 0, 32), (program.leaf("data_y"), 31, 1)]
    for node in (program.outputs[0], program.leaf("data_x")):
        cases += [(node, s, c) for c in (1, 8, 256, 512) for s in (0, 511, 2048 - c)]
    solver_paid = challenger_paid = fees = 0
    for node, start, count in cases:
        with boa.env.anchor():
            fee = suite.game.demand_fee(count)
            before = suite.game.credits(parties.solver)
            challenger_paid = _demand(suite, parties, play, dispute_id, node, start, count)
            assert suite.game.fees_held() == fee
            solver_paid = _post(suite, parties, play, dispute_id, node, start, count)
            assert fee >= FEE_MARGIN * basefee * solver_paid, (node, start, count, solver_paid)
            assert suite.game.credits(parties.solver) - before == fee
            assert suite.game.fees_held() == 0
            _assert_accounting(suite, parties)
            fees += fee
    assert challenger_paid > 0 and fees > 0
    with boa.env.prank(parties.verifier), boa.reverts("arbitration: demand fee too low"):
        suite.programs.demand_elements(*P.demand_args(suite.game.address, dispute_id, play.step_data(),
                                                      program.outputs[0], 0, 512), value=suite.game.demand_fee(512) - 1)


def test_demand_griefing__overpayment_credited_and_fees_withdrawn(suite, parties):
    play = _digits()
    node = play.program.outputs[0]
    _, dispute_id = T.play_to_prove(suite, parties, play)
    _set_basefee(5 * GWEI)
    fee = suite.game.demand_fee(64)
    _demand(suite, parties, play, dispute_id, node, 0, 64, value=fee + 12345)
    [log] = T.events(suite.programs, "ElementsDemanded")
    assert (log.node, log.start, log.count, log.fee) == (node, 0, 64, fee)
    assert suite.game.credits(parties.verifier) == 12345
    assert suite.game.fees_held() == fee
    _assert_accounting(suite, parties)
    _post(suite, parties, play, dispute_id, node, 0, 64)
    assert suite.game.credits(parties.solver) == fee
    _assert_accounting(suite, parties)
    solver_balance = boa.env.get_balance(parties.solver)
    with boa.env.prank(parties.solver):
        suite.game.withdraw()
    [withdrawn] = T.events(suite.game, "Withdrawn")
    assert (withdrawn.account, withdrawn.amount) == (parties.solver, fee)
    assert boa.env.get_balance(parties.solver) == solver_balance + fee
    assert suite.game.credits(parties.solver) == 0
    with boa.env.prank(parties.solver), boa.reverts("arbitration: nothing to withdraw"):
        suite.game.withdraw()
    _assert_accounting(suite, parties)


def test_demand_griefing__unanswered_fee_is_refunded_at_the_end(suite, parties):
    """A solver that lets a demand time out loses the game and never sees the fee: it goes back to
    the demander, and the market is told the challenger won on time, not by proof."""
    play = _digits()
    node = play.program.outputs[0]
    _, dispute_id = T.play_to_prove(suite, parties, play)
    _set_basefee(3 * GWEI)
    fee = suite.game.demand_fee(512)
    _demand(suite, parties, play, dispute_id, node, 0, 512)
    assert boa.env.get_balance(suite.game.address) == fee
    boa.env.time_travel(seconds=suite.game.deadline(dispute_id) - boa.env.timestamp + 1)
    suite.game.timeout(dispute_id)
    assert suite.game.disputes(dispute_id).phase == G.CHALLENGER_WON
    assert T.verdict(suite, dispute_id) == (False, False, 1)
    assert suite.game.credits(parties.verifier) == fee and suite.game.credits(parties.solver) == 0
    assert suite.game.fees_held() == 0
    _assert_accounting(suite, parties)


# ------------------------------------------------------------------------------- B. non-canonical padding


def _padded_leaf_root(tensor: torch.Tensor) -> tuple[bytes, bytes]:
    """(root, leaf) of a one-leaf tensor committed with a non-zero last padding byte."""
    data = tensor_bytes(tensor)
    leaf = data + bytes(-len(data) % 32 - 1) + b"\x01"
    return sized_root(keccak256(leaf), tensor.numel()), leaf


def test_non_canonical_padding__last_leaf_bytes_refused(suite):
    tensor = torch.arange(10, dtype=torch.float32)          # 40 bytes: one 64-byte leaf, 24 padding bytes
    root, leaf = _padded_leaf_root(tensor)
    canonical = tensor_root(tensor)
    assert root != canonical
    with boa.reverts("arbitration: tensor opening invalid"):
        suite.reader.open_elements(root, 10, 4, ([0], [leaf], []), 0, 1, 1)
    good = M.tensor_opening(tensor, [3])
    assert suite.reader.open_elements(canonical, 10, 4, good, 3, 1, 1) == [0x40400000]  # 3.0f
    proof = tensor_range_proof(tensor, 0, 10)
    forged = TensorRangeProof(10, 4, 0, 10, 0, (leaf,), ())
    with pytest.raises(CommitmentError, match="non-zero padding"):
        verify_tensor_range(root, forged)
    assert verify_tensor_range(canonical, proof).tolist() == list(range(10))


def test_non_canonical_padding__padding_leaf_refused(suite):
    """1100 float32 (4,400 bytes) make three leaves in a tree of four: leaf 3 is padding. A root
    with a non-zero leaf 3 cannot open the last real leaf, on chain or off chain."""
    tensor = torch.linspace(-1, 1, 1100, dtype=torch.float32)
    hashes = leaf_hashes(tensor_bytes(tensor))
    assert len(hashes) == 3
    fake_pad = keccak(b"padding")
    root = sized_root(keccak256(keccak256(hashes[0] + hashes[1]) + keccak256(hashes[2] + fake_pad)), 1100)
    positions, leaves, siblings = M.tensor_opening(tensor, [1099])
    assert siblings[0] == bytes(32)                          # the canonical padding sibling
    with boa.reverts("arbitration: tensor opening invalid"):
        suite.reader.open_elements(root, 1100, 4, (positions, leaves, [fake_pad, *siblings[1:]]), 1099, 1, 1)
    assert M.multi_root(positions, [keccak256(leaves[0])], [fake_pad, *siblings[1:]], 3) is None
    fake_data_root = merkle_root([*hashes, fake_pad])        # four leaves given: no zero padding added
    assert not verify_range_proof(fake_data_root, [hashes[2]], 2, [fake_pad, *siblings[1:]], 3)
    assert verify_range_proof(merkle_root(hashes), [hashes[2]], 2, siblings, 3)
    canonical = tensor_root(tensor)
    assert len(suite.reader.open_elements(canonical, 1100, 4, (positions, leaves, siblings), 1099, 1, 1)) == 1


def test_non_canonical_padding__solver_cannot_answer_the_last_element(suite, parties):
    """A trace whose tensor root has non-zero padding: the challenger demands the last element, the
    solver cannot open it and loses on time."""
    play = T.honest_play()
    program = play.program
    node = program.nodes[program.outputs[-1]]               # the last update: a bias of 3 elements
    root, leaf = _padded_leaf_root(play.trace[node.id])
    roots = trace_roots(play.trace)
    roots[node.id] = root
    task_id, dispute_id = T.open_dispute(suite, parties, play.demo, play.checkpoint_roots, play.segment)
    with boa.env.prank(parties.solver):
        suite.game.reveal_segment(*M.reveal_segment_args(dispute_id, play.segment, play.task, play.state_roots,
                                                         play.checkpoint_roots))
    revealed = [play.state_roots[p] for p in M.dissection_points(play.task.checkpoint_interval)]
    with boa.env.prank(parties.verifier):
        suite.game.pick_step(*M.pick_step_args(dispute_id, revealed, play.pick))
    with boa.env.prank(parties.solver):
        suite.game.commit_trace(dispute_id, play.step, merkle_root(roots))
    with boa.env.prank(parties.verifier):
        suite.programs.demand_elements(suite.game.address, dispute_id, merkle_root(roots), M.commitments(play.task),
                                       P.program_commit(program, play.task), P.program_opening(program, [node.id]),
                                       node.numel - 1, 1, value=suite.game.demand_fee(1))
    with boa.env.prank(parties.solver), boa.reverts("arbitration: tensor opening invalid"):
        suite.checker.post_elements(suite.game.address, dispute_id, node.id, node.numel - 1, 1, root,
                                    M.multiproof(roots, [node.id]), ([0], [leaf], []))
    boa.env.time_travel(seconds=suite.game.deadline(dispute_id) - boa.env.timestamp + 1)
    suite.game.timeout(dispute_id)
    assert T.verdict(suite, dispute_id) == (False, False, 1)
    assert suite.market.tasks(task_id).state == TaskState.OPEN


# ------------------------------------------------------------------------------- C. the start of training


def test_training_from_own_weights__segment_0_cannot_be_revealed(suite, parties, syn):
    """The solver trained (honestly) from weights of its own choosing: its checkpoint 0 is not the
    task's weights_root. It cannot reveal segment 0 and loses on time."""
    own = [keccak(b"solver's own weights"), *syn.checkpoint_roots[1:]]
    task_id, dispute_id = T.post_and_challenge(suite, parties, syn.spec_hash, own, 0)
    roots = [own[0], *syn.state_roots(0)[1:]]
    args = M.reveal_segment_args(dispute_id, 0, T.syn_task(syn), roots, own)
    with boa.env.prank(parties.solver), boa.reverts("arbitration: first state is not the task's weights"):
        suite.game.reveal_segment(*args)
    boa.env.time_travel(seconds=T.CLOCK + 1)
    suite.game.timeout(dispute_id)
    assert T.verdict(suite, dispute_id) == (False, False, 1)
    # a solver that started from the task's weights reveals segment 0
    _, honest = T.open_synthetic(suite, parties, syn, segment=0)
    T.reveal_synthetic(suite, parties, syn, honest, segment=0)
    assert suite.game.disputes(honest).phase == G.PICK


def test_training_from_own_weights__k_comes_from_the_commitments(suite, parties, syn):
    """k is the committed checkpoint interval: a reveal sized for any other k is refused."""
    _, dispute_id = T.open_synthetic(suite, parties, syn, segment=1)
    roots = syn.state_roots(1)
    with boa.env.prank(parties.solver), boa.reverts("arbitration: wrong number of state roots"):
        suite.game.reveal_segment(dispute_id, 1, syn.commitments, roots[:-2] + roots[-1:], [])


# ------------------------------------------------------------------------------- D. market coupling


def test_market_coupling__proven_reported_for_each_ending(suite, parties):
    """The stand-in market has no Market.tasks layout at all; the game reads only dispute_view and
    reports (solver_won, proven): a final proof (output link, data row, element) is proven, every
    timeout is not."""
    outcomes = {}
    for kind in ("link", "data", "element"):
        with boa.env.anchor():
            play = T.cheat_play({"link": "honest", "data": "bad_data", "element": "forged"}[kind])
            _, dispute_id = T.play_to_prove(suite, parties, play)
            d = suite.game.disputes(dispute_id)
            proof = P.find_program_proof(suite.game.address, dispute_id, play.step_data(), d.state_after)
            if kind == "data":
                proof = P.ProgramProof("leaf", "prove_leaf_link", P.leaf_args(
                    suite.game.address, dispute_id, play.step_data(), play.program.leaf("data_x"), 0))
            with boa.env.prank(parties.verifier):
                getattr(suite.prover(proof.fn), proof.fn)(*proof.args)
            [ended] = T.events(suite.prover(proof.fn), "DisputeEnded")
            outcomes[kind] = (ended.reason, T.verdict(suite, dispute_id))
    for side in ("challenger silent", "solver silent"):
        with boa.env.anchor():
            play = T.honest_play()
            if side == "challenger silent":
                _, dispute_id = T.play_to_prove(suite, parties, play)
            else:
                _, dispute_id = T.open_dispute(suite, parties, play.demo, play.checkpoint_roots, play.segment)
            boa.env.time_travel(seconds=T.CLOCK + 1)
            suite.game.timeout(dispute_id)
            [ended] = T.events(suite.game, "DisputeEnded")
            outcomes[side] = (ended.reason, T.verdict(suite, dispute_id))
    assert outcomes == {
        "link": (T.END_LINK, (False, True, 1)),
        "data": (T.END_DATA, (False, True, 1)),
        "element": (T.END_ELEMENT, (False, True, 1)),
        "challenger silent": (T.END_TIMEOUT, (True, False, 1)),
        "solver silent": (T.END_TIMEOUT, (False, False, 1)),
    }


def test_market_coupling__views_are_not_read_while_opening(suite, parties, syn):
    """open_dispute does not call back: the stand-in holds its reentrancy lock during challenge,
    and the dispute still opens."""
    task_id, dispute_id = T.open_synthetic(suite, parties, syn)
    assert suite.market.tasks(task_id).dispute_id == dispute_id
    assert suite.market.dispute_view(task_id) == (syn.spec_hash, merkle_root(syn.checkpoint_roots),
                                                  len(syn.checkpoint_roots))


# ------------------------------------------------------------------------------- E. code headroom

CODE_LIMIT = 24_576
HEADROOM = 2_048
SIZED = ["Arbitration", "ProofChecker", "ProgramChecker", "ProgramLinkChecker", "ProgramReductionChecker", "ProgramRowJudge",
         "TensorReader", "Judge", "PointwiseJudge", "Market"]
# full by design: a new program rule goes to a contract of its own (docs/judge-programs.md §7);
# ProgramIndex since it gained chunk_inputs and transposed matmul operands (24,155 bytes)
AT_LIMIT = ["ProgramJudge", "ProgramNonlinearJudge", "ProgramIndex"]


def _runtime_size(name: str) -> int:
    out = subprocess.run([str(VYPER), "-f", "bytecode_runtime", f"{name}.vy"], cwd=CONTRACTS,
                         capture_output=True, text=True, check=True).stdout.strip()
    return (len(out) - 2) // 2


@pytest.mark.parametrize("name", SIZED)
def test_code_headroom__every_contract_keeps_2_KiB(name):
    size = _runtime_size(name)
    assert CODE_LIMIT - size >= HEADROOM, f"{name}: {size} bytes, {CODE_LIMIT - size} left"


@pytest.mark.parametrize("name", AT_LIMIT)
def test_code_headroom__a_full_contract_still_deploys(name):
    size = _runtime_size(name)
    assert size <= CODE_LIMIT, f"{name}: {size} bytes, over the {CODE_LIMIT}-byte limit"


def test_code_headroom__every_contract_is_sized():
    assert sorted(p.stem for p in CONTRACTS.glob("*.vy")) == sorted(SIZED + AT_LIMIT)
