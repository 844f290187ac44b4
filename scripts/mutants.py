#!/usr/bin/env python3
"""Mutation check: each mutant below breaks one rule of the contracts, the judge or the workers on
purpose, in a copy of the repository, and runs the tests that cover the rule. A mutant the tests
do not notice (survived) means the tests do not check that rule; a mutant whose original snippet is
no longer in its file (error) means the list fell behind the code. Every mutant must be killed.

    python scripts/mutants.py              # every mutant, as many at once as there are cores
    python scripts/mutants.py --list       # the table, without running anything
    python scripts/mutants.py --only ID    # one mutant (repeatable)
    python scripts/mutants.py --baseline   # first check that the tests pass on the unmutated code

Add a mutant whenever a rule is added: the exact snippet (it must occur once in the file), what it
becomes, and the tests that must fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1_800
# tests stop at the first failure and hypothesis does not shrink: a mutant needs one failing example
PYTEST_ARGS = ("-x", "-q", "-p", "scripts.mutant_plugin")


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str                 # must occur exactly once in ``file``
    replacement: str
    tests: tuple[str, ...]        # pytest node ids or paths that must fail
    description: str
    more: tuple[tuple[str, str], ...] = ()   # further (original, replacement) edits of the same file


JUDGE = "contracts/Judge.vy"
LINEAR_TESTS = "tests/judge/test_judge_linear.py"
POINTWISE_JUDGE = "contracts/PointwiseJudge.vy"
POINTWISE_TESTS = "tests/judge/test_judge_pointwise.py"
ATTACKS = "tests/attacks/test_market_attacks.py"
VERIFY_TESTS = "tests/ml/test_ml_verify.py"
MARKET = "contracts/Market.vy"
CLAIM_TESTS = "tests/unit/test_claim_submit.py"
CREATE_TESTS = "tests/unit/test_create_cancel.py"
FORCED_TESTS = "tests/unit/test_forced_errors.py"
REDUCTION_TESTS = "tests/arbitration/test_arbitration_reduction.py"
JUDGE_REDUCTION_TESTS = "tests/judge/test_judge_reduction.py"
KEEPER = "offchain/workers/keeper.py"
KEEPER_TESTS = "tests/e2e/test_keeper.py"
CAPACITY_TESTS = "tests/e2e/test_worker_capacity.py"

MUTANTS: tuple[Mutant, ...] = (
    Mutant("judge-linear-tolerance", "contracts/judge/linear.vy",
           "    return convert(abs(claim - exact), uint256) <= tol\n",
           "    return convert(abs(claim - exact), uint256) <= tol * 3 // 2\n",
           (LINEAR_TESTS,), "linear ops (dot products, sums, add): tolerance x1.5"),
    Mutant("judge-relu-ulp", JUDGE,
           "    return claimed == z\n",
           "    return claimed == z or convert(claimed, uint256) == convert(z, uint256) + 1\n",
           ("tests/judge/test_judge_exact.py",), "relu: one ulp above the exact result accepted"),
    Mutant("judge-pointwise-tolerance", POINTWISE_JUDGE,
           "        + self._shift_ceil(convert(c_mant, int256), c_exp - 24 - scale)\n",
           "        + self._shift_ceil(convert(c_mant, int256), c_exp - 23 - scale)\n",
           (f"{POINTWISE_TESTS}::test_claims_straddling_the_bound",), "enclosure ops: u|c| doubled"),
    Mutant("judge-compare-lt", JUDGE,
           "            result = kx < ky\n",
           "            result = kx <= ky\n",
           (POINTWISE_TESTS,), "lt: equal inputs compare less"),
    Mutant("judge-pointwise-zero-sign", JUDGE,
           "    return claimed == want or (self._is_zero(claimed) and self._is_zero(want))\n",
           "    return claimed == want\n",
           (POINTWISE_TESTS,), "exact pointwise ops: -0 no longer accepted for +0"),
    Mutant("ledger-lock-removed", "contracts/market/ledger.vy",
           "# pragma nonreentrancy on\n",
           "# pragma nonreentrancy off\n",
           (ATTACKS,), "withdraw without the reentrancy lock"),
    Mutant("ledger-credit-after-call", "contracts/market/ledger.vy",
           "    self.credits[msg.sender] = 0\n    self.total_credits -= amount\n"
           "    log Withdrawn(account=msg.sender, recipient=recipient, amount=amount)\n"
           "    raw_call(recipient, b\"\", value=amount)\n",
           "    log Withdrawn(account=msg.sender, recipient=recipient, amount=amount)\n"
           "    raw_call(recipient, b\"\", value=amount)\n"
           "    self.credits[msg.sender] = 0\n    self.total_credits -= amount\n",
           (f"{ATTACKS}::test_reentrancy_through_withdraw__is_blocked",),
           "withdraw zeroes the credit after the external call, without the lock",
           more=(("# pragma nonreentrancy on\n", "# pragma nonreentrancy off\n"),)),
    Mutant("market-draw-known-hash", MARKET,
           "    drawn: bytes32 = keccak256(abi_encode(blockhash(committed), task_id, salt))\n",
           "    drawn: bytes32 = keccak256(abi_encode(blockhash(committed - 1), task_id, salt))\n",
           (f"{ATTACKS}::test_solver_grinding_proof_roots__cannot_pick_its_verifier",
            f"{ATTACKS}::test_solver_grinding_secrets__cannot_choose_the_forced_error"),
           "draws read a block hash the solver knew when it claimed or submitted"),
    Mutant("market-draw-horizon-off-by-one", MARKET,
           "    assert block.number <= committed + DRAW_HORIZON, \"market: draw horizon passed\"\n",
           "    assert block.number < committed + DRAW_HORIZON, \"market: draw horizon passed\"\n",
           (f"{CLAIM_TESTS}::test_draw__horizon_boundaries",), "the last block that serves the hash may not draw"),
    Mutant("market-missed-draw-rerolls", MARKET,
           "    assert block.number <= committed + DRAW_HORIZON, \"market: draw horizon passed\"\n",
           "",
           (f"{CLAIM_TESTS}::test_draw__past_the_horizon__solver_slashed_not_redrawn",),
           "a draw past the horizon is allowed (a solver may wait for another roll)"),
    Mutant("market-forced-accept-slashes-verifier", MARKET,
           "        self._release_verifier(task)\n        self._await_genuine_proof(task_id, task, empty(address))\n",
           "        self._forfeit_verifier(task, empty(address))\n        self._await_genuine_proof(task_id, task, empty(address))\n",
           (f"{FORCED_TESTS}::test_honest_verifier_accepts_genuine_proof_solver_calls_forced__verifier_not_slashed",),
           "a revealed forced error slashes the verifier that accepted it"),
    Mutant("market-unproven-forced-paid", MARKET,
           "    if proven and task.forced_declared:\n",
           "    if task.forced_declared:\n",
           (f"{FORCED_TESTS}::test_accomplice_whistleblower_on_genuine_forced_proof__coalition_loses",),
           "a declared forced error is paid from the jackpot without being proven"),
    Mutant("market-timeout-slashes-verifier", MARKET,
           "        if proven and not task.forced_declared:\n",
           "        if not task.forced_declared:\n",
           ("tests/unit/test_verify_dispute.py::test_whistleblower_wins_by_timeout__accepting_verifier_not_slashed",),
           "a whistleblower's timeout win slashes the verifier"),
    Mutant("market-proven-forced-keeps-bond-locked", MARKET,
           "        else:\n            self._release_verifier(task)\n",
           "",
           (f"{FORCED_TESTS}::test_forced_error_proven_by_whistleblower__paid_verifier_released",),
           "a proven forced error leaves the accepting verifier's bond locked"),
    Mutant("market-expire-unlocks-solver", MARKET,
           "        if task.verifier != empty(address):\n            stakes._unlock(task.verifier, t.verifier_bond)\n"
           "        self._slash_to(task.solver, task.solver_stake, task.submitter, t.winner_share_ppm)\n",
           "        if task.verifier != empty(address):\n            stakes._unlock(task.verifier, t.verifier_bond)\n"
           "        stakes._unlock(task.solver, task.solver_stake)\n",
           ("tests/unit/test_finalise_expire.py::test_expire__solver_never_reveals__slashed",),
           "expire unlocks a solver that never revealed instead of slashing it"),
    Mutant("market-no-minimum-payment", MARKET,
           "    assert msg.value >= terms.published[terms_id].min_payment, \"market: payment below the minimum\"\n",
           "",
           (f"{CREATE_TESTS}::test_one_wei_task__refused",), "one-wei tasks can be posted"),
    Mutant("market-schedule-not-from-spec", MARKET,
           "    spec_hash: bytes32 = keccak256(abi_encode(commitments))\n",
           "    spec_hash: bytes32 = keccak256(abi_encode(commitments.spec_bytes_hash, commitments.graph_root))\n",
           (f"{CREATE_TESTS}::test_spec_schedule_mismatch__cannot_be_posted",),
           "the spec hash skips the schedule the chain enforces"),
    Mutant("market-long-segments", MARKET,
           "checkpoint_interval <= MAX_CHECKPOINT_INTERVAL",
           "checkpoint_interval <= 2 * MAX_CHECKPOINT_INTERVAL",
           (f"{CREATE_TESTS}::test_segment_longer_than_the_game_plays__refused",),
           "tasks with segments the shipped solver cannot defend are accepted"),
    Mutant("market-accept-deadline-off-by-one", MARKET,
           "    assert block.timestamp <= self.tasks[task_id].deadline, \"market: verify window passed\"\n",
           "    assert block.timestamp < self.tasks[task_id].deadline, \"market: verify window passed\"\n",
           ("tests/unit/test_verify_dispute.py::test_accept__deadline_boundaries",), "accept refused at its deadline"),
    Mutant("stakes-dust-verifiers", "contracts/market/stakes.vy",
           "            assert stake.bonded >= minimum, \"stakes: verifier stake below the verifier bond\"\n",
           "            pass\n",
           (f"{ATTACKS}::test_dust_deposits__cannot_fill_the_verifier_set",), "a one-wei deposit joins the verifier set"),
    Mutant("stakes-no-eviction", "contracts/market/stakes.vy",
           "    self._evict_if_below(account)\n",
           "",
           (f"{ATTACKS}::test_slashed_verifier_below_the_bond__evicted",), "a slashed verifier below the bond stays drawable"),
    Mutant("terms-jackpot-drain-bound", "contracts/market/terms.vy",
           "    assert t.forced_error_ppm * t.payout_cap <= t.tax_ppm * t.min_payment, \"terms: jackpot payouts exceed the tax\"\n",
           "",
           ("tests/unit/test_terms.py::test_owner_publishes_unbounded_terms__refused",),
           "terms whose jackpot pays out more than the tax brings in"),
    Mutant("terms-one-step-ownership", "contracts/market/terms.vy",
           "    self.pending_owner = new_owner\n",
           "    self._transfer_ownership(new_owner)\n",
           ("tests/unit/test_terms.py::test_ownership_moves_in_two_steps",), "ownership moves without acceptance"),
    Mutant("arbitration-start-not-bound", "contracts/Arbitration.vy",
           "    assert segment != 0 or state_roots[0] == commitments.weights_root, \"arbitration: first state is not the task's weights\"\n",
           "",
           ("tests/arbitration/test_arbitration_attacks.py",), "segment 0 may start from the solver's own weights"),
    Mutant("arbitration-repeated-demand", "contracts/Arbitration.vy",
           "        assert start >= r % (1 << RANGE_SHIFT) or end <= r >> RANGE_SHIFT, \"arbitration: elements already posted\"\n",
           "        pass\n",
           ("tests/arbitration/test_arbitration_attacks.py",), "the same range may be demanded again"),
    Mutant("arbitration-free-demand", "contracts/Arbitration.vy",
           "    assert msg.value >= fee, \"arbitration: demand fee too low\"\n",
           "",
           ("tests/arbitration/test_arbitration_attacks.py",), "a demand costs the demander nothing"),
    Mutant("judge-chunk-abs-unchecked", JUDGE,
           "    return exact == x and total == abs_sum and chunk_top == leaf_top\n",
           "    return exact == x and total <= abs_sum and chunk_top == leaf_top\n",
           (REDUCTION_TESTS,), "dissected reduction: a chunk's absolute sum may be inflated"),
    Mutant("judge-fold-tolerance-doubled", JUDGE,
           "        numeric._ceil_div(gamma_n * abs_sum, U_INV - gamma_n)\n        + numeric._ceil_div(c_mag + c_slack, U_INV)\n        + eta\n        + n\n",
           "        numeric._ceil_div(gamma_n * abs_sum, U_INV - gamma_n) * 2\n        + numeric._ceil_div(c_mag + c_slack, U_INV)\n        + eta\n        + n\n",
           (JUDGE_REDUCTION_TESTS,), "dissected reduction: the fold tolerance doubled"),
    Mutant("arbitration-picked-partial-not-enforced", "contracts/Arbitration.vy",
           "        assert total.x == r.parent.x and total.abs_sum == r.parent.abs_sum and total.top == r.parent.top, \"arbitration: partials do not add up to the picked one\"\n",
           "        pass\n",
           (REDUCTION_TESTS,), "dissected reduction: a second post need not add up to the picked partial"),
    Mutant("merkle-padding-sibling", "contracts/arbitration/merkle.vy",
           "                    if ((position + 1) << level) >= count and siblings[used] != zero:\n",
           "                    if False:\n",
           ("tests/arbitration/test_arbitration_attacks.py",), "a padding subtree may hash to anything"),
    Mutant("reader-last-leaf-padding", "contracts/TensorReader.vy",
           "            valid = last % (1 << ((size - remaining) * 8)) == 0\n",
           "            valid = True\n",
           ("tests/arbitration/test_arbitration_attacks.py",), "the last leaf's padding bytes may be non-zero"),
    Mutant("merkle-index-bound", "contracts/arbitration/merkle.vy",
           "    if indices[n - 1] >= count:\n        return False, empty(bytes32)\n",
           "",
           ("tests/arbitration/test_arbitration_merkle.py", "tests/arbitration/test_arbitration_merkle_padding.py"),
           "multi-proof: index beyond the leaf count accepted"),
    Mutant("verify-threshold-flipped", "offchain/ml/verify.py",
           "    return not math.isfinite(distance) or distance > threshold\n",
           "    return not math.isfinite(distance) or distance < threshold\n",
           (VERIFY_TESTS,), "verifier: replay distance compared the wrong way round"),
    Mutant("verify-no-random-draws", "offchain/ml/verify.py",
           "min(q_random, n - len(chosen))",
           "min(0, n - len(chosen))",
           (VERIFY_TESTS,), "verifier: segment selection skips the random draws"),
    Mutant("commit-numel-skipped", "offchain/ml/commit.py",
           "        return sized_root(merkle_root(leaf_hashes(view, leaf_bytes)), numel)\n",
           "        return merkle_root(leaf_hashes(view, leaf_bytes))\n",
           ("tests/ml/test_ml_commit.py",), "tensor root: the element count is not committed",
           more=(("    return sized_root(nodes[0].tobytes(), numel)\n", "    return nodes[0].tobytes()\n"),)),
    Mutant("commit-label-skipped", "offchain/ml/commit.py",
           "    packed[:, row_size:] = ys.view(np.uint8).reshape(xs.shape[0], 8)\n",
           "    packed[:, row_size:] = 0\n",
           ("tests/ml/test_ml_commit.py",), "dataset rows: the label is not committed"),
    Mutant("game-deadline-off-by-one", "offchain/dispute/game.py",
           '    _require(now <= d.deadline, "arbitration: clock expired")\n',
           '    _require(now < d.deadline, "arbitration: clock expired")\n',
           ("tests/arbitration/test_arbitration_model.py::test_model__adversary_moves_at_deadline_edges",),
           "dispute model: a move at its deadline is refused"),
    Mutant("solver-resends-submit", "offchain/workers/solver.py",
           '        self.market.transact("submit", task.task_id, bytes.fromhex(proof["root"]), proof["count"], proof["cid"])\n',
           '        fn = self.market.contract.functions.submit(task.task_id, bytes.fromhex(proof["root"]),'
           ' proof["count"], proof["cid"])\n'
           '        for _ in range(2):\n'
           '            tx = fn.build_transaction({"from": self.address, "gas": 1_000_000, "nonce":'
           ' self.market.w3.eth.get_transaction_count(self.address, "pending")})\n'
           '            self.market.w3.eth.send_raw_transaction(self.market.account.sign_transaction(tx).raw_transaction)\n',
           ("tests/e2e/test_worker_restart.py",), "solver worker sends its proof twice, straight to the chain"),
    Mutant("keeper-resends-in-flight", KEEPER,
           "            if move.key not in self._in_flight and self._send(move):\n",
           "            if self._send(move):\n",
           (f"{KEEPER_TESTS}::test_keeper_racing_other_senders__sends_each_move_once_and_takes_a_lost_race_in_its_stride",),
           "keeper tries a move again while its transaction is in flight"),
    Mutant("keeper-ignores-silent-verifier", KEEPER,
           '        return expire(task.deadline, "its verify window")\n',
           "        return []\n",
           (f"{KEEPER_TESTS}::test_silent_verifier__another_workers_keeper_expires_it__the_solver_is_paid_and_takes"
            "_the_next_task",),
           "keeper leaves a task whose verifier stayed silent"),
    Mutant("keeper-ignores-dispute-clocks", KEEPER,
           "        if not deadline or now <= deadline:\n",
           "        if True:\n",
           (f"{KEEPER_TESTS}::test_keeper__times_out_a_dispute_whose_side_to_move_stopped",),
           "keeper never times out a stalled dispute"),
    Mutant("solver-logs-every-skip", "offchain/workers/solver.py",
           '        if record.get("skip") != reason:\n',
           "        if True:\n",
           (f"{CAPACITY_TESTS}::test_solver__without_free_stake_skips_once_with_the_reason_and_claims_when_stake_allows",),
           "solver logs a skip every round instead of once"),
    Mutant("solver-gives-up-on-late-content", "offchain/workers/solver.py",
           "TRANSIENT_STORAGE = (ContentNotFound, FetchTimeout, StorageUnavailable)\n",
           "TRANSIENT_STORAGE = ()\n",
           (f"{CAPACITY_TESTS}::test_solver__retries_a_task_whose_content_is_not_reachable_yet_and_claims_it_once_it_is",),
           "solver rejects for good a task whose content is not reachable yet"),
)


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         check=True, capture_output=True).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def apply(mutant: Mutant, tree: Path) -> str | None:
    """Edit the copy; the reason it cannot be applied, or None."""
    path = tree / mutant.file
    if not path.is_file():
        return f"{mutant.file} does not exist"
    text = path.read_text()
    for original, replacement in ((mutant.original, mutant.replacement), *mutant.more):
        count = text.count(original)
        if count != 1:
            return f"snippet found {count} times in {mutant.file}: {original.strip()[:60]!r}"
        text = text.replace(original, replacement)
    path.write_text(text)
    return None


def run(mutant: Mutant, files: list[str]) -> tuple[str, float, str]:
    """(status, seconds, detail) with status killed / survived / error."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"dtm-mutant-{mutant.id}-") as tmp:
        tree = Path(tmp)
        for name in files:
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
        for shared in ("node_modules",):  # Anvil for the e2e tests
            if (ROOT / shared).exists():
                (tree / shared).symlink_to(ROOT / shared)
        problem = apply(mutant, tree) if mutant.file else None
        if problem:
            return "error", time.monotonic() - start, problem
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "240"}
        probe = subprocess.run([sys.executable, "-c", "import offchain; print(offchain.__file__)"], cwd=tree,
                               env=env, capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(tree)):
            return "error", time.monotonic() - start, f"imports offchain from {probe.stdout.strip()!r}, not the copy"
        try:
            result = subprocess.run([sys.executable, "-m", "pytest", *PYTEST_ARGS, *mutant.tests], cwd=tree, env=env,
                                    capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return "error", time.monotonic() - start, f"tests ran over {TIMEOUT_S} s"
    seconds = time.monotonic() - start
    lines = (result.stdout + result.stderr).strip().splitlines() or [""]
    failed = next((line for line in lines if line.startswith(("FAILED", "ERROR"))), lines[-1])
    if result.returncode == 0:
        return "survived", seconds, lines[-1]
    if result.returncode == 1:  # tests failed
        return "killed", seconds, failed
    return "error", seconds, f"pytest exit code {result.returncode}: {failed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="ID", help="run only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants run at once")
    parser.add_argument("--baseline", action="store_true",
                        help="first run the chosen mutants' tests on the unmutated code (they must pass)")
    args = parser.parse_args(argv)
    ids = [m.id for m in MUTANTS]
    assert len(set(ids)) == len(ids), "duplicate mutant ids"
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    unknown = set(args.only or ()) - set(ids)
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    if args.list:
        for m in chosen:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / m.file).parent.mkdir(parents=True)
                if (ROOT / m.file).is_file():
                    shutil.copy2(ROOT / m.file, Path(tmp) / m.file)
                problem = apply(m, Path(tmp))
            print(f"{m.id:28} {m.file:34} {m.description}\n{'':28} {' '.join(m.tests)}")
            if problem:
                print(f"{'':28} ERROR: {problem}")
        return 0
    files = tracked_files()
    began = time.monotonic()
    if args.baseline:
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        status, seconds, detail = run(Mutant("baseline", "", "", "", tests, "no mutation"), files)
        print(f"baseline: {'passed' if status == 'survived' else 'FAILED: ' + detail} ({seconds:.0f} s)", flush=True)
        if status != "survived":
            return 1
    print(f"{len(chosen)} mutant(s), {args.jobs} at a time", flush=True)

    def one(m: Mutant) -> tuple[Mutant, str, float, str]:
        status, seconds, detail = run(m, files)
        print(f"  {status:8} {m.id} ({seconds:.0f} s)", flush=True)
        return m, status, seconds, detail

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, chosen))
    print(f"\n{'mutant':28} {'status':8} {'time':>6}  what it breaks")
    for m, status, seconds, detail in results:
        print(f"{m.id:28} {status:8} {seconds:5.0f}s  {m.description}")
        print(f"{'':28} {status.upper() if status != 'killed' else 'by'}: {detail[:240]}")
    bad = [m.id for m, status, _, _ in results if status != "killed"]
    print(f"\n{len(results) - len(bad)}/{len(results)} killed in {time.monotonic() - began:.0f} s")
    if bad:
        print(f"NOT KILLED: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
