"""`dtm`: run a market role, post and inspect tasks, manage accounts, bring up a local node."""

from __future__ import annotations

import faulthandler
import functools
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from offchain.chain.suite import ETHER, TERMINAL_STATES, Role, TaskState, format_ether

DEFAULT_HOME = Path(os.environ.get("DTM_HOME", Path.home() / ".dtm"))
DEFAULT_RPC = os.environ.get("DTM_RPC", "http://127.0.0.1:8545")


@dataclass
class Env:
    """What every command needs, built lazily from the global options."""

    home: Path
    rpc: str
    deployment_path: Path | None
    account_name: str | None
    dev_account: int | None
    _cache: dict[str, Any] = field(default_factory=dict)

    def account(self):
        from offchain import accounts, node

        if self.dev_account is not None:
            return node.dev_account(self.dev_account)
        if self.account_name is None:
            raise click.UsageError("choose an account: --account NAME (keystore) or --dev-account N (Anvil)")
        password = os.environ.get("DTM_PASSWORD") or click.prompt("Keystore password", hide_input=True)
        try:
            return accounts.load(self.home, self.account_name, password)
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from exc

    def market(self, *, signer: bool = True):
        from offchain.chain.client import ChainError, Market, connect
        from offchain.chain.deployment import Deployment, DeploymentNotFound, deployment_path

        account = self.account() if signer else None  # a key problem is reported before any network wait
        try:
            w3 = connect(self.rpc)
            deployment = Deployment.load(self.deployment_path or deployment_path("ethereum", "local"))
        except (ChainError, DeploymentNotFound) as exc:
            raise click.ClickException(str(exc)) from exc
        if w3.eth.chain_id != deployment.chain_id:
            raise click.ClickException(f"{self.rpc} is chain {w3.eth.chain_id}, the deployment is for {deployment.chain_id}")
        return Market(w3, deployment, account)

    def store(self):
        from offchain.storage import open_store

        return open_store(os.environ, default_dir=self.home / "ipfs")


pass_env = click.make_pass_decorator(Env)


class StrictCommand(click.Command):
    """An option given twice is an error, not a silent "the last one wins"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        tokens = args[: args.index("--")] if "--" in args else args
        for param in self.params:
            if not isinstance(param, click.Option) or param.multiple or param.count:
                continue
            names = param.opts + param.secondary_opts
            given = [t for t in tokens if t in names or any(t.startswith(n + "=") for n in names if n.startswith("--"))]
            if len(given) > 1:
                raise click.UsageError(f"{param.opts[-1]} given {len(given)} times; give it once", ctx)
        return super().parse_args(ctx, args)


class StrictGroup(StrictCommand, click.Group):
    command_class = StrictCommand
    group_class = type  # subgroups are strict too

    def invoke(self, ctx: click.Context) -> Any:
        """Any error a command did not anticipate is one line too; --debug shows the traceback."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except BrokenPipeError:
            # the reader went away (`dtm task list | head`): stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(141) from None
        except Exception as exc:
            if ctx.find_root().params.get("debug"):
                raise
            from offchain.chain.client import ChainError
            from offchain.ml.errors import MLError

            known = isinstance(exc, (ChainError, MLError, OSError))
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            hint = "" if known else f" ({type(exc).__name__}; run with --debug for the traceback)"
            raise click.ClickException(message + hint) from None


@click.group(cls=StrictGroup)
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True,
              help="Worker state, keystores and the embedded IPFS store ($DTM_HOME).")
@click.option("--rpc", default=DEFAULT_RPC, show_default=True, help="Ethereum JSON-RPC URL ($DTM_RPC).")
@click.option("--deployment", "deployment_path", type=click.Path(path_type=Path),
              help="Deployment file (default deployments/ethereum-local.yaml).")
@click.option("--account", "account_name", help="Keystore account to sign with.")
@click.option("--dev-account", type=int, envvar="DTM_DEV_ACCOUNT", help="Use Anvil's funded account N.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def main(ctx: click.Context, home: Path, rpc: str, deployment_path: Path | None, account_name: str | None,
         dev_account: int | None, debug: bool) -> None:
    """A verifiable market for ML training compute."""
    ctx.obj = Env(home, rpc, deployment_path, account_name, dev_account)


# ── accounts ────────────────────────────────────────────────────────
@main.group()
def account() -> None:
    """Encrypted keystores."""


def _new_password() -> str:
    return os.environ.get("DTM_PASSWORD") or click.prompt("New password", hide_input=True, confirmation_prompt=True)


@account.command("new")
@click.argument("name")
@pass_env
def account_new(env: Env, name: str) -> None:
    """Create a key and store it encrypted."""
    from eth_account import Account

    from offchain import accounts

    created = Account.create()
    try:
        path = accounts.save(env.home, name, created, _new_password())
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}  {created.address}  ({path})")


@account.command("import")
@click.argument("name")
@pass_env
def account_import(env: Env, name: str) -> None:
    """Store an existing private key, encrypted."""
    from eth_account import Account

    from offchain import accounts

    key = os.environ.get("DTM_PRIVATE_KEY") or click.prompt("Private key", hide_input=True)
    try:
        imported = Account.from_key(key)
    except ValueError as exc:
        raise click.ClickException("not a valid private key") from exc
    try:
        accounts.save(env.home, name, imported, _new_password())
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}  {imported.address}")


@account.command("list")
@pass_env
def account_list(env: Env) -> None:
    from offchain import accounts

    for name, address in accounts.listing(env.home):
        click.echo(f"{name:<20} {address}")


# ── staking ─────────────────────────────────────────────────────────
@main.command()
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["solver", "verifier", "whistleblower"]))
@click.option("--amount", type=float, required=True, help="Ether to stake.")
@pass_env
def stake(env: Env, roles: tuple[str, ...], amount: float) -> None:
    """Stake ether for one or more roles."""
    flags = Role(0)
    for role in roles:
        flags |= Role[role.upper()]
    market = env.market()
    _chain_call(lambda: market.deposit(flags, int(amount * ETHER)))
    click.echo(f"staked {amount} ETH as {', '.join(roles)}")


_eth = format_ether


def _me(env: Env, address: str | None) -> str:
    if address:
        from web3 import Web3

        if not Web3.is_address(address):
            raise click.BadParameter(f"{address!r} is not an address")
        return Web3.to_checksum_address(address)
    return env.account().address


