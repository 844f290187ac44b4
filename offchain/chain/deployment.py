"""Where a deployed suite lives: `deployments/<ecosystem>-<network>.yaml` and `abi/*.json`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from offchain.chain.suite import ROOT

ABI_DIR = ROOT / "abi"


def deployments_dir() -> Path:
    """`deployments/`, or `$DTM_DEPLOYMENTS_DIR` for throw-away chains."""
    return Path(os.environ.get("DTM_DEPLOYMENTS_DIR", ROOT / "deployments"))


class DeploymentNotFound(FileNotFoundError):
    """No deployment file for the requested network."""


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    block: int
    contracts: dict[str, str]
    arbiter_kind: str = "Arbitration"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def market(self) -> str:
        return self.contracts["Market"]

    @property
    def arbiter(self) -> str:
        return self.contracts["Arbiter"]

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(asdict(self), sort_keys=False))
        return path

    @classmethod
    def load(cls, path: Path) -> Deployment:
        if not path.exists():
            raise DeploymentNotFound(f"no deployment at {path}; deploy the suite first (`dtm node up` or `ape run deploy`)")
        data = yaml.safe_load(path.read_text())
        return cls(**data)


def deployment_path(ecosystem: str, network: str, directory: Path | None = None) -> Path:
    return (directory or deployments_dir()) / f"{ecosystem}-{network}.yaml"


def write_abis(abis: dict[str, list[dict]], directory: Path = ABI_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, abi in abis.items():
        (directory / f"{name}.json").write_text(json.dumps(abi, indent=2) + "\n")


def load_abi(name: str, directory: Path = ABI_DIR) -> list[dict]:
    path = directory / f"{name}.json"
    if not path.exists():
        raise DeploymentNotFound(f"no ABI for {name} at {path}")
    return json.loads(path.read_text())
