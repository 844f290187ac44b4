"""One training task over several processes: pipeline stages x data-parallel replicas.

The GPT preset (:class:`offchain.ml.models.GPT`) is cut into ``stages`` contiguous parts
(embeddings on the first, final LayerNorm + head + loss on the last; ``split`` says how many
transformer blocks each stage holds) and the pipeline is copied ``replicas`` times. Rank
``r * stages + s`` runs stage ``s`` of replica ``r``; processes talk through ``torch.distributed``
(gloo over 127.0.0.1).

Per step each replica takes its part of the global batch and runs it as ``micro_batches``
micro-batches under a GPipe (all forwards, then all backwards) or 1F1B schedule. Activations go
forward and their gradients backward between neighbouring stages as byte messages
(:mod:`offchain.distributed.compression`: raw float32, or AQ-SGD). The schedule is ours rather
than ``torch.distributed.pipelining``'s because every boundary message is encoded by a per-sample
codec whose size depends on the samples, which that package's fixed-shape stage buffers do not
allow. Data parallelism is either synchronous (gradients all-reduced in the stage's replica group
every step) or DiLoCo (each replica takes ``inner_steps`` steps alone, then the averaged
pseudo-gradients go through an outer Nesterov step).

The optimizer is the task's (:class:`offchain.ml.optim.OptimizerConfig`: its own update code and
learning-rate schedule); gradient clipping uses the global norm over all stages of a replica.

All choices are fixed by the :class:`TrainSpec`: initial weights (seeded), data order (seeded
per-epoch permutations of each replica's fixed shard, or batches drawn as a task draws them:
:func:`batch_ids`), codecs (deterministic). Training data is
the byte-level text corpus the project ships for the transformer (``text_dataset``); the
held-out rows are the corpus's last rows, never trained on.

Links can be emulated as slower than loopback (:class:`LinkConfig`, :class:`Transport`).

A rank's part of a step is :meth:`StageRunner.step`, which talks through any links: the process
group here, the published messages of the other participants in a replay
(:mod:`offchain.distributed.replay`). With ``TrainSpec.checkpoint_interval`` every rank publishes
its state every ``k`` steps and every message it sends (:mod:`offchain.distributed.parts`).
"""

from __future__ import annotations

import datetime
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file

from offchain.distributed import parts as P
from offchain.distributed.spec import LinkConfig, TrainSpec, batch_ids, corpus_rows, pipeline_ranks, replica_ranks
from offchain.distributed.stage import (
    Optimizer,
    Stage,
    StageRunner,
    build_gpt,
    grad_sq_sum,
    heldout_loss,
    lm_loss,
    sum_in_rank_order,
)
from offchain.distributed.stage_program import ProgramRunner, StageProgram, export_stage_program, messages_of
from offchain.ml.program import Program


