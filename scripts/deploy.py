"""Deploy the market suite to any ape network.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network ethereum:local:foundry --account TEST::0 --arbiter tests/contracts/ManualArbiter.vy

The dispute game (with its one-step judge, tensor reader and proof checker) is deployed first,
bound to the address the market will get, so the market's arbiter is fixed at
deploy and the game trusts only that market.
Writes `deployments/<ecosystem>-<network>.yaml` and refreshes `abi/*.json`.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import compilers, project
from ape.cli import ConnectedProviderCommand, account_option

from offchain.chain.deployment import Deployment, deployment_path, write_abis
from offchain.chain.suite import DEFAULT_MIN_WINDOW, DEFAULT_UNBOND_DELAY, ROOT, Terms, create_address

DEFAULT_ARBITER = ROOT / "contracts" / "Arbitration.vy"
DEFAULT_CLOCK = 3_600
DEFAULT_EXTENSION = 300


def _arbiter_container(source: Path):
    if source.resolve().is_relative_to((ROOT / "contracts").resolve()):
        return project.get_contract(source.stem)
    return compilers.compile_source("vyper", source.read_text(), contractName=source.stem)


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--arbiter", "arbiter_source", type=click.Path(exists=True, path_type=Path), default=DEFAULT_ARBITER,
              show_default=True, help="Vyper source of the dispute game to bind to the market.")
@click.option("--unbond-delay", type=int, default=DEFAULT_UNBOND_DELAY, show_default=True)
@click.option("--forced-error-ppm", type=int, default=Terms().forced_error_ppm, show_default=True)
@click.option("--window", type=int, default=Terms().verify_window, show_default=True,
              help="Seconds of the verify, whistleblower and reveal windows.")
@click.option("--clock", type=int, default=DEFAULT_CLOCK, show_default=True,
              help="Seconds each side of a dispute has for the whole game.")
@click.option("--extension", type=int, default=DEFAULT_EXTENSION, show_default=True,
              help="Seconds a side has at least after its opponent moved.")
def cli(ecosystem, network, provider, account, arbiter_source, unbond_delay, forced_error_ppm, window, clock,
        extension):
    defaults = Terms()
    # keep a forced error's expected jackpot payout within the tax a task pays (docs/protocol.md §4)
    payout_cap = defaults.payout_cap
    if forced_error_ppm:
        payout_cap = min(payout_cap, defaults.tax_ppm * defaults.min_payment // forced_error_ppm)
    terms = defaults.replace(forced_error_ppm=forced_error_ppm, payout_cap=payout_cap, verify_window=window,
                             whistle_window=window, reveal_window=window)
    arbiter_type = _arbiter_container(arbiter_source)
    contracts: dict[str, str] = {}
    abis = {arbiter_source.stem: arbiter_type.contract_type}
    if arbiter_source.stem == "Arbitration":
        pointwise = account.deploy(project.PointwiseJudge)
        judge = account.deploy(project.Judge, pointwise.address)
        reader = account.deploy(project.TensorReader)
        checker = account.deploy(project.ProofChecker, reader.address)
        index_map = account.deploy(project.ProgramIndex)
        nonlinear = account.deploy(project.ProgramNonlinearJudge)
        program_judge = account.deploy(project.ProgramJudge, index_map.address, judge.address, nonlinear.address)
        programs = account.deploy(project.ProgramChecker, program_judge.address, reader.address)
        program_links = account.deploy(project.ProgramLinkChecker, reader.address)
        row_judge = account.deploy(project.ProgramRowJudge)
        program_reducer = account.deploy(project.ProgramReductionChecker, judge.address, reader.address,
                                         index_map.address, row_judge.address)
        contracts |= {"PointwiseJudge": pointwise.address, "Judge": judge.address, "TensorReader": reader.address,
                      "ProofChecker": checker.address,
                      "ProgramIndex": index_map.address, "ProgramNonlinearJudge": nonlinear.address,
                      "ProgramJudge": program_judge.address, "ProgramRowJudge": row_judge.address,
                      "ProgramChecker": programs.address, "ProgramLinkChecker": program_links.address,
                      "ProgramReductionChecker": program_reducer.address}
        abis |= {"PointwiseJudge": project.PointwiseJudge.contract_type,
                 "Judge": project.Judge.contract_type, "TensorReader": project.TensorReader.contract_type,
                 "ProofChecker": project.ProofChecker.contract_type,
                 "ProgramIndex": project.ProgramIndex.contract_type,
                 "ProgramNonlinearJudge": project.ProgramNonlinearJudge.contract_type,
                 "ProgramJudge": project.ProgramJudge.contract_type,
                 "ProgramRowJudge": project.ProgramRowJudge.contract_type,
                 "ProgramChecker": project.ProgramChecker.contract_type,
                 "ProgramLinkChecker": project.ProgramLinkChecker.contract_type,
                 "ProgramReductionChecker": project.ProgramReductionChecker.contract_type}
        arbiter_args = (checker.address, programs.address, program_links.address, program_reducer.address, clock,
                        extension)
    else:
        arbiter_args = ()
    market_address = create_address(account.address, account.nonce + 1)
    arbiter = account.deploy(arbiter_type, market_address, *arbiter_args)
    # the owner may later shorten windows down to this floor, never below
    min_window = min(window, DEFAULT_MIN_WINDOW)
    market = account.deploy(project.Market, arbiter.address, unbond_delay, terms.as_tuple(), min_window)
    assert market.address == market_address, "deploy: market landed at an unexpected address"

    deployment = Deployment(
        chain_id=provider.chain_id,
        block=provider.get_receipt(market.txn_hash).block_number,
        contracts={"Market": market.address, "Arbiter": arbiter.address, **contracts},
        arbiter_kind=arbiter_source.stem,
    )
    path = deployment.save(deployment_path(ecosystem.name, network.name))
    abis["Market"] = project.Market.contract_type
    write_abis({name: [item.model_dump(mode="json", by_alias=True) for item in ct.abi] for name, ct in abis.items()})
    click.echo("\n".join(f"{name:<12} {address}" for name, address in deployment.contracts.items()))
    click.echo(f"wrote {path}")