@main.command()
@click.argument("address", required=False)
@pass_env
def balance(env: Env, address: str | None) -> None:
    """Stake (bonded, locked, unbonding), credits to withdraw, escrow of your open tasks and the
    account's own ether, which pays its gas."""
    account = _me(env, address)
    market = env.market(signer=False)
    bonded, locked, unbonding, ready_at, roles = market.call("accounts", account)
    names = [role.name.lower() for role in Role if roles & role]
    click.echo(f"{account}  roles: {', '.join(names) or 'none'}")
    click.echo(f"  bonded     {_eth(bonded)}  (locked {_eth(locked)}, free {_eth(bonded - locked)})")
    if unbonding:
        wait = ready_at - market.now()
        when = f"withdrawable in {wait} s" if wait > 0 else "withdraw it now: dtm withdraw-stake"
        click.echo(f"  unbonding  {_eth(unbonding)}  ({when})")
    click.echo(f"  credits    {_eth(market.call('credits', account))}  (dtm withdraw)")
    escrow = sum(view.escrow + view.tax for view in _tasks(market) if view.submitter == account
                 and view.state not in TERMINAL_STATES)
    click.echo(f"  escrow     {_eth(escrow)}  held for your unfinished tasks")
    click.echo(f"  wallet     {_eth(market.ether(account))}  the account's own, for gas and payments")


@main.command()
@click.option("--amount", type=float, required=True, help="Ether to stop staking (it unbonds, then withdraw-stake).")
@pass_env
def unbond(env: Env, amount: float) -> None:
    """Start unbonding free stake; it can be withdrawn after the unbonding delay."""
    if amount <= 0:
        raise click.BadParameter("the amount must be positive", param_hint="--amount")
    market = env.market()
    _chain_call(lambda: market.transact("unbond", int(amount * ETHER)))
    click.echo(f"unbonding {amount} ETH; withdrawable in {market.call('unbond_delay')} s (dtm withdraw-stake)")


@main.command("withdraw-stake")
@pass_env
def withdraw_stake(env: Env) -> None:
    """Withdraw stake whose unbonding delay has passed."""
    market = env.market()
    before = market.call("accounts", market.account.address)[2]
    _chain_call(lambda: market.transact("withdraw_stake"))
    click.echo(f"withdrew {_eth(before)} of stake")


@main.command()
@pass_env
def withdraw(env: Env) -> None:
    """Withdraw your credits (payments, fees, refunds, rewards)."""
    market = env.market()
    amount = market.call("credits", market.account.address)
    if not amount:
        raise click.ClickException("no credits to withdraw")
    _chain_call(lambda: market.transact("withdraw", market.account.address))
    click.echo(f"withdrew {_eth(amount)}")


@main.command()
@pass_env
def jackpot(env: Env) -> None:
    """The forced-error jackpot and the current terms that pay from it."""
    market = env.market(signer=False)
    terms = market.terms(market.call("current_terms"))
    click.echo(f"jackpot {_eth(market.call('pool'))}: pays {terms.payout_ppm / 10_000:g}% of the pool, at most "
               f"{_eth(terms.payout_cap)}, per proven forced error; {terms.forced_error_ppm / 10_000:g}% of "
               f"proofs are forced errors; tax {terms.tax_ppm / 10_000:g}% of each payment funds it")
    from offchain.timeline import jackpot_activity

    for move in jackpot_activity(market):
        what = f"paid {_eth(move.amount)} to {move.winner}" if move.paid else f"funded {_eth(move.amount)}"
        click.echo(f"  block {move.block:>6}  {what} (pool {_eth(move.pool)})")


_DEADLINES = {
    # state: (what runs until the deadline, what anyone may do once it has passed)
    TaskState.OPEN: ("open for solvers", "anyone may expire it (the payment is refunded)"),
    TaskState.CLAIMED: ("training window", "anyone may expire it (the solver is slashed, the task reopens)"),
    TaskState.SUBMITTED: ("verify window", "anyone may expire it (the silent verifier pays, another is drawn)"),
    TaskState.ACCEPTED: ("whistleblower window", "the solver may finalise and be paid (after the reveal window "
                                                 "too, anyone may expire it)"),
}


def _deadline(view, now: int) -> str:
    """The running deadline of a task, named, and what its passing allows."""
    if view.draw_block and view.state in (TaskState.CLAIMED, TaskState.SUBMITTED):
        return f"randomness committed at block {view.draw_block}: anyone may call draw from the next block"
    if view.state == TaskState.DISPUTED:
        return f"dispute {view.dispute_id} in progress (the timeline below shows its moves)"
    if view.state not in _DEADLINES:
        return ""
    deadline = view.expires if view.state == TaskState.OPEN else view.deadline
    what, then = _DEADLINES[view.state]
    if deadline > now:
        return f"{what} closes in {deadline - now} s"
    return f"{what} closed {now - deadline} s ago: {then}"


def _tasks(market):
    return [market.task(task_id) for task_id in range(1, market.call("task_count") + 1)]


