"""TLS (ledgernode/tls.py) on the peer links and the API, and the handshake's binding to the
TLS channel (net/handshake.py): real sockets on 127.0.0.1, certificates made by
crypto.make_tls_ca / make_tls_cert.

The man in the middle: a relay that terminates TLS with a certificate of its own and
opens its own TLS connection to the real node, passing the bytes inside unchanged. Its
control is the same relay passing the TLS bytes themselves (no termination): that link
comes up, so the refusal is the binding's doing, not the relay's.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledgernode import crypto, tls
from ledgernode.api import make_app
from ledgernode.api.server import serve_api
from ledgernode.consensus.messages import Status
from ledgernode.net import PeerNetwork
from ledgernode.tls import TlsError, TlsFiles
from tests.fixtures import Net, until
from tests.unit.api_fake import LIMITS, FakeNode, make_net

LOCAL = "127.0.0.1"
NET = Net()
WAIT_S = 30.0  # bounds a wait for something that must happen; never an expected duration
RELAY_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Pki:
    ca: crypto.TlsIdentity
    dir: Path

    def files(self, name: str, ca_file: bool = True, client_ca: bool = False) -> TlsFiles:
        ident = crypto.make_tls_cert(self.ca, name, [LOCAL, "localhost"], client=True)
        cert, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert.write_bytes(ident.cert_pem)
        key.write_bytes(ident.key_pem)
        ca = self.dir / "ca.crt"
        return TlsFiles(cert, key, ca if ca_file else None, ca if client_ca else None)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = crypto.make_tls_ca("test CA")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    return Pki(ca, tmp_path)


# -- loading ------------------------------------------------------------------------


def test_a_good_pair_loads_and_its_fingerprint_is_the_leafs(pki: Pki) -> None:
    files = pki.files("n0")
    loaded = tls.load(files)
    der = ssl.PEM_cert_to_DER_cert(files.cert_file.read_text())
    assert loaded.fingerprint == crypto.sha256(der)


def test_missing_or_wrong_files_are_refused_naming_the_field(pki: Pki, tmp_path: Path) -> None:
    good = pki.files("n0")
    (tmp_path / "junk").write_text("not a certificate\n")
    with pytest.raises(TlsError, match="tls.cert_file"):
        tls.load(TlsFiles(tmp_path / "absent.crt", good.key_file))
    with pytest.raises(TlsError, match="tls.cert_file.*not a PEM certificate"):
        tls.load(TlsFiles(tmp_path / "junk", good.key_file))
    other = pki.files("n1")
    with pytest.raises(TlsError, match="cannot load them as a certificate and its key"):
        tls.load(TlsFiles(good.cert_file, other.key_file))
    with pytest.raises(TlsError, match="tls.ca_file"):
        tls.load(TlsFiles(good.cert_file, good.key_file, tmp_path / "junk"))


# -- peer links ---------------------------------------------------------------------


class Node:
    def __init__(self, index: int, files: TlsFiles | None) -> None:
        self.index = index
        self.tls = tls.load(files) if files is not None else None
        self.messages: list[object] = []
        self.pn: PeerNetwork | None = None
        self.port = 0

    async def serve(self) -> None:
        self.pn = PeerNetwork(NET.genesis, NET.validators[self.index], {}, lambda p, m: self.messages.append(m),
                              self._records, tls=self.tls)
        self.port = (await self.pn.serve((LOCAL, 0)))[1]

    async def _records(self, peer: int, raws: list[bytes]) -> None:
        pass

    async def dial(self, index: int, port: int) -> None:
        assert self.pn is not None
        self.pn.set_peers({index: (LOCAL, port)})
        await self.pn.start()

    @property
    def net(self) -> PeerNetwork:
        assert self.pn is not None
        return self.pn


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[[int, TlsFiles | None], Awaitable[Node]]]:
    made: list[Node] = []

    async def make(index: int, files: TlsFiles | None) -> Node:
        node = Node(index, files)
        await node.serve()
        made.append(node)
        return node

    yield make
    for node in made:
        if node.pn is not None:
            await node.pn.stop()


async def relay(listen_ssl: ssl.SSLContext | None, upstream_port: int,
                upstream_ssl: ssl.SSLContext | None) -> asyncio.Server:
    """Accept on a free port and pass bytes both ways to 127.0.0.1:upstream_port; with
    contexts, TLS is terminated on each side (a man in the middle), else passed through."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(RELAY_CHUNK_BYTES):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOCAL, upstream_port, ssl=upstream_ssl)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, LOCAL, 0, ssl=listen_ssl)


def link_up(node: Node, peer: int) -> bool:
    return node.net.peer_states().get(peer, {}).get("out") == "up"


