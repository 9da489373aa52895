"""The printable certificate (docs/verification.md section 4.7): its print layout and fonts,
its strict no-script policy, its how-to-verify commands, and reading its embedded bundle
back (`certificate.bundle_from_page`), robustly and within bounds."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ledgernode.auditing import certificate
from ledgernode.auditing.bundle import build_bundle
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
from ledgernode.verify import PAGE_MAX_BYTES, Unusable, verify_bundle
from tests.fixtures import T0, Net, commit_records, content

OPEN_TAG = f'<script type="application/json" id="{certificate.BUNDLE_ELEMENT_ID}">'


@pytest.fixture(scope="module")
def signed() -> tuple[Net, dict[str, Any], str]:
    """A notarized record's bundle, with a title that tries to break out of the page, and its page."""
    net, store = Net(), Store.memory()
    raw = net.record(1, "evidence.notarize", "CASE-1", {
        "content_hash": content("pdf"), "media_type": "application/pdf", "size": 10,
        "title": "</script><script>alert(1)</script> 合同 & <b>"})
    commit_records(net, store, [raw])
    bundle = build_bundle(store, net.genesis, decode_envelope(raw, net.genesis).record_id)
    return net, bundle, certificate.render(bundle, net.genesis)


def _style(page: str) -> str:
    [css] = re.findall(r"<style>(.*?)</style>", page, re.S)
    return css


def test_prints_on_a4_with_cjk_fonts(signed: Any) -> None:
    _, _, page = signed
    css = _style(page)
    assert re.search(r"@page\s*\{\s*size:\s*A4;\s*margin:\s*\d+mm", css)
    print_rules = css[css.index("@media print"):]
    assert "break-inside: avoid" in print_rules and "page-break-inside: avoid" in print_rules
    assert "break-after: avoid" in print_rules  # a heading stays with its table
    body_font = re.search(r"body \{ font-family: ([^;]*);", css)
    assert body_font is not None
    fonts = [f.strip().strip('"') for f in body_font.group(1).split(",")]
    for name in ("Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei"):
        assert name in fonts
    assert fonts[-1] == "sans-serif"
    mono = re.search(r"\.mono, pre, code \{([^}]*)\}", css)
    assert mono is not None and "word-break: break-all" in mono.group(1)  # 64-hex hashes wrap
    assert "section.keep" in print_rules and page.count('<section class="keep">') == 3  # all but the record
    assert page.count("<section>") == 1 and page.count("</section>") == 4


def test_page_runs_no_script(signed: Any) -> None:
    _, _, page = signed
    assert f'<meta http-equiv="Content-Security-Policy" content="{certificate.PAGE_CSP}">' in page
    assert "default-src 'none'" in certificate.PAGE_CSP and "script-src" not in certificate.PAGE_CSP
    assert page.count("<script") == 1 and OPEN_TAG in page  # the bundle's data block only
    assert "<b>" not in page and "&lt;b&gt;" in page


def test_how_to_verify_uses_commands_only(signed: Any) -> None:
    _, bundle, page = signed
    [howto] = re.findall(r"<h2>如何离线验证 How to verify offline</h2>(.*?)</section>", page, re.S)
    for command in ("python -m ledgernode verify certificate.html --genesis genesis.json",
                    f"python -m ledgernode evidence --api URL --id {bundle['record_id']} --out bundle.json",
                    "python -m ledgernode verify bundle.json --genesis genesis.json"):
        assert command in howto, command
    assert "python -c" not in page and "re.search" not in page and "import " not in howto


def test_bundle_reads_back_exactly(signed: Any) -> None:
    net, bundle, page = signed
    assert certificate.bundle_from_page(page.encode("utf-8")) == bundle
    assert verify_bundle(certificate.bundle_from_page(page.encode()), net.genesis).valid
    # a page saved again by a browser or an editor: BOM, white space, other attribute order and quotes, upper case
    resaved = "\ufeff\n  " + page.replace(OPEN_TAG, f"<SCRIPT id='{certificate.BUNDLE_ELEMENT_ID}' "
                                                   "type='application/json'>").replace("</script>", "</SCRIPT>")
    assert certificate.bundle_from_page(resaved.encode("utf-8")) == bundle
    crlf = page.replace("\n", "\r\n")
    assert certificate.bundle_from_page(crlf.encode("utf-8")) == bundle


@pytest.mark.parametrize("name", ["none", "two", "cut off", "not utf-8", "not json", "array", "duplicate key",
                                  "too big"])
def test_unreadable_pages_are_unusable(signed: Any, name: str) -> None:
    _, bundle, page = signed
    block = page[page.index(OPEN_TAG):page.index("</script>") + len("</script>")]
    data = {
        "none": page.replace(block, ""),
        "two": page.replace(block, block + block),
        "cut off": page[:page.index(OPEN_TAG) + len(OPEN_TAG) + 40],
        "not utf-8": page.replace("存证证书", "x", 1).encode("utf-8") + b"\xff\xfe",
        "not json": page.replace(block, f"{OPEN_TAG}{{not json</script>"),
        "array": page.replace(block, f"{OPEN_TAG}[1, 2]</script>"),
        "duplicate key": page.replace(block, f'{OPEN_TAG}{{"format": "a", "format": "b"}}</script>'),
        "too big": page + " " * PAGE_MAX_BYTES,
    }[name]
    expected = {"none": "0 embedded", "two": "2 embedded", "cut off": "cut off", "not utf-8": "UTF-8",
                "not json": "not JSON", "array": "not a JSON object", "duplicate key": "same key twice",
                "too big": "larger than"}[name]
    with pytest.raises(Unusable, match=expected):
        certificate.bundle_from_page(data if isinstance(data, bytes) else data.encode("utf-8"))


def test_embedded_json_is_what_render_wrote(signed: Any) -> None:
    """The data block holds no "<", ">" or "&", so no field can end it early."""
    _, bundle, page = signed
    start = page.index(OPEN_TAG) + len(OPEN_TAG)
    text = page[start:page.index("</script>", start)]
    assert not set("<>&") & set(text)
    assert json.loads(text) == bundle


def test_page_states_the_checkpoint_and_the_signer_it_verified() -> None:
    """A v2 page shows the checkpoint its verdict relied on and the signer's department from the
    key entry proven in that checkpoint's state; a bundle whose key entry fails is not rendered."""
    net, store = Net(), Store.memory()
    raw = net.record(1, "evidence.notarize", "CASE-2", {
        "content_hash": content("pdf"), "media_type": "application/pdf", "size": 10, "title": "t"})
    commit_records(net, store, [raw])
    commit_records(net, store, [net.record(0, "trace.event", "lot", {"activity": "a"})], time_ms=T0 + 1)
    bundle = build_bundle(store, net.genesis, decode_envelope(raw, net.genesis).record_id)
    page = certificate.render(bundle, net.genesis)
    [block] = re.findall(r"<h2>区块 Block</h2>(.*?)</section>", page, re.S)
    assert ("<tr><th>检查点<br>Checkpoint</th><td>height 2, 2026-01-01T00:00:00.001Z, log size 2 "
            "(consistency proven; the signing key proven in its state)</td></tr>") in block
    assert "<th>签名部门<br>Signed by department</th><td>market (Dept market)</td>" in page
    bad = json.loads(json.dumps(bundle))
    bad["state"]["key"]["value"] = None
    with pytest.raises(ValueError, match="signing key's entry"):
        certificate.render(bad, net.genesis)