# ── workers ─────────────────────────────────────────────────────────
def _run_worker(env: Env, kind: str, threads: int | None, **options: Any) -> None:
    """A worker alone in its process: it trains or replays with ``threads``, by default every core
    but one (left to checkpoint bookkeeping, the node and the keeper: on a busy core, intra-op
    threads wait on each other). `kill -USR1 PID` prints every thread's stack to its stderr (where a
    worker seems stuck). Freed tensor memory stays in the process's heap (`tune_allocator`): a
    long-lived worker's every step would otherwise page its activations in again."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    import torch

    from offchain.ml.program import tune_allocator
    from offchain.workers.solver import Solver
    from offchain.workers.verifier import Verifier, Whistleblower

    tune_allocator()
    worker_type = {"solver": Solver, "verifier": Verifier, "whistleblower": Whistleblower}[kind]
    worker = worker_type(market=env.market(), store=env.store(), home=env.home,
                         threads=threads or max(1, torch.get_num_threads() - 1), **options)
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    try:
        worker.run()
    except KeyboardInterrupt:
        pass


@main.group()
def solver() -> None:
    """Train tasks for payment."""


@solver.command("run")
@click.option("--cheat", type=click.Choice(["skip", "fabricate", "wrong-data", "element"]),
              help="Be a dishonest solver (for tests and demonstrations).")
@click.option("--corrupt-op", metavar="OP",
              help="With --cheat element: corrupt the program's last OP node (e.g. safe_softmax, layer_norm) "
                   "rather than its longest matmul-like one.")
@click.option("--poll", type=float, default=1.0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads to train with  [default: every core but one]")
@pass_env
def solver_run(env: Env, cheat: str | None, corrupt_op: str | None, poll: float, threads: int | None) -> None:
    if corrupt_op is not None and cheat != "element":
        raise click.UsageError("--corrupt-op goes with --cheat element")
    _run_worker(env, "solver", threads, cheat=cheat, corrupt_op=corrupt_op, poll_interval=poll)


@main.group()
def verifier() -> None:
    """Check proofs you are drawn for."""


@verifier.command("run")
@click.option("--lazy", is_flag=True, help="Accept without checking (to watch whistleblowers at work).")
@click.option("--poll", type=float, default=1.0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads to replay with  [default: every core but one]")
@pass_env
def verifier_run(env: Env, lazy: bool, poll: float, threads: int | None) -> None:
    _run_worker(env, "verifier", threads, lazy=lazy, poll_interval=poll)


@main.group()
def whistleblower() -> None:
    """Audit accepted proofs."""


@whistleblower.command("run")
@click.option("--poll", type=float, default=1.0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads to replay with  [default: every core but one]")
@pass_env
def whistleblower_run(env: Env, poll: float, threads: int | None) -> None:
    _run_worker(env, "whistleblower", threads, poll_interval=poll)


@main.command()
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between passes.")
@pass_env
def keeper(env: Env, interval: float) -> None:
    """Enforce every passed deadline: expire overdue tasks, time out stalled disputes."""
    from offchain.workers.keeper import Keeper

    _run_keeper(Keeper(env.market(), interval=interval))


def _run_keeper(keeper) -> None:
    import threading

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        keeper.run(stopping)
    except KeyboardInterrupt:
        pass


# ── models ──────────────────────────────────────────────────────────
@main.group()
def model() -> None:
    """Export a PyTorch model's training step as a verifiable program."""


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of sizes") from exc
    if not shape or min(shape) < 1:
        raise click.BadParameter("sizes must be positive")
    return shape


@model.command("export")
@click.argument("reference")
@click.option("--input-shape", required=True, help="One example's shape, e.g. 1,28,28 (tokens per row for --loss lm).")
@click.option("--kwargs", "kwargs_json", help="Constructor arguments as a JSON object.")
@click.option("--loss", type=click.Choice(["cross_entropy", "lm_cross_entropy", "mse", "l1", "smooth_l1"]),
              default="cross_entropy", show_default=True,
              help="mse, l1, smooth_l1: regression against the last --targets values of each data row.")
