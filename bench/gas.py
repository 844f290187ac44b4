"""Gas of every state-changing market entry point on a real Anvil chain.

    .venv/bin/python bench/gas.py

Prints one row per entry point (and per path where an entry point has several)
and the total of one honest lifecycle, against the 1,000,000 gas target.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offchain.chain.client import Market, connect  # noqa: E402
from offchain.chain.suite import ETHER, ROOT, Role, Terms  # noqa: E402
from offchain.node import deploy, dev_account, start_anvil  # noqa: E402

WINDOW = 60
TARGET = 1_000_000
# a task's commitments (`TrainingTask.commitments()`): 100 steps, k = 10; gas does not depend on the roots
COMMITMENTS = (keccak(b"spec"), keccak(b"graph"), keccak(b"data"), 100, keccak(b"weights"), 7, 8, 100, 10)
HONEST = ["create_task", "claim", "draw (entropy)", "submit", "draw (verifier)", "accept", "finalise",
          "withdraw (solver)", "withdraw (verifier)"]


def main() -> None:
    anvil = start_anvil()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            deployment = deploy(anvil.url, arbiter=ROOT / "tests/contracts/ManualArbiter.vy", window=WINDOW,
                                forced_error_ppm=0, deployments=Path(tmp))
        w3 = connect(anvil.url)
        gas: dict[str, int] = {}
        owner, submitter, solver, verifier, whistle, anyone = (Market(w3, deployment, dev_account(i)) for i in range(6))

        def run(label: str, market: Market, name: str, *args, value: int = 0, contract=None) -> None:
            gas[label] = market.transact(name, *args, value=value, contract=contract)["gasUsed"]

        def wait(seconds: int) -> None:
            w3.provider.make_request("evm_increaseTime", [seconds])
            w3.provider.make_request("evm_mine", [])

        def move(label: str | None, market: Market, name: str, *args, value: int = 0) -> None:
            """Send a call, measured when it has a label."""
            if label:
                run(label, market, name, *args, value=value)
            else:
                market.transact(name, *args, value=value)

        def create(payment: int = ETHER, measured: bool = False) -> int:
            before = submitter.call("task_count")
            move(measured and "create_task", submitter, "create_task", "QmSpecCid", COMMITMENTS, ETHER,
                 submitter.now() + 86_400, 600, value=payment)
            return before + 1

        def claim(task: int, measured: bool = False) -> None:
            move(measured and "claim", solver, "claim", task, keccak(secret))
            move(measured and "draw (entropy)", anyone, "draw", task)

        def submit(task: int, measured: bool = False) -> None:
            move(measured and "submit", solver, "submit", task, keccak(b"root"), 11, "QmProofCid")
            move(measured and "draw (verifier)", anyone, "draw", task)

        secret = keccak(b"secret")
        run("deposit", solver, "deposit", int(Role.SOLVER), value=10 * ETHER)
        run("deposit (verifier, joins set)", verifier, "deposit", int(Role.VERIFIER), value=10 * ETHER)
        whistle.deposit(Role.WHISTLEBLOWER, 10 * ETHER)

        # honest lifecycle
        task = create(measured=True)
        claim(task, measured=True)
        submit(task, measured=True)
        run("accept", verifier, "accept", task)
        wait(WINDOW + 1)
        run("finalise", solver, "finalise", task, secret)
        run("withdraw (solver)", solver, "withdraw", solver.account.address)
        run("withdraw (verifier)", verifier, "withdraw", verifier.account.address)

        # side paths
        task = create()
        run("cancel", submitter, "cancel", task)
        task = create()
        claim(task)
        wait(601)
        run("expire (solver missed deadline)", anyone, "expire", task)
        claim(task)
        submit(task)
        wait(WINDOW + 1)
        run("expire (silent verifier)", anyone, "expire", task)
        anyone.transact("draw", task)
        run("challenge (verifier)", verifier, "challenge", task, keccak(b"root"), 3)
        dispute = solver.task(task).dispute_id
        run("resolve (solver wins)", owner, "decide", dispute, True, contract=owner.arbiter)
        run("challenge (whistleblower)", whistle, "challenge", task, keccak(b"root"), 3)
        dispute = solver.task(task).dispute_id
        run("resolve (challenger wins)", owner, "decide", dispute, False, contract=owner.arbiter)
        run("unbond", whistle, "unbond", ETHER)
        wait(3_601)
        run("withdraw_stake", whistle, "withdraw_stake")
        run("publish_terms", owner, "publish_terms",
            Terms(forced_error_ppm=1_000_000, tax_ppm=100_000, min_payment=4 * ETHER).as_tuple())
        task = create(payment=4 * ETHER)  # the minimum payment of these terms
        claim(task)
        submit(task)
        verifier.transact("challenge", task, keccak(b"root"), 0)
        run("declare_forced_error", solver, "declare_forced_error", task, secret)
        run("resolve (forced error proven)", owner, "decide", solver.task(task).dispute_id, False, True,
            contract=owner.arbiter)
        run("transfer_ownership", owner, "transfer_ownership", anyone.account.address)
        run("accept_ownership", anyone, "accept_ownership")
    finally:
        anvil.stop()

    width = max(map(len, gas))
    print(f"{'entry point':<{width}}  {'gas':>9}")
    print("-" * (width + 11))
    for label, used in gas.items():
        print(f"{label:<{width}}  {used:>9,}")
    total = sum(gas[label] for label in HONEST)
    print("-" * (width + 11))
    print(f"{'honest lifecycle (' + ' + '.join(HONEST) + ')'}")
    print(f"{'total':<{width}}  {total:>9,}   = {total / TARGET:.2f}x the {TARGET:,} gas target")


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help; no options
    main()
