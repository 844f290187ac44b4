"""`make mutants` stays meaningful: every mutant still finds the one line it breaks, and names
tests that exist (a refactor that moves a line would otherwise turn its mutant into an error)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mutants", ROOT / "scripts" / "mutants.py")
mutants = sys.modules.setdefault("mutants", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(mutants)


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.id)
def test_mutant__applies_to_exactly_one_place_and_names_existing_tests(mutant, tmp_path):
    target = tmp_path / mutant.file
    target.parent.mkdir(parents=True)
    shutil.copy(ROOT / mutant.file, target)
    assert mutants.apply(mutant, tmp_path) is None
    assert target.read_text() != (ROOT / mutant.file).read_text()
    for test in mutant.tests:
        assert (ROOT / test.split("::")[0]).is_file(), test
