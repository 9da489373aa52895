"""Fixtures shared by the HTTP API tests (tests/unit/test_api*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ledgernode import aio
from tests.fixtures import Net
from tests.unit.api_fake import FakeNode, make_net, serve


@pytest.fixture
def net() -> Net:
    return make_net()


@pytest.fixture
def node(net: Net) -> FakeNode:
    return FakeNode(net)


@pytest.fixture
async def client(node: FakeNode) -> AsyncIterator[aio.TestClient]:
    async with serve(node) as c:
        yield c