@click.option("--targets", type=click.IntRange(min=1), help="Regression losses: target values a row  [default: 1]")
@click.option("--label-smoothing", type=float, default=0.0, show_default=True,
              help="Cross-entropy losses: the share of each target spread over every class.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--optimizer", "name", type=click.Choice(["sgd", "adam", "adamw"]), default="sgd", show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--momentum", type=float)
@click.option("--weight-decay", type=float)
@click.option("--schedule", type=click.Choice(["constant", "cosine", "step"]))
@click.option("--warmup-steps", type=int)
@click.option("--clip-norm", type=float, help="Clip gradients to this global L2 norm.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial weights.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Program file (JSON) to write.")
@click.option("--weights-out", type=click.Path(path_type=Path), help="Initial weights (safetensors) to write.")
def model_export(reference: str, input_shape: str, kwargs_json: str | None, loss: str, targets: int | None,
                 label_smoothing: float, batch_size: int, out: Path, weights_out: Path | None, seed: int,
                 **optimizer: Any) -> None:
    """Capture REFERENCE (FILE.py:Class or module:Class): forward, loss, backward, optimizer."""
    from offchain.ml.capture import REGRESSION_LOSSES, ExportConfig
    from offchain.ml.errors import MLError
    from offchain.ml.exporter import export_model, optimizer_from_options, parse_kwargs, quote

    if targets is not None and loss not in REGRESSION_LOSSES:
        raise click.UsageError(f"--targets applies to the regression losses ({', '.join(REGRESSION_LOSSES)})")
    try:
        config = ExportConfig(batch_size, _shape(input_shape), loss, optimizer_from_options(optimizer), targets or 1,
                              label_smoothing)
        program, weights = export_model(reference, parse_kwargs(kwargs_json), config, seed)
    except MLError as exc:
        raise click.ClickException(str(exc)) from None
    out.write_bytes(program.to_bytes())
    if weights_out:
        weights_out.write_bytes(weights)
    figures = quote(program, 1)
    click.echo(f"program {out}: {figures['params']:,} parameters, {figures['nodes']} nodes, "
               f"{figures['flops_per_step'] / 1e9:.3f} GFLOP and {figures['bytes_per_step'] / 1e6:.1f} MB per step")
    click.echo(f"graph root 0x{program.root.hex()}")
    from offchain.dispute.limits import program_bounds_reason

    if (reason := program_bounds_reason(program)) is not None:
        click.echo(f"warning: the dispute game cannot judge this program, so workers will not take it: {reason}",
                   err=True)


# ── tasks ───────────────────────────────────────────────────────────
@main.group()
def task() -> None:
    """Post tasks and follow them."""


@task.command("post")
@click.option("--dataset", type=click.Choice(["digits", "synthetic"]), help="A built-in dataset (default: digits).")
@click.option("--data", "data_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Your own data: .csv, .npy, .npz or .safetensors (docs/protocol.md §9.1).")
@click.option("--label-column", help="--data .csv/.npy: the label column, by header name or index (default: last).")
@click.option("--seq-len", type=int, help="--data token file (.txt/.npy/.safetensors): tokens per row, minus one.")
@click.option("--targets", type=click.IntRange(min=1),
              help="--data: a regression task with this many float targets a row (the label column, or the last "
                   "TARGETS columns); the MLP preset then trains with mean squared error.")
@click.option("--holdout", type=float, help="--data: share of rows kept back to score the result  [default: 0.1]")
@click.option("--program", "program_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Train this program (`dtm model export`) instead of the MLP preset; needs --weights.")
@click.option("--weights", "weights_file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="--program: its initial weights (`dtm model export --weights-out`).")
@click.option("--classes", type=int, help="Output classes of the MLP (default: max label + 1).")
@click.option("--hidden", default="32", show_default=True,
              help="Hidden widths of the MLP, comma-separated (64,32: two hidden layers).")
@click.option("--steps", type=int, default=300, show_default=True)
@click.option("--k", "interval", type=int, default=10, show_default=True, help="Checkpoint interval.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Training seed (and the held-out split's).")
@click.option("--payment", type=float, default=1.0, show_default=True, help="Ether escrowed.")
@click.option("--solver-stake", type=float, default=1.0, show_default=True, help="Ether a solver must lock.")
@click.option("--expires-in", type=int, default=3_600, show_default=True, help="Seconds the task stays open.")
@click.option("--train-window", type=int, default=600, show_default=True, help="Seconds a solver has to submit.")
@pass_env
def task_post(env: Env, dataset: str | None, data_file: Path | None, label_column: str | None, seq_len: int | None,
              targets: int | None, holdout: float | None, program_file: Path | None, weights_file: Path | None, classes: int | None,
              hidden: str, steps: int, interval: int, batch_size: int, lr: float, seed: int, payment: float,
              solver_stake: float, expires_in: int, train_window: int) -> None:
    """Publish a classification (or regression) task on IPFS and escrow its payment.

    The model is the MLP preset (exported as a program, trained with SGD) or your own program
    (--program, --weights: its batch size, optimizer and schedule are the program's). The data is
    a built-in dataset (--dataset) or your own file (--data); of your own, only the training rows
    are published: the held-out rows stay under --home and `dtm task result` scores the trained
    weights on them."""
    from offchain.dispute.limits import UnjudgeableTask
    from offchain.ml import MLError, digits_dataset, synthetic_dataset
    from offchain.ml.data import load_dataset
    from offchain.ml.exporter import mlp_preset, quote
    from offchain.ml.optim import OptimizerConfig
    from offchain.ml.program import Program
    from offchain.ml.program_training import initial_weights
    from offchain.workers.artifacts import check_program_task, publish_program_task
    from offchain.workers.submitter import Submitter

    _check_terms(payment, solver_stake, expires_in, train_window)
    widths = _widths(hidden)
    kept = None
    if data_file is None:
        if label_column is not None or seq_len is not None or targets is not None or holdout is not None:
            raise click.UsageError("--label-column, --seq-len, --targets and --holdout apply to --data only")
        data = synthetic_dataset(512, 16, 4, seed=seed) if dataset == "synthetic" else digits_dataset()
        needed = int(data.y.max()) + 1
    elif dataset is not None:
        raise click.UsageError("--data and --dataset are mutually exclusive: post your own file or a built-in dataset")
    else:
        try:
            loaded = load_dataset(data_file, label_column=label_column, seq_len=seq_len, targets=targets,
                                  holdout=0.1 if holdout is None else holdout, seed=seed)
        except MLError as exc:
            raise click.ClickException(str(exc)) from exc
        if loaded.is_tokens and program_file is None:
            raise click.ClickException(f"{data_file}: token data needs a sequence model; the MLP preset "
                                       "trains classifiers only")
        data, kept, needed = loaded.train, loaded.holdout, loaded.num_classes
        click.echo(f"data {loaded.description}")
    if classes is not None and targets is not None:
        raise click.UsageError("--classes: a regressor has one output a target (--targets)")
    if classes is not None and classes < needed:
        raise click.UsageError(f"--classes {classes}: the data has labels up to {needed - 1}")
    if (program_file is None) != (weights_file is None):
        raise click.UsageError("--program and --weights go together: a program and its initial weights")
    source = click.get_current_context().get_parameter_source
    given = [f"--{name.replace('_', '-')}" for name in ("hidden", "batch_size", "lr", "classes")
             if source(name) == click.core.ParameterSource.COMMANDLINE]
    if program_file is not None and given:
        raise click.UsageError(f"{', '.join(given)}: a program fixes its own model, batch size and optimizer")
    options = dict(steps=steps, k=interval, seed=seed)
    try:  # in this order: the task itself, the chain, then the uploads
        if program_file is None:
            program, optimizer, weights = mlp_preset(data.input_dim - (targets or 0), widths, classes or needed,
                                                     batch_size=batch_size, lr=lr, targets=targets)
        else:
            program = Program.from_bytes(program_file.read_bytes())
            optimizer = OptimizerConfig.from_dict(program.meta.get("optimizer"))
            weights = initial_weights(program, weights_file.read_bytes())
            _check_task_kind(program, targets)
        check_program_task(program, optimizer, weights, data, **options)
        publish = functools.partial(publish_program_task, program=program, optimizer=optimizer, weights=weights,
                                    dataset=data, **options)
        market = env.market()
        _check_affordable(market, int(payment * ETHER), int(solver_stake * ETHER))
        store = env.store()
        published = publish(store)
    except UnjudgeableTask as exc:
        raise click.ClickException(f"the dispute game cannot judge this task: {exc}") from exc
    except MLError as exc:
        raise click.ClickException(str(exc)) from exc
    submitter = Submitter(market=market, store=store, home=env.home)
    task_id = _chain_call(lambda: submitter.post(
        published, payment=int(payment * ETHER), solver_stake=int(solver_stake * ETHER),
        expires_in=expires_in, train_window=train_window, holdout=kept))
    figures = quote(program, steps)
    outputs = targets or classes or needed
    model = program_file or f"the MLP preset {'-'.join(map(str, (data.input_dim - (targets or 0), *widths, outputs)))}"
    click.echo(f"model {model}: {figures['params']:,} parameters, {figures['total_tflop'] * 1e3:,.3g} GFLOP over "
               f"{steps} steps; {optimizer.name}, lr {optimizer.lr:g}")
    click.echo(f"task {task_id}  spec {published.spec_cid}")


def _check_task_kind(program, targets: int | None) -> None:
    """A regression program takes regression data with as many targets, a classifier labelled rows."""
    from offchain.ml.capture import REGRESSION_LOSSES

    wanted = program.meta.get("targets") if program.meta.get("loss") in REGRESSION_LOSSES else None
    if wanted != targets:
        have = f"--targets {targets}" if targets else "labelled rows"
        need = f"{wanted} regression target{'s' if wanted != 1 else ''} a row (--targets {wanted})" if wanted \
            else "labelled rows (no --targets)"
        raise click.UsageError(f"the program's {program.meta.get('loss')} loss takes {need}; the data has {have}")


def _widths(hidden: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(width) for width in hidden.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise click.BadParameter(f"{hidden!r}: give positive widths separated by commas, e.g. 64,32", param_hint="--hidden")
    return widths


def _check_terms(payment: float, solver_stake: float, expires_in: int, train_window: int) -> None:
    """A posting's own terms, before anything else is looked at."""
    for value, option in ((payment, "--payment"), (expires_in, "--expires-in"), (train_window, "--train-window")):
        if not value > 0:
            raise click.BadParameter("must be positive", param_hint=option)
    if not solver_stake >= 0:
        raise click.BadParameter("must not be negative", param_hint="--solver-stake")


def _check_affordable(market, payment: int, solver_stake: int) -> None:
    """The market's minimums and the account's balance, before anything is uploaded."""
    terms = market.terms(market.call("current_terms"))
    if payment < terms.min_payment:
        raise click.ClickException(f"payment {_eth(payment)} is below the market's minimum {_eth(terms.min_payment)}")
    if solver_stake < terms.min_solver_stake:
        raise click.ClickException(f"solver stake {_eth(solver_stake)} is below the market's minimum "
                                   f"{_eth(terms.min_solver_stake)}")
    address = market.account.address
    funds = market.w3.eth.get_balance(address)
    if funds < payment:
        raise click.ClickException(f"account {address} has {_eth(funds)}; the payment needs {_eth(payment)} "
                                   "plus gas: fund it first")


@task.command("quote")
@click.argument("program_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--steps", type=int, required=True)
@click.option("--eth-per-tflop", type=float, help="Your price per 10^12 FLOPs, to print a payment.")
def task_quote(program_file: Path, steps: int, eth_per_tflop: float | None) -> None:
    """The work of a task: FLOPs and bytes per step (from the graph) times steps."""
    from offchain.ml.errors import MLError
    from offchain.ml.exporter import quote
    from offchain.ml.program import Program

    try:
        figures = quote(Program.from_bytes(program_file.read_bytes()), steps)
    except MLError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{figures['params']:,} parameters; per step {figures['flops_per_step'] / 1e9:.3f} GFLOP, "
               f"{figures['bytes_per_step'] / 1e6:.1f} MB moved; {steps} steps = {figures['total_tflop']:.4f} TFLOP")
    if eth_per_tflop is not None:
        click.echo(f"payment at {eth_per_tflop} ETH/TFLOP: {figures['total_tflop'] * eth_per_tflop:.6f} ETH")


@task.command("list")
@click.option("--state", "states", multiple=True,
              type=click.Choice([s.name.lower() for s in TaskState if s is not TaskState.NONE]))
@click.option("--mine", is_flag=True, help="Only tasks the signing account posted.")
@pass_env
def task_list(env: Env, states: tuple[str, ...], mine: bool) -> None:
    """Tasks on the market, newest last, with their escrow in ether."""
    market = env.market(signer=False)
    me = env.account().address if mine else None
    shown = 0
    for view in _tasks(market):
        if (states and view.state.name.lower() not in states) or (me and view.submitter != me):
            continue
        click.echo(f"task {view.task_id:>4}  {view.state.name.lower():<10} payment {_eth(view.escrow + view.tax):<14} "
                   f"stake {_eth(view.solver_stake):<10} submitter {view.submitter}")
        shown += 1
    if not shown:
        click.echo("no tasks")


@task.command("cancel")
@click.argument("task_id", type=int)
@pass_env
def task_cancel(env: Env, task_id: int) -> None:
    """Cancel an open task you posted; its payment is credited back (dtm withdraw)."""
    market = env.market()
    _chain_call(lambda: market.transact("cancel", task_id))
    click.echo(f"task {task_id} cancelled; its escrow is in your credits")


@task.command("expire")
@click.argument("task_id", type=int)
@pass_env
def task_expire(env: Env, task_id: int) -> None:
    """Enforce a task's passed deadline (anyone may)."""
    market = env.market()
    _chain_call(lambda: market.transact("expire", task_id))
    click.echo(f"task {task_id}: now {market.task(task_id).state.name.lower()}")


def _plot(env: Env, task_id: int, path: Path) -> None:
    """Draw the loss curve of the task's published checkpoints to ``path``; one line on stdout."""
    from offchain.workers.submitter import loss_curve, plot_curves

    try:
        curve = loss_curve(env.market(signer=False), env.store(), task_id, env.home)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    plot_curves(path, {"training rows": curve}, f"task {task_id}: loss at its published checkpoints")
    first, last = curve[0], curve[-1]
    held = (f", held-out {first.holdout_loss:.4f} -> {last.holdout_loss:.4f}"
            if last.holdout_loss is not None else "")
    click.echo(f"loss curve ({len(curve)} checkpoints): training rows {first.loss:.4f} -> {last.loss:.4f}{held}; "
               f"drawn to {path}")


@task.command("status")
@click.argument("task_id", type=int)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Draw the loss curve of the published checkpoints to this PNG.")
@pass_env
def task_status(env: Env, task_id: int, plot_path: Path | None) -> None:
    """Where a task is, and what happened to it."""
    from offchain.timeline import task_timeline

    market = env.market(signer=False)
    view = market.task(task_id)
    if view.state == TaskState.NONE:
        raise click.ClickException(f"no task {task_id}")
    click.echo(f"task {task_id}: {view.state.name.lower()}  payment held {_eth(view.escrow + view.tax)}, solver stake "
               f"{_eth(view.solver_stake)}")
    now = market.now()
    if view.state == TaskState.DISPUTED and market.deployment.arbiter_kind == "Arbitration":
        from offchain.dispute.status import dispute_status

        lines = dispute_status(market, view.dispute_id, now).lines()
    else:
        lines = [_deadline(view, now)]
    for line in filter(None, lines):
        click.echo(f"  {line}")
    for row in task_timeline(market, task_id):
        click.echo(f"  block {row.block:>6}  {row.event:<20} {row.detail}")
    if plot_path:
        _plot(env, task_id, plot_path)


@task.command("result")
@click.argument("task_id", type=int)
@click.option("--out", type=click.Path(path_type=Path), help="Write the trained weights (safetensors) here.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Draw the loss curve of the published checkpoints to this PNG.")
@pass_env
def task_result(env: Env, task_id: int, out: Path | None, plot_path: Path | None) -> None:
    """Fetch and check the trained weights of a finalised task."""
    from offchain.ml.artifacts import write_tensors
    from offchain.storage import MAX_ARTIFACT_BYTES
    from offchain.workers.submitter import GroupResult, fetch_result

    store = env.store()
    try:
        result = fetch_result(env.market(signer=False), store, task_id, env.home)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc
    if isinstance(result, GroupResult):
        count = sum(t.numel() for t in result.weights.values())
        click.echo(f"group proof {result.proof_cid}  the whole model ({len(result.weights)} tensors, {count:,} "
                   f"parameters) from its stages' last checkpoints  {result.figures()}")
        if out:
            write_tensors(out, result.weights)
            click.echo(f"wrote {out}")
        if plot_path:
            raise click.ClickException("--plot: a group task's checkpoints are its participants' own; no curve is drawn")
        return
    click.echo(f"weights {result.weights_cid}  task's rows ({result.training.rows})  {result.training.figures()}  "
               f"final loss {result.proof.final_loss:.4f}")
    if held := result.holdout:
        click.echo(f"held-out ({held.rows} rows)  {held.figures()}")
    if out:
        out.write_bytes(store.cat(result.weights_cid, max_size=MAX_ARTIFACT_BYTES))
        click.echo(f"wrote {out}")
    if plot_path:
        _plot(env, task_id, plot_path)


# ── local infrastructure ────────────────────────────────────────────
@main.group()
def ipfs() -> None:
    """The embedded content store."""


@ipfs.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5001, show_default=True)
@pass_env
def ipfs_serve(env: Env, host: str, port: int) -> None:
    """Serve the store over the Kubo RPC API (add, cat, block/get, pin/add, version)."""
    from offchain.storage import run_server

    click.echo(f"IPFS RPC on http://{host}:{port}/api/v0 (store {env.home / 'ipfs'})")
    run_server(env.home / "ipfs", host=host, port=port)


@main.group()
def node() -> None:
    """A local chain with the suite deployed."""


@node.command("up")
@click.option("--port", type=int, default=8545, show_default=True)
@click.option("--ipfs-port", type=int, default=5001, show_default=True)
@click.option("--web-port", type=int, default=8080, show_default=True, help="The market's web app.")
@click.option("--window", type=int, default=600, show_default=True,
              help="Verify/whistleblower/reveal windows (s), as docs/protocol.md §8.")
@click.option("--forced-error-ppm", type=int, default=10_000, show_default=True)
@click.option("--fresh", is_flag=True, help="Start a new chain instead of the one saved under --home.")
@pass_env
def node_up(env: Env, port: int, ipfs_port: int, web_port: int, window: int, forced_error_ppm: int,
            fresh: bool) -> None:
    """Anvil (a block a second) + deployed suite + IPFS RPC + a keeper + the web app, until interrupted.

    The chain is saved under --home (chain/state.json) and loaded on the next start, so stakes,
    tasks and credits survive a restart; --fresh starts over. The keeper enforces every passed
    deadline, signing with the account given (default: Anvil's account 0, the deployer)."""
    import threading

    from offchain import node as local
    from offchain import webapp
    from offchain.chain.client import Market, connect
    from offchain.chain.deployment import DeploymentNotFound, deployment_path
    from offchain.storage import serve
    from offchain.workers.keeper import Keeper

    state = env.home / "chain" / "state.json"
    saved = env.home / "chain" / "deployment.yaml"
    if fresh:
        state.unlink(missing_ok=True)
        saved.unlink(missing_ok=True)
    for wanted, option in ((port, "--port"), (ipfs_port, "--ipfs-port"), (web_port, "--web-port")):
        if local.port_in_use(wanted):
            raise click.ClickException(f"port {wanted} is in use (another node running?): stop it or choose {option}")
    signer = env.account() if env.dev_account is not None or env.account_name else local.dev_account(0)
    signal.signal(signal.SIGTERM, _interrupt)
    stopping = threading.Event()
    try:
        anvil = local.start_anvil(port, state=state)
    except local.NodeError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        resumed = _resumed_deployment(anvil.url, saved) if state.exists() else None
        if resumed is None:
            deployment = local.deploy(anvil.url, arbiter=local.DEFAULT_ARBITER, window=window,
                                      forced_error_ppm=forced_error_ppm)
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_bytes(deployment_path(*local.LOCAL_DEPLOYMENT).read_bytes())
        else:
            deployment = resumed
            deployment_path(*local.LOCAL_DEPLOYMENT).write_bytes(saved.read_bytes())
        local.mine_every(anvil.url, 1)
        # browsers may call the store from the app's origin only
        server = serve(env.home / "ipfs", "127.0.0.1", ipfs_port, cors_origins=webapp.app_origins(web_port))
        app = webapp.serve_app(webapp.app_config({deployment.chain_id: anvil.url}, server.url), port=web_port)
        how = "resumed from " + str(state) if resumed else f"new chain (saved to {state})"
        keeper = Keeper(Market(connect(anvil.url), deployment, signer))
        threading.Thread(target=keeper.run, args=(stopping,), daemon=True).start()
        click.echo(f"chain   {anvil.url} (chain id {deployment.chain_id}), {how}\nmarket  {deployment.market}\n"
                   f"arbiter {deployment.arbiter}\nIPFS    {server.multiaddr}  (export IPFS_API={server.multiaddr})\n"
                   f"keeper  {signer.address} enforces every passed deadline\n"
                   f"web     {app.url}  (the market's web app)")
        while anvil.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    except (local.NodeError, DeploymentNotFound, webapp.WebAppNotBuilt) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        stopping.set()
        anvil.stop()


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _resumed_deployment(rpc_url: str, saved: Path):
    """The saved deployment when the loaded chain still holds its market, else None."""
    from offchain.chain.client import connect
    from offchain.chain.deployment import Deployment

    if not saved.exists():
        return None
    deployment = Deployment.load(saved)
    has_code = len(connect(rpc_url).eth.get_code(deployment.market)) > 0
    return deployment if has_code else None


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True)
@click.option("--keep", is_flag=True, help="Keep the chain, the store and the web app up after the demo.")
def demo(out: Path, keep: bool) -> None:
    """A whole market on this machine: honest and cheating solvers, verifier, whistleblower."""
    from offchain.demo import run_demo

    sys.exit(run_demo(out, keep))


