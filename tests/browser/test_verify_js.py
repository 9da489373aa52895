"""The verifier in the browser (ledgernode/console/static/verify/, issue 16): Chromium runs
verifyBundle on bundles built here with the project's own code, and each verdict is compared
with the Python verifier's on the same bytes: valid with the same claim, or failed at the same
check with the same reason, or unusable (exit 2) for both. Each case runs with WebCrypto
and with the plain-JavaScript fallback (forceFallback). One browser for the module; the
static directory is served from 127.0.0.1 so that crypto.subtle exists."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgernode.auditing import certificate
from ledgernode.genesis import Genesis
from ledgernode.verify import Unusable, verify_file
from tests.fixtures import Net
from tests.unit.test_verify import ORIGINAL, PART_CASES, Ledger, Removed

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
STATIC = Path(__file__).resolve().parents[2] / "ledgernode" / "console" / "static" / "verify"
PAGE = b'<!doctype html><meta charset=utf-8><link rel="icon" href="data:,"><title>verify</title>'


def _chromium() -> str | None:
    """Debian's chromium, else Playwright's own download, else None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    with sync_api.sync_playwright() as p:
        own = p.chromium.executable_path
    return own if own and os.path.exists(own) else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (system chromium or Playwright's)")


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Browser:
    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def verify(self, bundle: bytes, genesis: bytes, fallback: bool, file: bytes | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(
            """async ([b, g, f, fallback]) => {
                const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
                const m = await import("/verifier.js");
                try {
                    const opts = {forceFallback: fallback};
                    if (f !== null) opts.fileBytes = bytes(f);
                    const r = await m.verifyBundle(bytes(b), bytes(g), opts);
                    return {ok: r.ok, failed: r.failed, verdict: r.verdict, crypto: r.crypto, source: r.source,
                            checks: r.checks.map((c) => ({name: c.name, ok: c.ok, zh: c.zh, en: c.en}))};
                } catch (exc) {
                    if (exc.name === "Unusable") return {unusable: exc.message};
                    throw exc;
                }
            }""",
            [_b64(bundle), _b64(genesis), None if file is None else _b64(file), fallback])
        return result


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    handler = functools.partial(_Handler, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_api.sync_playwright() as p:
            args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=args)
            page = chromium.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            yield Browser(page)
            chromium.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


def python_verdict(tmp_path: Path, bundle: bytes, genesis: Genesis, file: bytes | None = None,
                   name: str = "bundle.json") -> dict[str, Any]:
    """What `python -m ledgernode verify` says of the same bytes, in the shape of the JS result."""
    path = tmp_path / name
    path.write_bytes(bundle)
    original = None
    if file is not None:
        original = tmp_path / "original"
        original.write_bytes(file)
    try:
        verdict = verify_file(path, genesis, "evidence", original)
    except Unusable as exc:
        return {"unusable": str(exc)}
    failed = next((c for c in verdict.checks if not c["ok"]), None)
    return {"ok": verdict.valid, "failed": None if failed is None else failed["check"],
            "error": None if failed is None else failed["error"], "claim": verdict.facts.get("claim"),
            "checks": [{"name": c["check"], "ok": c["ok"], "zh": c["zh"], "en": c["en"]} for c in verdict.checks]}


def assert_same(browser: Browser, tmp_path: Path, bundle: bytes, genesis: Genesis, file: bytes | None = None,
                name: str = "bundle.json") -> dict[str, Any]:
    """The browser's verdict (both crypto paths) is the Python verifier's."""
    expected = python_verdict(tmp_path, bundle, genesis, file, name)
    for fallback in (False, True):
        got = browser.verify(bundle, genesis.raw, fallback, file)
        if "unusable" in expected:
            assert "unusable" in got, (got, expected)
            continue
        assert got.get("crypto") == ("fallback" if fallback else "webcrypto"), got
        assert (got["ok"], got["failed"]) == (expected["ok"], expected["failed"]), (got, expected)
        assert got["checks"] == expected["checks"]
        if expected["ok"]:
            assert got["verdict"] == {"zh": expected["claim"]["zh"], "en": expected["claim"]["en"]}
        else:
            # the failed check's reason, word for word, before Python's technical detail
            assert expected["error"].startswith(f"{got['verdict']['zh']} / {got['verdict']['en']}"), (got, expected)
    assert not browser.errors, browser.errors
    return expected


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2).encode()


def test_valid_bundles_verify_with_the_same_claim(browser: Browser, ledger: Ledger, tmp_path: Path) -> None:
    for raw in (ledger.notarize, ledger.publish, ledger.trace):
        expected = assert_same(browser, tmp_path, _json(ledger.bundle(raw)), ledger.net.genesis)
        assert expected["ok"]


def test_the_original_file_is_compared(browser: Browser, ledger: Ledger, tmp_path: Path) -> None:
    bundle = _json(ledger.bundle(ledger.notarize))
    assert assert_same(browser, tmp_path, bundle, ledger.net.genesis, ORIGINAL)["ok"]
    assert assert_same(browser, tmp_path, bundle, ledger.net.genesis, ORIGINAL + b"!")["failed"] == "file"
    # a record with no content hash has no file to compare
    assert assert_same(browser, tmp_path, _json(ledger.bundle(ledger.trace)), ledger.net.genesis,
                       ORIGINAL)["failed"] == "file"


@pytest.mark.parametrize("case", sorted(PART_CASES))
def test_each_tampering_fails_at_the_same_check(browser: Browser, ledger: Ledger, tmp_path: Path, case: str) -> None:
    mutate, check, _, _ = PART_CASES[case]
    bundle = ledger.bundle(ledger.notarize)
    mutate(bundle)
    assert assert_same(browser, tmp_path, _json(bundle), ledger.net.genesis)["failed"] == check


def test_one_byte_changes_anywhere_give_the_same_verdict(browser: Browser, ledger: Ledger, tmp_path: Path) -> None:
    """Bytes flipped all through the bundle's JSON text: each gives the Python verifier's
    verdict (most a failed check, some not JSON at all, some no change of meaning)."""
    raw = _json(ledger.bundle(ledger.notarize))
    failed = set()
    for i in range(0, len(raw), max(1, len(raw) // 60)):
        for flip in (0x01, 0x20):
            tampered = raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1:]
            failed.add(assert_same(browser, tmp_path, tampered, ledger.net.genesis).get("failed"))
    assert {"record", "inclusion", "qc", "key"} <= failed, failed


def test_types_that_python_tells_apart(browser: Browser, ledger: Ledger, tmp_path: Path) -> None:
    """JSON that a plain JSON.parse would read another way: a float leaf index, a key given
    twice, a boolean or float in a checkpoint's summary (Python: True == 1, 2.0 == 2)."""
    base = ledger.bundle(ledger.notarize)
    text = _json(base).decode()
    cases = [text.replace(f'"leaf_index": {base["leaf_index"]}', f'"leaf_index": {base["leaf_index"]}.0'),
             text.replace('"format": ', '"format": "x", "format": ', 1)]
    for doc in cases:
        assert doc != text
        assert_same(browser, tmp_path, doc.encode(), ledger.net.genesis)
    cp_height = certificate.verify_bundle(base, ledger.net.genesis).facts["checkpoint"]["height"]
    for value in (float(cp_height), cp_height + 1, str(cp_height), True):
        bundle = copy.deepcopy(base)
        bundle["state"]["checkpoint"]["height"] = value
        assert_same(browser, tmp_path, _json(bundle), ledger.net.genesis)


def test_a_certificate_page_is_accepted(browser: Browser, ledger: Ledger, tmp_path: Path) -> None:
    page = certificate.render(ledger.bundle(ledger.notarize), ledger.net.genesis).encode()
    assert assert_same(browser, tmp_path, page, ledger.net.genesis, name="certificate.html")["ok"]
    got = browser.verify(page, ledger.net.genesis.raw, False)
    assert got["source"] == "certificate page"
    extracted = browser.page.evaluate(
        """async (p) => { const m = await import("/verifier.js");
            const b = m.extractBundle(Uint8Array.from(atob(p), (c) => c.charCodeAt(0)));
            return new TextDecoder().decode(b); }""", _b64(page))
    assert json.loads(extracted) == ledger.bundle(ledger.notarize)
    envelope = ledger.bundle(ledger.notarize)["envelope"]
    edited = page.replace(envelope.encode(), envelope[:10].encode() + b"A" + envelope[11:].encode())
    assert edited != page
    assert not assert_same(browser, tmp_path, edited, ledger.net.genesis, name="edited.html")["ok"]
    # two bundles, or one cut off, is not a page of the ledger: unusable for both
    start = page.index(b'<script type="application/json" id="evidence-bundle">')
    assert "unusable" in assert_same(browser, tmp_path, page[:start + 200], ledger.net.genesis, name="cut.html")
    twice = page.replace(b"</body>", page[start:page.index(b"</script>", start) + 9] + b"</body>")
    assert "unusable" in assert_same(browser, tmp_path, twice, ledger.net.genesis, name="twice.html")


def test_bundles_across_a_validator_set_change(browser: Browser, tmp_path: Path) -> None:
    chain = Removed()
    g = chain.net.genesis
    for raw in (chain.before, chain.after, chain.store.load_envelope(1)):  # the last: the gov.propose
        bundle = chain.bundle(raw)
        assert assert_same(browser, tmp_path, _json(bundle), g)["ok"]
    bundle = chain.bundle(chain.after)
    forged = copy.deepcopy(bundle)
    forged["epochs"][0]["qc"]["signatures"].pop()
    assert assert_same(browser, tmp_path, _json(forged), g)["failed"] == "epochs"
    assert assert_same(browser, tmp_path, _json({**bundle, "epochs": []}), g)["failed"] == "header"


def test_wrong_genesis_and_unusable_inputs(browser: Browser, ledger: Ledger, tmp_path: Path) -> None:
    bundle = ledger.bundle(ledger.notarize)
    other = Net(chain_id="gov-other").genesis  # the same validators, another ledger
    assert assert_same(browser, tmp_path, _json(bundle), other)["failed"] == "genesis"
    for doc in (b"[]", b"{", _json({**bundle, "format": "ledgernode-evidence/1"}), _json({"kind": "subject"})):
        assert "unusable" in assert_same(browser, tmp_path, doc, ledger.net.genesis)
    got = browser.verify(_json(bundle), b'{"format": "ledgernode-genesis/2"}', False)
    assert "unusable" in got


def test_sha256_and_ed25519_fallbacks_match_python(browser: Browser) -> None:
    from ledgernode import crypto
    from tests.fixtures import seeded_key
    key = seeded_key("js")
    cases = []
    for n in (0, 1, 55, 56, 63, 64, 111, 112, 127, 128, 1000):
        msg = bytes(range(256)) * 4
        msg = msg[:n]
        sig = key.sign(msg)
        cases.append((msg, sig, True))
        cases.append((msg, sig[:40] + bytes([sig[40] ^ 1]) + sig[41:], False))
    identity = bytes([1]) + bytes(31)
    cases.append((b"x", identity + bytes(32), False))  # R of small order
    got = browser.page.evaluate(
        """async ([pub, cases]) => {
            const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
            const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
            const {sha256} = await import("/sha256.js");
            const ed = await import("/ed25519.js");
            return cases.map(([m, s]) => [hex(sha256(bytes(m))), ed.verify(bytes(pub), bytes(s), bytes(m))]);
        }""", [_b64(key.public.raw), [[_b64(m), _b64(s)] for m, s, _ in cases]])
    for (msg, sig, valid), (digest, ok) in zip(cases, got):
        assert digest == hashlib.sha256(msg).hexdigest()
        assert ok is valid is key.public.verify(sig, msg)
    problems = browser.page.evaluate(
        """async (keys) => { const ed = await import("/ed25519.js");
            return keys.map((k) => ed.pubkeyProblem(Uint8Array.from(atob(k), (c) => c.charCodeAt(0)))); }""",
        [_b64(k) for k in (key.public.raw, identity, bytes([0xff] * 31 + [0x7f]), bytes(31) + b"\x80")])
    expected = [crypto.pubkey_problem(k) for k in (key.public.raw, identity, bytes([0xff] * 31 + [0x7f]),
                                                     bytes(31) + b"\x80")]
    assert problems == expected
    assert not browser.errors, browser.errors


def _mixed_order_vector() -> tuple[bytes, bytes, bytes]:
    """A key aB + T (T of order 8: not of small order, so it passes the screen) and a
    signature that holds without the cofactor: libsodium accepts it, so must both paths."""
    from ledgernode import crypto
    p, d, order = crypto._P, crypto._D, 2**252 + 27742317777372353535851937790883648493

    def add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        k = d * a[0] * b[0] * a[1] * b[1] % p
        return ((a[0] * b[1] + b[0] * a[1]) * pow(1 + k, p - 2, p) % p,
                (a[1] * b[1] + a[0] * b[0]) * pow(1 - k, p - 2, p) % p)

    def mul(a: tuple[int, int], n: int) -> tuple[int, int]:
        out = (0, 1)
        while n:
            out, a, n = (add(out, a) if n & 1 else out), add(a, a), n >> 1
        return out

    def enc(a: tuple[int, int]) -> bytes:
        return (a[1] | ((a[0] & 1) << 255)).to_bytes(32, "little")

    base = crypto._decode_point((4 * pow(5, p - 2, p) % p).to_bytes(32, "little"))
    torsion = crypto._decode_point(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))
    assert base is not None and torsion is not None
    secret = 12345678901234567890
    pub = enc(add(mul(base, secret), torsion))
    for r in range(1, 1000):
        big_r = enc(mul(base, r))
        h = int.from_bytes(hashlib.sha512(big_r + pub + b"m").digest(), "little") % order
        if h % 8 == 0:
            return pub, big_r + ((r + h * secret) % order).to_bytes(32, "little"), b"m"
    raise AssertionError("no r found")


def test_a_mixed_order_key_gets_libsodiums_verdict(browser: Browser) -> None:
    from ledgernode import crypto
    pub, sig, msg = _mixed_order_vector()
    assert crypto.pubkey_problem(pub) is None
    expected = crypto.PublicKey(pub, crypto.key_id(pub)).verify(sig, msg)
    got = browser.page.evaluate(
        """async ([pub, sig, msg]) => {
            const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
            const {cryptoFor} = await import("/crypto.js");
            return [await cryptoFor(false).verify(bytes(pub), bytes(sig), bytes(msg)),
                    await cryptoFor(true).verify(bytes(pub), bytes(sig), bytes(msg))];
        }""", [_b64(pub), _b64(sig), _b64(msg)])
    assert got == [expected, expected]
