"""The market's soak: tasks posted over time to 3 solvers (one cheating), 2 verifiers (one lazy) and
a whistleblower, all real processes killed with SIGKILL at random and restarted; the content store
and the chain restarted once, a reorganisation injected. Once every task is terminal the books are
checked from the chain (every wei accounted for, nothing locked, honest parties paid, the cheater
and the lazy verifier slashed) and no move was sent twice.

`DTM_SOAK_SEED=N` replays a run's random choices (the seed is printed).
"""

from __future__ import annotations

import os
import random
import time

import pytest

from tests.e2e.soak import WORKERS, Chaos, Plan, Soak, all_terminal, check_books, check_no_move_sent_twice, check_parties

pytestmark = pytest.mark.e2e


def _soak(tmp_path, plan: Plan) -> None:
    seed = int(os.environ.get("DTM_SOAK_SEED", random.SystemRandom().randrange(2**32)))
    print(f"soak seed {seed} (DTM_SOAK_SEED={seed} replays its choices)", flush=True)
    rng = random.Random(seed)
    soak = Soak(tmp_path, plan, rng)
    print(f"worker logs in {tmp_path / 'logs'}", flush=True)
    chaos = None
    try:
        soak.start_chain()
        specs = [soak.publish(steps) for steps in (24, 32)]
        soak.start_workers()
        chaos = Chaos(soak)
        chaos.start()
        jitter = lambda at: at + rng.uniform(0, 10)  # noqa: E731
        pending = sorted([(jitter(plan.reorg_at), soak.reorg), (jitter(plan.store_restart_at), soak.restart_store),
                          (jitter(plan.chain_restart_at), soak.restart_chain)], key=lambda item: item[0])
        kinds = ["cancel" if (r := rng.random()) < plan.cancel_share else
                 "brief" if r < plan.cancel_share + plan.brief_share else "normal" for _ in range(plan.tasks)]
        task_ids: list[int] = []
        first = time.monotonic()
        for kind in kinds:
            while pending and time.monotonic() - first >= pending[0][0]:
                pending.pop(0)[1]()
            task_ids.append(soak.post(rng.choice(specs), kind))
            time.sleep(rng.uniform(*plan.post_every))
        for at, event in pending:  # posting ended before these were due
            time.sleep(max(0.0, at - (time.monotonic() - first)))
            event()
        reader = soak.market(0)
        deadline = time.monotonic() + plan.timeout
        while not all_terminal(reader, task_ids):
            assert time.monotonic() < deadline, _stalled(soak, reader, task_ids)
            assert chaos.error is None, chaos.error
            time.sleep(2)
        chaos.stopping.set()
        chaos.join(30)
        assert chaos.error is None, chaos.error
        assert not soak.crashed(), f"workers exited on their own: {soak.crashed()}"
        soak.note("every task is terminal")
        time.sleep(3)  # the workers withdraw what they were paid (the books hold either way)
        soak.stop_workers()
        reader = soak.market(0)
        books = check_books(reader, task_ids)
        parties = check_parties(reader, task_ids, soak)
        sends = check_no_move_sent_twice(reader)
        kills = {name: p.kills for name, p in soak.processes.items()}
        print(f"soak seed {seed}: {len(task_ids)} tasks {parties['outcomes']}; kills {kills}; books {books}; "
              f"parties {parties}; transactions {sends}", flush=True)
        # not vacuous: the chaos struck, honest work was paid and the cheater tried (and was judged above)
        assert sum(kills.values()) >= 3, kills
        assert parties["outcomes"].get("finalised", 0) >= 1 and parties["cheats"] >= 1, parties
    finally:
        if chaos is not None:
            chaos.stopping.set()
        soak.close()


def _stalled(soak: Soak, reader, task_ids: list[int]) -> str:
    live = {t: reader.task(t).state.name for t in task_ids if not all_terminal(reader, [t])}
    tails = "\n".join(f"── {spec.name}\n{soak.log_tail(spec.name, 15)}" for spec in WORKERS)
    return f"tasks not terminal: {live}\n{tails}"


@pytest.mark.slow  # about 4 minutes: a soak, run with --slow
def test_soak__chaos_leaves_every_wei_accounted_for_and_no_move_sent_twice(tmp_path):
    _soak(tmp_path, Plan())


@pytest.mark.slow
def test_soak_long__more_tasks_and_more_kills(tmp_path):
    _soak(tmp_path, Plan(tasks=60, post_every=(2.0, 6.0), kill_every=(4.0, 10.0), reorg_at=60, store_restart_at=120,
                         chain_restart_at=180, expires_in=300, timeout=1200))