# ── transport ────────────────────────────────────────────────────────
class Transport:
    """Point-to-point messages and collectives with byte counts and, when the link is emulated,
    user-space delays. A stage talks to it (or to any object with the same methods: a recorder,
    a replay's published messages) through ``send``, ``recv``, ``all_reduce``, ``all_gather``,
    ``at_step`` and ``flush``; collectives name their group by its ranks.

    Emulation: every directed pair of ranks is a wire of ``bandwidth`` bytes/s and one-way
    ``latency_s``. A message of ``n`` bytes starts when the wire is free, occupies it ``n /
    bandwidth`` seconds and arrives ``latency_s`` later; the sender stamps the arrival time
    (machine-wide monotonic clock, 8 header bytes not counted as payload) and does not wait;
    the receiver sleeps until that time after the loopback delivered the message, so compute
    overlaps with transfers as on a real link. A collective over ``R`` ranks runs as a ring
    (:func:`ring_done`): all-reduce of ``n`` bytes = ``2 (R - 1)`` hops of ``n / R`` bytes,
    all-gather of ``n`` bytes per rank = ``R - 1`` hops of ``n``, each rank passing a hop on once
    it has entered the collective and received the hop before; the ranks exchange the times they
    entered, and each sleeps until the ring would have brought it the result. A rank that enters
    last therefore does not wait for the contributions that left the others long before.
    Byte counts are the payload each rank sends under these algorithms, also without emulation.
    A point-to-point message or an all-gather may name a ``codec`` (``compression.ProgramMessageCodec``): the wire
    then carries ``codec.encode(payload)`` and the receiver gets back ``codec.decode`` of it, the
    payload itself, which is what a recorder keeps.

    ``ordered``: an all-reduce is an all-gather summed in rank order (:func:`sum_in_rank_order`)
    instead of gloo's ring, whose order of additions depends on the chunk (with two ranks both
    are the one addition ``a + b``).
    """

    def __init__(self, link: LinkConfig, groups: dict[tuple[int, ...], Any], *, ordered: bool = False) -> None:
        self.link, self.groups, self.ordered = link, groups, ordered
        self.p2p_bytes = 0
        self.collective_bytes = 0
        self.wire_free: dict[int, float] = {}
        self.pending: list[tuple[Any, torch.Tensor]] = []

    def at_step(self, step: int) -> None:
        pass

    def send(self, payload: torch.Tensor, dst: int, codec: Any = None) -> None:
        if codec is not None:
            payload = codec.encode(payload)
        self.p2p_bytes += payload.numel()
        if self.link.emulated:
            start = max(time.monotonic(), self.wire_free.get(dst, 0.0))
            self.wire_free[dst] = start + self.link.wire_time(payload.numel())
            arrival = torch.tensor([self.wire_free[dst] + self.link.latency_s], dtype=torch.float64)
            payload = torch.cat([arrival.view(torch.uint8), payload])
        self.pending.append((dist.isend(payload, dst), payload))

    def recv(self, size: int, src: int, codec: Any = None) -> torch.Tensor:
        if codec is not None:
            wire = self.recv(codec.wire_size, src)
            return codec.decode(wire)
        header = 8 if self.link.emulated else 0
        buffer = torch.empty(size + header, dtype=torch.uint8)
        dist.recv(buffer, src)
        if header:
            arrival = buffer[:8].clone().view(torch.float64).item()
            delay = arrival - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return buffer[header:]

    def flush(self) -> None:
        for handle, _ in self.pending:
            handle.wait()
        self.pending.clear()

    def _entered(self, ranks: tuple[int, ...]) -> list[float] | None:
        """With an emulated link, when each of ``ranks`` entered this collective."""
        if not self.link.emulated:
            return None
        now = torch.tensor([time.monotonic()], dtype=torch.float64)
        entries = [torch.empty_like(now) for _ in ranks]
        dist.all_gather(entries, now, group=self.groups[ranks])
        return [entry.item() for entry in entries]

    def _price(self, entries: list[float] | None, ranks: tuple[int, ...], hops: int, hop_bytes: float) -> None:
        if entries is not None:
            hop_s = self.link.latency_s + self.link.wire_time(hop_bytes)
            delay = ring_done(entries, hops, hop_s)[ranks.index(dist.get_rank())] - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def all_reduce(self, tensor: torch.Tensor, ranks: tuple[int, ...]) -> None:
        """Sum in place over ``ranks``."""
        size = len(ranks)
        if size == 1:
            return
        if self.ordered:
            tensor.copy_(sum_in_rank_order(self.all_gather(tensor, ranks)))
            return
        nbytes = tensor.numel() * tensor.element_size()
        self.collective_bytes += 2 * (size - 1) * nbytes // size
        entries = self._entered(ranks)
        dist.all_reduce(tensor, group=self.groups[ranks])
        self._price(entries, ranks, 2 * (size - 1), nbytes / size)

    def all_gather(self, message: torch.Tensor, ranks: tuple[int, ...], codec: Any = None) -> list[torch.Tensor]:
        """Every rank's ``message``, in rank order."""
        size = len(ranks)
        if size == 1:
            return [message]
        if codec is not None:
            return [codec.decode(wire) for wire in self.all_gather(codec.encode(message), ranks)]
        nbytes = message.numel() * message.element_size()
        self.collective_bytes += (size - 1) * nbytes
        out = [torch.empty_like(message) for _ in range(size)]
        entries = self._entered(ranks)
        dist.all_gather(out, message, group=self.groups[ranks])
        self._price(entries, ranks, size - 1, nbytes)
        return out


def ring_done(entries: list[float], hops: int, hop_s: float) -> list[float]:
    """When each rank of a ring holds a collective's result: rank ``k`` enters at ``entries[k]``;
    in each of ``hops`` rounds every rank sends one hop (``hop_s`` seconds to arrive) to rank
    ``k + 1``, once it has entered and has received the previous round's hop from rank ``k - 1``."""
    size = len(entries)
    ready = list(entries)
    for _ in range(hops):
        ready = [max(entries[k], ready[k - 1] + hop_s) for k in range(size)]
    return ready


