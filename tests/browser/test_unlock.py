"""The console against a node whose reads are authenticated (docs/security.md section 9):
the page says reads need a key, a registered key's file unlocks it and its reads are then
signed (JS signatures byte for byte those of the node's own Ed25519), locking ends it.
Real Chromium, one real node with `reads = "authenticated"`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgernode import client as sdk, crypto
from ledgernode.verify import verify_file
from tests.integration.procs import Cluster, running

PAGE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    root = tmp_path_factory.mktemp("unlock")
    with running(root, n=1, reads="authenticated") as c:
        client = sdk.Client(c.api(0), c.client, c.genesis.chain_id)
        body = {"content_hash": "55" * 32, "media_type": "text/plain", "size": 3, "title": "sealed 证据"}
        envelope = client.record("evidence.notarize", "EV-LOCKED", sdk.json_body("evidence.notarize", body))
        answer = client.submit(envelope, wait=True)
        assert answer["status"] == "committed", answer
        yield c, answer["id"]


@pytest.fixture
def tab(browser: Any, node: tuple[Cluster, str]) -> Iterator[tuple[Any, list[str]]]:
    """A page on the node's console, and the console errors it logged (401s are expected
    here until the page is unlocked, so the test judges them itself)."""
    c, _ = node
    context = browser.new_context(base_url=c.api(0), viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    try:
        yield page, errors
    finally:
        context.close()


def test_js_signatures_are_the_nodes_own(tab: tuple[Any, list[str]]) -> None:
    page, errors = tab
    page.goto("/ui/")
    seed, message = bytes(range(32)), "\"@method\": GET\n\"@path\": /v1/checkpoint".encode()
    got = page.evaluate("""async ([seed, msg]) => {
        const m = await import('/ui/verify/ed25519.js');
        const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
        return [hex(m.publicFromSeed(Uint8Array.from(seed))), hex(m.sign(Uint8Array.from(seed), Uint8Array.from(msg)))];
    }""", [list(seed), list(message)])
    key = crypto.private_key_from_seed(seed)
    assert got == [key.public.raw.hex(), key.sign(message).hex()]
    assert errors == []


def test_unlocking_with_a_registered_key_signs_the_reads(
        tab: tuple[Any, list[str]], node: tuple[Cluster, str], tmp_path: Path, screenshots: Path) -> None:
    page, errors = tab
    c, record_id = node
    page.goto(f"/ui/#/record/{record_id}")
    page.locator("#unlock-state").filter(has_text="reads are authenticated").wait_for()
    page.locator(".error").filter(has_text="401").wait_for()  # locked: no read is sent, the page says why
    key_file = tmp_path / "client.pem"
    crypto.save_private_key(key_file, c.client)
    page.set_input_files("#unlock-file", str(key_file))
    page.locator("#unlock-state").filter(has_text=c.client.public.key_id).wait_for()
    page.get_by_text("sealed 证据").wait_for()  # the record, read with a signature
    page.screenshot(path=str(screenshots / "unlocked-record.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_text("Download evidence bundle").click()
    saved = tmp_path / "bundle.json"
    download.value.save_as(saved)
    assert verify_file(saved, c.genesis).valid  # what a signed download gives verifies offline
    assert errors == []  # locked, the page sent no read the node would refuse
    page.click("#lock")
    page.goto(f"/ui/#/record/{record_id}")
    page.reload()
    page.locator(".error").filter(has_text="401").wait_for()
    stored = page.evaluate("JSON.stringify(Object.keys(localStorage)) + JSON.stringify(Object.keys(sessionStorage))")
    assert c.client.public.key_id not in stored and "PRIVATE" not in stored  # the key is kept in memory only
