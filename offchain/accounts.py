"""Accounts: encrypted keystores under `$DTM_HOME/keystores`, or Anvil's funded dev accounts.

Keys never touch disk unencrypted; the password comes from `DTM_PASSWORD` or a
prompt.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class AccountError(ValueError):
    """A keystore that does not exist, already exists, or does not open."""


def keystore_dir(home: Path) -> Path:
    return home / "keystores"


def _path(home: Path, name: str) -> Path:
    if not NAME.match(name):
        raise AccountError(f"account name {name!r}: use letters, digits, '.', '_' or '-'")
    return keystore_dir(home) / f"{name}.json"


def save(home: Path, name: str, account: LocalAccount, password: str) -> Path:
    path = _path(home, name)
    if path.exists():
        raise AccountError(f"account {name!r} already exists at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    keystore = Account.encrypt(account.key, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keystore, handle)
    return path


def load(home: Path, name: str, password: str) -> LocalAccount:
    path = _path(home, name)
    if not path.exists():
        raise AccountError(f"no account {name!r} (see `dtm account list`)")
    try:
        return Account.from_key(Account.decrypt(json.loads(path.read_text()), password))
    except ValueError as exc:
        raise AccountError(f"account {name!r}: wrong password or damaged keystore") from exc


def listing(home: Path) -> list[tuple[str, str]]:
    """(name, address) of every keystore."""
    rows = []
    for path in sorted(keystore_dir(home).glob("*.json")):
        address = json.loads(path.read_text()).get("address", "")
        rows.append((path.stem, "0x" + address.removeprefix("0x")))
    return rows