# ── process groups ──────────────────────────────────────────────────
def _groups(spec: TrainSpec) -> dict[tuple[int, ...], Any]:
    """Process group of each replica's pipeline and of each stage's replicas, by their ranks
    (every rank creates all, in the same order)."""
    groups = {}
    for r in range(spec.replicas):
        groups[pipeline_ranks(spec, r)] = dist.new_group(list(pipeline_ranks(spec, r))) if spec.stages > 1 else None
    for s in range(spec.stages):
        groups[replica_ranks(spec, s)] = dist.new_group(list(replica_ranks(spec, s))) if spec.replicas > 1 else None
    return groups


@dataclass(frozen=True)
class Tamper:
    """A cheating participant: rank ``rank`` adds ``amount`` to its first parameter tensor right
    after its step ``step`` (and trains on from there, publishing what it then holds). Other
    cheats subclass it: ``install`` runs once in every rank's own process before it trains."""

    rank: int
    step: int
    amount: float = 1e-3

    def install(self, rank: int) -> None:
        """Prepare rank ``rank``'s process (this cheat needs nothing)."""

    def apply(self, runner: StageRunner, step: int) -> None:
        if runner.rank == self.rank and step == self.step:
            with torch.no_grad():
                runner.params[0].add_(self.amount)


def _worker(rank: int, specs: list[TrainSpec], out_dir: str, parts_dirs: list[str | None],
            tamper: Tamper | None, timeout_s: float) -> None:
    """Rank ``rank`` of every spec whose world includes it, one process group after another. The
    ranks meet in a file of ``out_dir``: no port to pick (another run could take it), and no
    store served by a thread of the driver. A rank that waits ``timeout_s`` for a peer fails.
    With ``spec.programs`` the rank reads its step program from ``out_dir``, where the driver
    wrote it (:func:`_program_path`)."""
    _forget_process_groups()
    if tamper is not None:
        tamper.install(rank)
    for index, (spec, parts_dir) in enumerate(zip(specs, parts_dirs)):
        if rank >= spec.world:
            continue
        torch.set_num_threads(spec.threads)
        store = Path(out_dir) / f"rendezvous{index}"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=spec.world,
                                timeout=datetime.timedelta(seconds=timeout_s))
        try:
            program = _load_program(Path(out_dir), index, spec, rank) if spec.programs else None
            result = _train_rank(rank, spec, parts_dir, tamper, program)
            _save_result(result, Path(out_dir) / f"run{index}-rank{rank}.safetensors")
        finally:
            dist.destroy_process_group()


def _program_path(out_dir: Path, index: int, rank: int) -> Path:
    """Where the driver leaves rank ``rank``'s program of spec ``index``: as its canonical bytes, so
    its constants cross as data (as pickled tensors they would cross as shared memory, a file
    descriptor each, and a process start passes at most 253) and each rank parses only its own."""
    return out_dir / f"run{index}-rank{rank}.program"


def _load_program(out_dir: Path, index: int, spec: TrainSpec, rank: int) -> StageProgram:
    program = Program.from_bytes(_program_path(out_dir, index, rank).read_bytes())
    return StageProgram(rank, program, *messages_of(spec, rank))


def _forget_process_groups() -> None:
    """Name the next process group as a fresh process would. torch names a default group by a
    count of the groups this process has made: a failed ``init_process_group`` raises it with no
    group to destroy (which resets it), and a rank forked straight from the driver inherits it, so
    ranks forked from a process that once failed to join would wait under another name than ranks
    that reset it."""
    dist.distributed_c10d._world.group_count = 0


def make_runner(spec: TrainSpec, rank: int, program: StageProgram | None = None) -> Any:
    """Participant ``rank``'s runner: a :class:`StageRunner`, or with ``spec.programs`` the
    :class:`~offchain.distributed.stage_program.ProgramRunner` that runs its captured step program
    (the same ``step``/``state`` interface, so training, publishing and replays are unchanged)."""
    return ProgramRunner(spec, rank, program) if spec.programs else StageRunner(spec, rank)


