"""One sandboxed oracle server per test session (starting it imports torch once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from soundness.oracle import Oracle


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    with Oracle(scratch=tmp_path_factory.mktemp("oracle"), timeout=20) as o:
        yield o
