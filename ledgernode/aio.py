"""The only module that imports aiohttp: everything else takes its names from here.

Keeping the import in one place lets the verifier (which must not load aiohttp)
and the layering checks see at a glance which modules touch the network
library, and makes an aiohttp upgrade a one-file review.

Server side: `web` (Application, Request, Response, routes, AppKey, runners).
Client side: sessions, timeouts and connectors for peer links and the SDK.
WebSockets: `WSMsgType`, `WSMessage`, `ClientWebSocketResponse`.
Tests: `TestServer` and `TestClient` run an application on 127.0.0.1 in-process.
`URL` (yarl, which aiohttp depends on) lets the SDK send a path byte for byte as it signed it.
"""

from __future__ import annotations

from aiohttp import (
    ClientConnectionError,
    ClientConnectionResetError,
    ClientConnectorError,
    ClientError,
    ClientOSError,
    ClientPayloadError,
    ClientResponse,
    ClientResponseError,
    ClientSession,
    ClientTimeout,
    ClientWebSocketResponse,
    ServerDisconnectedError,
    ServerTimeoutError,
    TCPConnector,
    WSCloseCode,
    WSMessage,
    WSMsgType,
    WSServerHandshakeError,
    WebSocketError,
    web,
)
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL  # aiohttp's URL type: `URL(text, encoded=True)` sends a path as it is written

__all__ = [
    "ClientConnectionError",
    "ClientConnectionResetError",
    "ClientConnectorError",
    "ClientError",
    "ClientOSError",
    "ClientPayloadError",
    "ClientResponse",
    "ClientResponseError",
    "ClientSession",
    "ClientTimeout",
    "ClientWebSocketResponse",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "TCPConnector",
    "TestClient",
    "TestServer",
    "URL",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
    "WSServerHandshakeError",
    "WebSocketError",
    "web",
]
