"""The suite on a test's fresh Anvil, deployed once per configuration and test session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offchain.chain.client import connect
from offchain.chain.deployment import Deployment, deployment_path
from offchain.node import LOCAL_DEPLOYMENT, deploy

# a configuration's deployed chain (Anvil state dump) and deployment file, once per test session
_CHAINS: dict[tuple, tuple[str, str]] = {}


def deployed(url: str, deployments: Path, **config: Any) -> Deployment:
    """The suite on the fresh Anvil at `url`: deployed by `ape run deploy` the first time a
    configuration is asked for; after that, that chain (its blocks, code, balances and nonces) is
    loaded into this Anvil (`anvil_loadState`), a second instead of a deploy."""
    key = tuple(sorted((name, str(value)) for name, value in config.items()))
    path = deployment_path(*LOCAL_DEPLOYMENT, deployments)
    if key not in _CHAINS:
        deploy(url, deployments=deployments, **config)
        _CHAINS[key] = (_rpc(url, "anvil_dumpState"), path.read_text())
        return Deployment.load(path)
    state, text = _CHAINS[key]
    _rpc(url, "anvil_loadState", state)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Deployment.load(path)


def _rpc(url: str, method: str, *params: Any) -> Any:
    response = connect(url).provider.make_request(method, list(params))
    if "error" in response:
        raise RuntimeError(f"{method}: {response['error']}")
    return response["result"]