def _train_rank(rank: int, spec: TrainSpec, parts_dir: str | None = None, tamper: Tamper | None = None,
                program: StageProgram | None = None) -> dict[str, Any]:
    runner = make_runner(spec, rank, program)
    transport = Transport(spec.link, _groups(spec), ordered=spec.commits)
    links, publisher = transport, None
    if spec.commits:
        publisher = P.Publisher(Path(parts_dir), rank, spec.checkpoint_interval)
        links = publisher.recorder(transport)
    losses: list[float] = []
    step_ends: list[float] = []
    dist.barrier()
    start = time.perf_counter()
    for step in range(spec.steps):
        if publisher is not None and step % spec.checkpoint_interval == 0:
            publisher.checkpoint(runner.state())
        loss = runner.step(step, links)
        if tamper is not None:
            tamper.apply(runner, step)
        if loss is not None:
            losses.append(loss)
        if publisher is not None and (step + 1) % spec.checkpoint_interval == 0:
            publisher.close_segment()
        step_ends.append(time.perf_counter())
    transport.flush()
    if publisher is not None:
        publisher.checkpoint(runner.state())
        publisher.finish()
    dist.barrier()
    seconds = time.perf_counter() - start
    return {"rank": rank, "stage": runner.index, "replica": runner.replica, "seconds": seconds, "losses": losses,
            "step_ends": [end - start for end in step_ends],
            "p2p_bytes": transport.p2p_bytes, "collective_bytes": transport.collective_bytes,
            "state": runner.parameters_by_name()}


# ── driver ───────────────────────────────────────────────────────────
@dataclass
class RunResult:
    spec: TrainSpec
    state: dict[str, torch.Tensor]  # replica 0's whole model
    losses: list[float]  # training loss per step, mean over replicas
    heldout: float
    seconds: float  # training loop, slowest rank
    bytes_per_step: float  # payload sent by all ranks together
    replicas_equal: bool  # every replica ends with the same parameters
    ranks: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @property
    def steps_per_s(self) -> float:
        return self.spec.steps / self.seconds

    def steps_per_s_from(self, first: int) -> float:
        """Throughput of steps ``first..steps-1`` (e.g. after AQ-SGD's warm-up epochs), slowest rank."""
        if not self.ranks or first <= 0:
            return self.steps_per_s
        seconds = max(r["step_ends"][-1] - r["step_ends"][first - 1] for r in self.ranks)
        return (self.spec.steps - first) / seconds


def run(spec: TrainSpec, start_method: str = "forkserver", *, parts_dir: str | Path | None = None,
        tamper: Tamper | None = None, timeout_s: float = 600.0) -> RunResult:
    """Train ``spec`` on ``spec.world`` new processes and collect the result; with
    ``spec.checkpoint_interval`` every participant publishes its parts under ``parts_dir``."""
    return run_many([spec], start_method, parts_dirs=[parts_dir], tamper=tamper, timeout_s=timeout_s)[0]


def run_many(specs: list[TrainSpec], start_method: str = "forkserver", *,
             parts_dirs: list[str | Path | None] | None = None, tamper: Tamper | None = None,
             timeout_s: float = 600.0) -> list[RunResult]:
    """Train each spec in turn on one set of processes (as many as the largest world), which
    saves starting processes per run. ``forkserver`` forks them from a single-threaded server
    that has imported this module: quick to start, and safe from a driver with threads (a rank
    forked straight from one, with ``fork``, inherits every lock another thread held at that
    moment, and can hang on its first use). ``spawn`` starts fresh interpreters. A spec with a
    ``checkpoint_interval`` needs its ``parts_dirs`` entry: its participants' parts and
    ``group.json`` go there (offchain/distributed/parts.py). ``tamper`` makes one rank cheat. A
    rank that waits ``timeout_s`` for another fails the run. Step programs (``spec.programs``) are
    exported here, once (a verifier's replays reuse them), and left in the run's folder for
    their ranks."""
    import torch.multiprocessing as mp

    parts_dirs = [None if d is None else str(d) for d in (parts_dirs or [None] * len(specs))]
    if len(parts_dirs) != len(specs) or any(spec.commits and d is None for spec, d in zip(specs, parts_dirs)):
        raise ValueError("every spec with a checkpoint_interval needs a parts directory")
    if start_method == "forkserver":
        mp.set_forkserver_preload([__name__])
    with tempfile.TemporaryDirectory(prefix="dtm-engine-") as out_dir:
        for index, spec in enumerate(specs):
            for rank in range(spec.world if spec.programs else 0):
                program = export_stage_program(spec, rank).program
                _program_path(Path(out_dir), index, rank).write_bytes(program.to_bytes())
        mp.start_processes(_worker, args=(list(specs), out_dir, parts_dirs, tamper, timeout_s),
                           nprocs=max(spec.world for spec in specs), start_method=start_method)
        for spec, parts_dir in zip(specs, parts_dirs):
            if spec.commits:
                P.publish_group(Path(parts_dir), spec.world)
        return [_collect(spec, [_load_result(Path(out_dir) / f"run{i}-rank{r}.safetensors") for r in range(spec.world)])
                for i, spec in enumerate(specs)]


