"""Fixtures of the model-based test of the whole network (profiles: modelprofiles.py)."""

from __future__ import annotations

import pytest
from modelprofiles import PASSWORD


@pytest.fixture(autouse=True)
def node_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nodes' keys are protected by PASSWORD, found in the environment as an operator's
    nightly script (and the killed ``jukicore sync apply`` subprocesses) would find it."""
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", PASSWORD)