async def test_links_come_up_over_tls_and_carry_messages(pki: Pki, nodes: Callable[..., Awaitable[Node]]) -> None:
    a, b = await nodes(0, pki.files("n0")), await nodes(1, pki.files("n1"))
    await a.dial(1, b.port)
    await until(lambda: link_up(a, 1), what="the TLS link up")
    a.net.send(1, Status(NET.chain_id, 7, 0))
    await until(lambda: any(getattr(m, "height", None) == 7 for m in b.messages), what="the status over TLS")


async def test_a_self_signed_network_links_by_the_binding_alone(
        tmp_path: Path, nodes: Callable[..., Awaitable[Node]]) -> None:
    """No ca_file: certificates of unrelated self-signed CAs are taken, the keys authenticate."""
    files = [Pki(crypto.make_tls_ca(f"own CA {i}"), tmp_path).files(f"s{i}", ca_file=False) for i in (0, 1)]
    a, b = await nodes(0, files[0]), await nodes(1, files[1])
    await a.dial(1, b.port)
    await until(lambda: link_up(a, 1), what="the link between self-signed nodes")


async def test_a_man_in_the_middle_with_its_own_certificate_is_refused(
        pki: Pki, tmp_path: Path, nodes: Callable[..., Awaitable[Node]]) -> None:
    """Without ca_file (so any certificate is taken), a relay that terminates TLS with a
    certificate of its own never gets a link up: node 1 refuses the dialler's signature,
    which covers the relay's certificate, not node 1's."""
    a = await nodes(0, pki.files("n0", ca_file=False))
    b = await nodes(1, pki.files("n1", ca_file=False))
    mitm = tls.load(Pki(crypto.make_tls_ca("mallory"), tmp_path).files("mallory", ca_file=False))
    server = await relay(mitm.peer_server_context(), b.port, mitm.peer_client_context())
    try:
        await a.dial(1, server.sockets[0].getsockname()[1])
        await until(lambda: b.net.counters.get("peer_refused", 0) >= 2, what="node 1 refusing two attempts")
        assert not link_up(a, 1)
        assert b.net.inbound.get(0, 0) == 0
    finally:
        server.close()


async def test_a_relay_that_passes_tls_through_is_no_obstacle(
        pki: Pki, nodes: Callable[..., Awaitable[Node]]) -> None:
    """The control of the test above: the same relay without terminating TLS."""
    a = await nodes(0, pki.files("n0", ca_file=False))
    b = await nodes(1, pki.files("n1", ca_file=False))
    server = await relay(None, b.port, None)
    try:
        await a.dial(1, server.sockets[0].getsockname()[1])
        await until(lambda: link_up(a, 1), what="the link through a pass-through relay")
    finally:
        server.close()


async def test_a_plain_dialler_cannot_reach_a_tls_peer_port(pki: Pki, nodes: Callable[..., Awaitable[Node]]) -> None:
    b = await nodes(1, pki.files("n1"))
    a = await nodes(0, None)
    await a.dial(1, b.port)
    await until(lambda: a.net.peer_states().get(1, {}).get("out") == "down", what="the plain dial failing")
    assert b.net.inbound.get(0, 0) == 0


# -- the API over HTTPS ---------------------------------------------------------------


def _get(url: str, ctx: ssl.SSLContext) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, context=ctx, timeout=WAIT_S) as resp:  # noqa: S310 - a test's own URL
        return resp.status, json.loads(resp.read())


async def test_the_api_over_https_and_with_client_certificates(pki: Pki) -> None:
    server_tls = tls.load(pki.files("api", client_ca=True))
    client = pki.files("client")
    app = make_app(FakeNode(make_net()), LIMITS)
    server = await serve_api(app, (LOCAL, 0), LIMITS, server_tls.api_context())
    url = f"https://{LOCAL}:{server.port}/healthz"
    try:
        with_cert = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))
        with_cert.load_cert_chain(client.cert_file, client.key_file)
        status, body = await asyncio.to_thread(_get, url, with_cert)
        assert status == 200 and body.get("ok") is True
        without_cert = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))
        status, _ = await asyncio.to_thread(_get, url, without_cert)  # probes need no certificate
        assert status == 200
        stranger = Pki(crypto.make_tls_ca("elsewhere"), pki.dir / "elsewhere")
        stranger.dir.mkdir()
        (stranger.dir / "ca.crt").write_bytes(stranger.ca.cert_pem)
        foreign = stranger.files("foreign")
        with_foreign = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))
        with_foreign.load_cert_chain(foreign.cert_file, foreign.key_file)
        with pytest.raises(OSError):  # a certificate the client CA did not sign is refused
            await asyncio.to_thread(_get, url, with_foreign)
        plain_ok = ssl.create_default_context()  # trusts the system CAs, not ours
        with pytest.raises(OSError):
            await asyncio.to_thread(_get, url, plain_ok)
    finally:
        async with asyncio.timeout(WAIT_S):
            await server.stop()
