"""The fuzz tests' budget: fixed, derandomized examples in CI; ``HYPOTHESIS_PROFILE=long`` for a
longer, randomized local run. The example database is never written (``database=None``)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
_SCALE = {"ci": 1, "long": 25}
_SHARED = {
    "database": None,
    "deadline": None,  # the machine is shared: no per-example timing
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", derandomize=True, print_blob=True, **_SHARED)
settings.register_profile("long", derandomize=False, print_blob=True, **_SHARED)
if PROFILE not in _SCALE:
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: expected one of {', '.join(_SCALE)}")
settings.load_profile(PROFILE)


def examples(ci: int) -> int:
    """``max_examples`` for a property: ``ci`` in CI, more under the long profile."""
    return ci * _SCALE[PROFILE]
