"""Every test in this folder that asks for ``engine`` runs on both engines."""

from __future__ import annotations

import pytest

from support import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)
