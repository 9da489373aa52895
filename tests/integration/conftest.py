"""The default fixture of the real-process tests: a fresh 4-validator Cluster per test,
started, and stopped by PID afterwards (a module may define its own `cluster`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .procs import Cluster, running


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running(tmp_path) as c:
        yield c