@main.group("webapp")
def webapp_group() -> None:
    """The market's web app."""


@webapp_group.command("export")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory to write the static files to.")
@click.option("--rpc-url", "rpc_urls", multiple=True, metavar="CHAIN_ID=URL",
              help="The RPC URL the page reads a chain through (without one, it reads through the wallet).")
@click.option("--ipfs-api", help="The Kubo RPC API the page uploads to, e.g. http://127.0.0.1:5001.")
def webapp_export(out: Path, rpc_urls: tuple[str, ...], ipfs_api: str | None) -> None:
    """Write the app and its config.json (every deployment file) as static files for any web server."""
    from offchain import webapp

    urls = {}
    for given in rpc_urls:
        chain, _, url = given.partition("=")
        if not chain.isdigit() or not url:
            raise click.BadParameter(f"{given!r} is not CHAIN_ID=URL", param_hint="--rpc-url")
        urls[int(chain)] = url
    try:
        webapp.export(out, webapp.app_config(urls, ipfs_api))
    except webapp.WebAppNotBuilt as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out}: serve it with any static web server")


def _chain_call(fn):
    from offchain.chain.client import ChainError

    try:
        return fn()
    except ChainError as exc:
        raise click.ClickException(str(exc)) from exc



# ── multi-machine tasks ─────────────────────────────────────────────
@main.command("schedule")
@click.option("--network", "network_path", type=click.Path(path_type=Path), required=True,
              help="Network file: devices' speeds, latencies, bandwidths (docs/distributed.md).")