def join(spec: TrainSpec, rank: int, master: str, *, parts_dir: str | Path | None = None,
         tamper: Tamper | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Train rank ``rank`` of ``spec`` in this process: one machine's part of a group task. The
    ranks meet at ``master`` (``host:port``, which rank 0 listens on). With a
    ``checkpoint_interval`` the rank publishes its parts under ``parts_dir``, and rank 0 also
    writes ``group.json`` from the proof roots every rank sends it."""
    if not 0 <= rank < spec.world:
        raise ValueError(f"rank {rank} is not a rank of a {spec.stages} x {spec.replicas} group")
    if spec.commits and parts_dir is None:
        raise ValueError("a spec with a checkpoint_interval needs a parts directory")
    host, _, port = master.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"master {master!r} is not host:port")
    torch.set_num_threads(spec.threads)
    if tamper is not None:
        tamper.install(rank)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://{host}:{port}", rank=rank, world_size=spec.world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except BaseException:
        _forget_process_groups()
        raise
    try:
        result = _train_rank(rank, spec, None if parts_dir is None else str(parts_dir), tamper)
        if spec.commits:
            own = P.load_participant(Path(parts_dir), rank).proof_root
            roots = [torch.empty(32, dtype=torch.uint8) for _ in range(spec.world)]
            dist.all_gather(roots, torch.tensor(list(own), dtype=torch.uint8))
            if rank == 0:
                P.write_group(Path(parts_dir), [bytes(root.tolist()) for root in roots])
    finally:
        dist.destroy_process_group()
    return result


def _save_result(result: dict[str, Any], path: Path) -> None:
    """A rank's result as safetensors: its parameters as tensors, everything else as JSON metadata."""
    numbers = {key: value for key, value in result.items() if key != "state"}
    save_file({name: t.contiguous() for name, t in result["state"].items()}, str(path),
              metadata={"result": json.dumps(numbers)})


def _load_result(path: Path) -> dict[str, Any]:
    """What `_save_result` wrote, parsed (nothing unpickled)."""
    with safe_open(str(path), framework="pt") as file:
        result = json.loads(file.metadata()["result"])
        result["state"] = {name: file.get_tensor(name) for name in file.keys()}
    return result


def _collect(spec: TrainSpec, ranks: list[dict[str, Any]]) -> RunResult:
    state: dict[str, torch.Tensor] = {}
    for result in ranks[: spec.stages]:
        state.update(result["state"])
    equal = all(torch.equal(result["state"][n], state[n]) for result in ranks for n in result["state"])
    last = [result["losses"] for result in ranks if result["stage"] == spec.stages - 1]
    losses = [sum(values) / len(values) for values in zip(*last)]
    total = sum(result["p2p_bytes"] + result["collective_bytes"] for result in ranks)
    return RunResult(spec, state, losses, heldout_loss(spec, state), max(r["seconds"] for r in ranks),
                     total / spec.steps, equal, ranks)


def run_single(spec: TrainSpec) -> RunResult:
    """The same training in this process on the whole model: same initial weights, same
    batches, micro-batches and optimizer; no compression, and synchronous (DiLoCo is ignored).

    Sums follow the engine's order: each replica's micro-batch gradients are accumulated on
    their own, then added in replica order and divided by the replica count; the squared norm
    for clipping is summed stage by stage. With two stages and two replicas (where a two-rank
    sum has one order) the engine's parameters then match these bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        model = build_gpt(spec)
        params = list(model.parameters())
        stage_params = [list(Stage(model, s, spec.blocks_per_stage()).parameters()) for s in range(spec.stages)]
        optimizer = Optimizer(spec.optimizer_config(), params, spec.steps)
        train, _ = corpus_rows(spec)
        losses = []
        start = time.perf_counter()
        for step in range(spec.steps):
            step_loss, total = 0.0, None
            for replica in range(spec.replicas):
                replica_loss = 0.0
                for mids in batch_ids(spec, step, replica).split(spec.micro_size):
                    loss = lm_loss(model(train[mids][:, :-1]), train[mids]) / spec.micro_batches
                    loss.backward()
                    replica_loss += loss.item()
                step_loss += replica_loss / spec.replicas
                grads = [p.grad for p in params]
                total = grads if total is None else [a + b for a, b in zip(total, grads)]
                for p in params:
                    p.grad = None
            for p, g in zip(params, total):
                p.grad = g / spec.replicas if spec.replicas > 1 else g
            losses.append(step_loss)
            sq = sum(grad_sq_sum(group) for group in stage_params) if optimizer.clip_norm else None
            optimizer.step(step, sq)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    return RunResult(spec, state, losses, heldout_loss(spec, state), seconds, 0.0, True)
