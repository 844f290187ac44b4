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
HONEST = ["create_task", "claim", "submit", "accept", "finalise", "withdraw (solver)", "withdraw (verifier)"]


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

        def create() -> int:
            before = submitter.call("task_count")
            run("create_task", submitter, "create_task", "QmSpecCid", keccak(b"spec"), ETHER,
                submitter.now() + 86_400, 600, 100, 10, value=ETHER)
            return before + 1

        secret = keccak(b"secret")
        run("deposit", solver, "deposit", int(Role.SOLVER), value=10 * ETHER)
        run("deposit (verifier, joins set)", verifier, "deposit", int(Role.VERIFIER), value=10 * ETHER)
        whistle.deposit(Role.WHISTLEBLOWER, 10 * ETHER)

        # honest lifecycle
        task = create()
        run("claim", solver, "claim", task, keccak(secret))
        run("submit", solver, "submit", task, keccak(b"root"), 11, "QmProofCid")
        run("accept", verifier, "accept", task)
        wait(WINDOW + 1)
        run("finalise", solver, "finalise", task, secret)
        run("withdraw (solver)", solver, "withdraw", solver.account.address)
        run("withdraw (verifier)", verifier, "withdraw", verifier.account.address)

        # side paths
        task = create()
        run("cancel", submitter, "cancel", task)
        task = create()
        solver.transact("claim", task, keccak(secret))
        wait(601)
        run("expire (solver missed deadline)", anyone, "expire", task)
        solver.transact("claim", task, keccak(secret))
        solver.transact("submit", task, keccak(b"root"), 11, "QmProofCid")
        wait(WINDOW + 1)
        run("expire (silent verifier)", anyone, "expire", task)
        run("challenge (verifier)", verifier, "challenge", task, keccak(b"root"), 3)
        dispute = solver.task(task).dispute_id
        run("resolve (solver wins)", owner, "decide", dispute, True, contract=owner.arbiter)
        run("challenge (whistleblower)", whistle, "challenge", task, keccak(b"root"), 3)
        dispute = solver.task(task).dispute_id
        run("resolve (challenger wins)", owner, "decide", dispute, False, contract=owner.arbiter)
        run("unbond", whistle, "unbond", ETHER)
        wait(3_601)
        run("withdraw_stake", whistle, "withdraw_stake")
        run("publish_terms", owner, "publish_terms", Terms(forced_error_ppm=1_000_000).as_tuple())
        task = create()
        solver.transact("claim", task, keccak(secret))
        solver.transact("submit", task, keccak(b"root"), 11, "QmProofCid")
        verifier.transact("challenge", task, keccak(b"root"), 0)
        run("concede_forced_error", solver, "concede_forced_error", task, secret)
        run("transfer_ownership", owner, "transfer_ownership", owner.account.address)
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
    main()
