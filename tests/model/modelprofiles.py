"""Hypothesis profiles of the model-based test of the whole network (docs/testing.md).

``ci`` (the default: derandomized, a few minutes per backend), ``nightly`` (random
seeds, many more and longer runs), ``dev`` (a quick look) and ``triage`` (random, no
shrinking: the first failure fast, to look past known ones), chosen by the
environment variable JUKICORE_HYPOTHESIS_PROFILE. They are registered under
``jukicore-model-*`` names and applied to this test only, never loaded globally.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

#: The password protecting the model network's node keys.
PASSWORD = "model-network password"
PROFILE_ENV = "JUKICORE_HYPOTHESIS_PROFILE"

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                              HealthCheck.filter_too_much],
    "database": None,
}
settings.register_profile("jukicore-model-ci", max_examples=8, stateful_step_count=50,
                          derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("jukicore-model-nightly", max_examples=300,
                          stateful_step_count=120, derandomize=False, print_blob=True,
                          **_COMMON)
settings.register_profile("jukicore-model-triage", max_examples=30, stateful_step_count=60,
                          derandomize=False, print_blob=True,
                          phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.register_profile("jukicore-model-dev", max_examples=2, stateful_step_count=25,
                          derandomize=True, print_blob=True, **_COMMON)


def model_settings() -> settings:
    """The profile named by JUKICORE_HYPOTHESIS_PROFILE (ci, nightly, dev, triage; default ci)."""
    name = os.environ.get(PROFILE_ENV, "ci")
    try:
        return settings.get_profile(f"jukicore-model-{name}")
    except Exception as exc:  # InvalidArgument: unknown profile
        raise pytest.UsageError(
            f"{PROFILE_ENV}={name!r}: use one of ci, nightly, dev, triage") from exc
