"""pytest plugin of the mutation check (scripts/mutants.py): hypothesis stops at the first failing
example instead of shrinking it, and keeps no example database in the throw-away copy."""

from hypothesis import Phase, settings

settings.register_profile("mutants", phases=(Phase.explicit, Phase.reuse, Phase.generate), database=None)
settings.load_profile("mutants")
