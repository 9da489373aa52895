"""The console's files over HTTP (ledgernode/console): types, ETag and 304, the CSP on
every answer, 404 for any other name, and GET / sending browsers to /ui/."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgernode import aio
from ledgernode.console import CSP, STATIC_DIR, load_assets

JS = "text/javascript; charset=utf-8"


async def test_the_page_and_its_modules_are_served_with_types_csp_and_etags(client: aio.TestClient) -> None:
    page = await client.get("/ui/")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"] == CSP and page.headers["X-Content-Type-Options"] == "nosniff"
    assert (await page.read()) == (STATIC_DIR / "index.html").read_bytes()
    for name, ctype in [("app.js", JS), ("views/blocks.js", JS), ("style.css", "text/css; charset=utf-8"),
                        ("icon.svg", "image/svg+xml")]:
        resp = await client.get("/ui/" + name)
        assert resp.status == 200 and resp.headers["Content-Type"] == ctype, name
        assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["Content-Security-Policy"] == CSP
        assert (await resp.read()) == (STATIC_DIR / name).read_bytes()
        again = await client.get("/ui/" + name, headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status == 304 and (await again.read()) == b""
        other = await client.get("/ui/" + name, headers={"If-None-Match": '"something else"'})
        assert other.status == 200


@pytest.mark.parametrize("name", ["nope.js", "../__init__.py", "%2e%2e/__init__.py", "views/../../__init__.py",
                                  "x" * 300])
async def test_any_other_name_is_a_json_404(client: aio.TestClient, name: str) -> None:
    resp = await client.get("/ui/" + name)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def test_a_browser_at_the_root_is_sent_to_the_console(client: aio.TestClient) -> None:
    resp = await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ui/"
    resp = await client.get("/", headers={"Accept": "application/json"})
    assert resp.status == 200 and (await resp.json())["name"] == "ledgernode"


def test_only_known_file_types_are_loaded_and_an_oversized_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "notes.txt").write_text("not served")
    assert set(load_assets(tmp_path)) == {"index.html"}
    (tmp_path / "big.js").write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(ValueError, match="size limits"):
        load_assets(tmp_path)


def test_every_script_is_an_es_module_with_no_inline_markup_insertion() -> None:
    """Untrusted fields reach the page only as text: no script assigns innerHTML/outerHTML
    or calls insertAdjacentHTML / document.write (dom.js builds everything)."""
    for path in STATIC_DIR.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, (path.name, sink)


def test_every_servable_file_is_package_data() -> None:
    """setup.cfg's [options.package_data] globs ship every file the console serves."""
    import configparser
    from fnmatch import fnmatch
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    globs = cfg["options.package_data"]["ledgernode.console"].split()
    for name in load_assets():
        rel = "static/" + name
        assert any(fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs), rel
