"""Deploy the market suite to any ape network.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network ethereum:sepolia:node --account my-key --arbiter contracts/Arbitration.vy

The arbiter is deployed first, bound to the address the market will get, so the
market's arbiter is fixed at deploy and the arbiter trusts only that market.
Writes `deployments/<ecosystem>-<network>.yaml` and refreshes `abi/*.json`.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import compilers, project
from ape.cli import ConnectedProviderCommand, account_option

from offchain.chain.deployment import Deployment, deployment_path, write_abis
from offchain.chain.suite import DEFAULT_UNBOND_DELAY, ROOT, Terms, create_address

DEFAULT_ARBITER = ROOT / "contracts" / "Arbitration.vy"


def _arbiter_container(source: Path):
    if source.resolve().is_relative_to((ROOT / "contracts").resolve()):
        return project.get_contract(source.stem)
    return compilers.compile_source("vyper", source.read_text(), contractName=source.stem)


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--arbiter", "arbiter_source", type=click.Path(exists=True, path_type=Path),
              default=DEFAULT_ARBITER if DEFAULT_ARBITER.exists() else None, required=not DEFAULT_ARBITER.exists(),
              help="Vyper source of the dispute game to bind to the market.")
@click.option("--unbond-delay", type=int, default=DEFAULT_UNBOND_DELAY, show_default=True)
@click.option("--forced-error-ppm", type=int, default=Terms().forced_error_ppm, show_default=True)
@click.option("--window", type=int, default=Terms().verify_window, show_default=True,
              help="Seconds of the verify, whistleblower and reveal windows.")
def cli(ecosystem, network, provider, account, arbiter_source, unbond_delay, forced_error_ppm, window):
    terms = Terms(forced_error_ppm=forced_error_ppm, verify_window=window, whistle_window=window, reveal_window=window)
    market_address = create_address(account.address, account.nonce + 1)
    arbiter_type = _arbiter_container(arbiter_source)
    arbiter = account.deploy(arbiter_type, market_address)
    market = account.deploy(project.Market, arbiter.address, unbond_delay, terms.as_tuple())
    assert market.address == market_address, "deploy: market landed at an unexpected address"

    deployment = Deployment(
        chain_id=provider.chain_id,
        block=provider.get_receipt(market.txn_hash).block_number,
        contracts={"Market": market.address, "Arbiter": arbiter.address},
        arbiter_kind=arbiter_source.stem,
    )
    path = deployment.save(deployment_path(ecosystem.name, network.name))
    write_abis({
        "Market": [item.model_dump(mode="json", by_alias=True) for item in project.Market.contract_type.abi],
        arbiter_source.stem: [item.model_dump(mode="json", by_alias=True) for item in arbiter_type.contract_type.abi],
    })
    click.echo(f"Market  {market.address}\nArbiter {arbiter.address} ({arbiter_source.stem})\nwrote {path}")