@click.option("--stages", type=click.IntRange(min=1), required=True, help="Pipeline stages.")
@click.option("--replicas", type=click.IntRange(min=1), required=True, help="Data-parallel replicas per stage.")
@click.option("--layers", type=click.IntRange(min=1), help="Transformer layers  [default: GPT-3 XL's 24]")
@click.option("--micro-batches", type=click.IntRange(min=1), help="Micro-batches per step  [default: 64]")
@click.option("--activation-compression", type=float, default=1.0, show_default=True)
@click.option("--gradient-compression", type=float, default=1.0, show_default=True)
@click.option("--sync-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Steps per data-parallel sync.")
@click.option("--trials", type=click.IntRange(min=0), default=1000, show_default=True, help="Search offspring.")
@click.option("--seed", type=int, default=0, show_default=True)
def schedule_cmd(network_path: Path, stages: int, replicas: int, layers: int | None, micro_batches: int | None,
                 activation_compression: float, gradient_compression: float, sync_every: int, trials: int,
                 seed: int) -> None:
    """Place a GPT-3-XL-shaped task on a network's devices: stages × replicas, layers per stage."""
    from offchain.distributed import SchedulerError, Workload, load_network, schedule

    changes = {k: v for k, v in (("layers", layers), ("micro_batches", micro_batches)) if v is not None}
    try:
        network = load_network(network_path)
        workload = Workload.gpt3_xl(stages, replicas, activation_compression=activation_compression,
                                    gradient_compression=gradient_compression, sync_every=sync_every, **changes)
        result = schedule(network, workload, seed=seed, trials=trials)
    except SchedulerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.schedule.describe(network.names))
    click.echo(f"searched {result.evaluations} candidates in {result.seconds:.1f} s")


