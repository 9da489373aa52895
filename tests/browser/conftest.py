"""The browser tier: Playwright (Python) driving Chromium against a real devnet.

One 4-validator Cluster (tests/integration/procs.py) runs for the module's tests, with a
few records of several types submitted through the SDK (ledgernode/client.py). `page`
is a fresh browser page that fails its test on any console error or uncaught page
error. Chromium is Debian's (`chromium` on PATH) or Playwright's own download; with
neither, every test here is skipped with one line saying so.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ledgernode import crypto
from ledgernode.client import Client
from tests.integration.procs import Cluster

try:
    from playwright import sync_api as playwright_api
except ImportError:  # the tier is skipped, with this reason, by the `browser` fixture
    playwright_api = None  # type: ignore[assignment]

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"  # ignored by git; the run prints it
PAGE_TIMEOUT_MS = 60_000  # bounds one wait for the page on a loaded 2-core machine; not a speed goal
DAY_MS = 86_400_000
XSS = '<img src=x onerror="window.__xss=1">'
HASH = crypto.sha256(b"console test content")


@dataclass
class Devnet:
    cluster: Cluster
    client: Client
    ids: dict[str, str] = field(default_factory=dict)
    issued_ms: int = 0

    @property
    def url(self) -> str:
        return self.cluster.api(0)

    def submit(self, name: str, rtype: str, subject: str, body: dict[str, Any], refs: tuple[str, ...] = ()) -> str:
        answer = self.client.submit(self.client.record(rtype, subject, body, refs=refs), wait=True)
        assert answer["status"] == "committed", answer
        self.ids[name] = answer["id"]
        return str(answer["id"])


def _seed(net: Devnet) -> None:
    now = int(time.time() * 1000)
    net.issued_ms = now
    net.submit("cert", "cert.issue", "LIC-CONSOLE-1", {
        "cert_type": "营业执照 business licence " + XSS, "holder": HASH, "content_hash": HASH,
        "valid_from": now - DAY_MS, "valid_until": now + 365 * DAY_MS})
    net.submit("notarize", "evidence.notarize", "EV-CONSOLE-1", {
        "content_hash": HASH, "media_type": "text/plain", "size": 20, "title": "现场照片 site photo"})
    net.submit("dataset", "dataset.publish", "ds/justice/console", {
        "title": "Court cases 2026", "content_hash": HASH, "schema_hash": HASH, "classification": "internal"})
    grant = net.submit("grant", "share.grant", "ds/justice/console", {
        "to_dept": "justice", "purpose": "annual audit", "legal_basis": "art. 7", "expires": now + 30 * DAY_MS})
    net.submit("access", "share.access", "ds/justice/console", {
        "grant": bytes.fromhex(grant), "purpose": "annual audit", "content_hash": HASH})
    harvested = net.submit("harvested", "trace.event", "lot-console-7",
                           {"activity": "harvested", "location": "Farm 12"})
    packed = net.submit("packed", "trace.event", "lot-console-7", {"activity": "packed"}, refs=(harvested,))
    net.submit("shipped", "trace.event", "lot-console-7/crate-1", {"activity": "shipped"}, refs=(packed,))


@pytest.fixture(scope="module")  # the nodes stop when the browser tests are done
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    cluster = Cluster(tmp_path_factory.mktemp("console"))
    try:
        cluster.start_all()
        net = Devnet(cluster, Client(cluster.api(0), cluster.client))
        _seed(net)
        yield net
    finally:
        cluster.stop_all()


def _chromium() -> str | None:
    """Debian's chromium, else None for Playwright's own (if it was downloaded)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Module scope, not session: sync Playwright runs an event loop on this thread while it is
# open, and the async tests that come later in the same run need the thread free of one.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if playwright_api is None:
        pytest.skip("playwright is not installed (pip install playwright)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with playwright_api.sync_playwright() as pw:
        try:
            launched = pw.chromium.launch(executable_path=_chromium(), args=args)
        except playwright_api.Error as exc:
            pytest.skip(f"no Chromium to drive (neither `chromium` on PATH nor Playwright's own): {exc.message[:80]}")
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the screenshots this run saved, for review."""
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.iterdir()):
        names = ", ".join(sorted(p.name for p in SCREENSHOTS.iterdir()))
        terminalreporter.write_line(f"browser screenshots in {SCREENSHOTS}: {names}")


@pytest.fixture
def page(browser: Any, devnet: Devnet) -> Iterator[Any]:
    """A page on node 0's console; the test fails on any console error or page error."""
    context = browser.new_context(base_url=devnet.url, viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    try:
        yield tab
    finally:
        context.close()
    assert problems == [], problems
