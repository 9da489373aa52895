"""The default fixture of the real-process tests: a fresh 4-validator Cluster per test,
started, and stopped by PID afterwards (a module may define its own `cluster`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .procs import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()