@main.group("group")
def group_cmd() -> None:
    """One transformer task trained by several processes or machines (docs/group-tasks.md)."""


def _group_spec(path: Path):
    from offchain.distributed.group import GroupError, load_spec

    try:
        return load_spec(path)
    except GroupError as exc:
        raise click.ClickException(str(exc)) from None


def _tamper(cheat: str | None):
    """``RANK:STEP`` → the engine's Tamper."""
    from offchain.distributed.engine import Tamper

    if cheat is None:
        return None
    rank, _, step = cheat.partition(":")
    if not (rank.isdigit() and step.isdigit()):
        raise click.BadParameter(f"{cheat!r} is not RANK:STEP", param_hint="--cheat")
    return Tamper(int(rank), int(step))


CHEAT_HELP = "Make rank RANK perturb its parameters after step STEP: a cheater for `group verify` to catch."


@group_cmd.command("spec")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--stages", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), help="Transformer blocks  [default: one per stage]")
@click.option("--dim", type=click.IntRange(min=8), default=32, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=24, show_default=True)
@click.option("--interval", type=click.IntRange(min=1), default=8, show_default=True,
              help="Steps per published checkpoint.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--micro-batches", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--aqsgd-bits", type=click.IntRange(2, 8), help="Compress activations between stages (AQ-SGD).")
@click.option("--diloco", "inner_steps", type=click.IntRange(min=1),
              help="Synchronise replicas every this many steps (DiLoCo).")
@click.option("--diloco-bits", type=click.IntRange(2, 8),
              help="With --diloco: pseudo-gradients cross in this many bits a value (error feedback keeps the rest).")
@click.option("--sampling", type=click.Choice(["epochs", "task"]), default="epochs", show_default=True,
              help="How replicas draw rows: a seeded permutation per epoch (AQ-SGD needs it), or as a task "
                   "draws its batches, so a participant's step can be disputed on chain.")
@click.option("--programs", is_flag=True,
              help="Every participant runs its captured step program (no AQ-SGD): its steps are "
                   "programs a dispute can narrow to one element.")
@click.option("--quantize", "quantize_bits", type=click.IntRange(2, 8),
              help="With --programs: activations between stages cross in this many bits a value.")
@click.option("--quantize-grads", "grad_bits", type=click.IntRange(2, 8), default=8, show_default=True,
              help="With --quantize: the bits of the gradients sent back.")
@click.option("--quantize-sums", "sum_bits", type=click.IntRange(2, 8),
              help="With --quantize: each replica's gradients cross the all-reduce in this many bits.")
@click.option("--seed", type=int, default=0, show_default=True)
def group_spec(out: Path, stages: int, replicas: int, layers: int | None, dim: int, steps: int, interval: int,
               batch_size: int, micro_batches: int, aqsgd_bits: int | None, inner_steps: int | None,
               diloco_bits: int | None, sampling: str, programs: bool, quantize_bits: int | None, grad_bits: int, sum_bits: int | None,
               seed: int) -> None:
    """Write a group task's spec: a byte-level GPT over stages × replicas, every choice explicit."""
    from offchain.distributed.spec import AQSGDConfig, DiLoCoConfig, GPTShape, QuantizeConfig, TrainSpec
    from offchain.distributed.group import save_spec

    if diloco_bits and not inner_steps:
        raise click.ClickException("--diloco-bits compresses DiLoCo's pseudo-gradients: it needs --diloco")
    try:
        spec = TrainSpec(model=GPTShape(seq_len=16, dim=dim, heads=4, layers=layers or stages), stages=stages,
                         replicas=replicas, batch_size=batch_size, micro_batches=micro_batches, steps=steps,
                         train_rows=4 * batch_size, holdout_rows=64, seed=seed, checkpoint_interval=interval,
                         aqsgd=AQSGDConfig(aqsgd_bits) if aqsgd_bits else None,
                         diloco=(DiLoCoConfig(inner_steps, **(dict(compress="quant", bits=diloco_bits) if diloco_bits else {}))
                                 if inner_steps else None), sampling=sampling,
                         programs=programs,
                         quantize=QuantizeConfig(quantize_bits, grad_bits, sum_bits or 0) if quantize_bits else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    save_spec(spec, out)
    click.echo(f"wrote {out}: {stages} stage(s) x {replicas} replica(s) = {spec.world} processes, {steps} steps, "
               f"a checkpoint every {interval}")


@group_cmd.command("run")
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--parts", "parts_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where every participant publishes its parts.")
@click.option("--cheat", metavar="RANK:STEP", help=CHEAT_HELP)
def group_run(spec_path: Path, parts_dir: Path, cheat: str | None) -> None:
    """Train SPEC on this machine, one process per participant."""
    from offchain.distributed.engine import run
    from offchain.distributed.parts import load_group_root

    spec, tamper = _group_spec(spec_path), _tamper(cheat)
    parts_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"training on {spec.world} processes ({spec.stages} stage(s) x {spec.replicas} replica(s))")
    result = run(spec, parts_dir=parts_dir if spec.commits else None, tamper=tamper)
    click.echo(f"trained {spec.steps} steps in {result.seconds:.1f} s: loss {result.losses[0]:.3f} -> "
               f"{result.losses[-1]:.3f}, held-out {result.heldout:.3f}, {result.bytes_per_step:,.0f} B sent a step")
    if spec.commits:
        click.echo(f"group root {load_group_root(parts_dir).hex()} ({parts_dir})")


@group_cmd.command("join")
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rank", type=click.IntRange(min=0), required=True)
@click.option("--master", required=True, metavar="HOST:PORT", help="Where rank 0 listens; every rank gives the same.")
@click.option("--parts", "parts_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where this participant publishes its parts (rank 0 adds group.json).")
@click.option("--timeout", type=click.IntRange(min=1), default=600, show_default=True,
              help="Seconds to wait for the other ranks.")
@click.option("--cheat", metavar="RANK:STEP", help=CHEAT_HELP)
def group_join(spec_path: Path, rank: int, master: str, parts_dir: Path, timeout: int, cheat: str | None) -> None:
    """Train one participant of SPEC in this process, meeting the other ranks at --master."""
    from offchain.distributed.engine import join

    spec, tamper = _group_spec(spec_path), _tamper(cheat)
    parts_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = join(spec, rank, master, parts_dir=parts_dir, tamper=tamper, timeout_s=timeout)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except RuntimeError as exc:  # the process group: a rank missing, a peer gone
        raise click.ClickException(f"rank {rank}: the group failed: {str(exc).splitlines()[0]}") from None
    click.echo(f"rank {rank} (stage {result['stage']}, replica {result['replica']}): trained {spec.steps} steps in "
               f"{result['seconds']:.1f} s")


@group_cmd.command("verify")
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("parts_dir", metavar="PARTS", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sample", type=click.IntRange(min=1), help="Replay this many participant segments  [default: all]")
@click.option("--seed", type=int, default=0, show_default=True, help="Draws the sample.")
def group_verify(spec_path: Path, parts_dir: Path, sample: int | None, seed: int) -> None:
    """Replay the group's participants from their published parts; exit 1 naming any cheater."""
    from offchain.distributed.group import GroupError, verify_group

    def show(v) -> None:
        click.echo(f"  rank {v.rank} segment {v.segment}: " + (
            f"ok ({'exact' if v.exact else f'distance {v.distance:.2e}'}, {v.messages} messages)" if v.accept
            else f"REJECT: {v.reason}"))

    try:
        verdict = verify_group(_group_spec(spec_path), parts_dir, sample=sample, seed=seed, on_segment=show)
    except GroupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"group root {verdict.group_root.hex()}: replayed {len(verdict.verdicts)} participant segments")
    if not verdict.accept:
        raise click.ClickException(f"cheating participant(s): rank {', '.join(map(str, verdict.cheaters))}")
    click.echo("every replayed participant segment matches what it published")


@group_cmd.command("post")
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--payment", type=float, default=1.0, show_default=True, help="Ether escrowed.")
@click.option("--solver-stake", type=float, default=1.0, show_default=True, help="Ether the group's account must lock.")
@click.option("--expires-in", type=int, default=3_600, show_default=True, help="Seconds the task stays open.")
@click.option("--train-window", type=int, default=900, show_default=True, help="Seconds the group has to submit.")
@pass_env
def group_post(env: Env, spec_path: Path, payment: float, solver_stake: float, expires_in: int,
               train_window: int) -> None:
    """Post a group task on the market (docs/group-tasks.md §4.3): one solver account claims it and
    trains it with a process per participant; every participant's step can be disputed on chain.
    The spec needs --programs, --sampling task and a checkpoint interval (`dtm group spec`)."""
    from offchain.distributed.group import GroupError, group_task
    from offchain.ml import MLError
    from offchain.workers.artifacts import publish_group_task
    from offchain.workers.submitter import Submitter

    _check_terms(payment, solver_stake, expires_in, train_window)
    try:  # in this order: the task itself, the chain, then the upload
        group = group_task(_group_spec(spec_path))
    except (GroupError, MLError) as exc:
        raise click.ClickException(str(exc)) from exc
    market = env.market()
    _check_affordable(market, int(payment * ETHER), int(solver_stake * ETHER))
    store = env.store()
    try:
        published = publish_group_task(store, group)
    except MLError as exc:  # the dispute game could not judge a participant's step
        raise click.ClickException(str(exc)) from exc
    submitter = Submitter(market=market, store=store, home=env.home)
    task_id = _chain_call(lambda: submitter.post(published, payment=int(payment * ETHER),
                                                 solver_stake=int(solver_stake * ETHER), expires_in=expires_in,
                                                 train_window=train_window))
    click.echo(f"group task {task_id}  spec {published.spec_cid}  ({published.summary})")


if __name__ == "__main__":
    main()
