"""The browser console: one page and its ES modules, served under /ui/ by every node.

The files in `static/` ship as package data (setup.cfg) and are read once, when the
application is built: no build step, nothing loaded from elsewhere, and a request never
touches the disk. Every answer carries a strict Content-Security-Policy (`CSP`): the page
runs only its own scripts and styles, so a record field that slipped through as markup
still could not run or load anything (the scripts also insert every field as text).

Caching: each asset has a strong ETag (a hash of its bytes) and `Cache-Control: no-cache`,
so a browser revalidates and gets 304 while the file is unchanged. Versioned URLs with a
long max-age would save the revalidation, but the modules import each other by plain
relative URLs (./views/blocks.js, ./verify/verifier.js), and a node upgrade must never
serve a page that mixes old and new modules.

Routes, in `ROUTES` (api/__init__.py mounts them; api/openapi.py describes them):
  GET /ui/          the page (index.html)
  GET /ui/{asset}   a file under static/, by its path there; 404 for any other name
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..aio import web
from ..errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
ASSET_MAX_BYTES = 1 << 20  # one file; a bigger one is a packaging mistake, refused at start
ASSETS_MAX_BYTES = 8 << 20  # all of them, held in memory
ASSET_PATH_MAX_CHARS = 200
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
}
CSP = ("default-src 'self'; base-uri 'none'; frame-ancestors 'none'; object-src 'none'; "
       "form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CACHE_CONTROL = "no-cache"

# (method, path, Console method), as api.ROUTES.
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/ui/", "get_page"),
    ("GET", "/ui/{asset:.+}", "get_asset"),
]


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every servable file under `root`, by its '/'-separated path there."""
    assets: dict[str, Asset] = {}
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None:
            continue
        body = path.read_bytes()
        total += len(body)
        if len(body) > ASSET_MAX_BYTES or total > ASSETS_MAX_BYTES:
            raise ValueError(f"console asset {path} is over the size limits "
                             f"({ASSET_MAX_BYTES} bytes each, {ASSETS_MAX_BYTES} in all)")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[path.relative_to(root).as_posix()] = Asset(body, content_type, etag)
    if INDEX not in assets:
        raise ValueError(f"console assets in {root} have no {INDEX}")
    return assets


class Console:
    def __init__(self, assets: dict[str, Asset] | None = None) -> None:
        self.assets = load_assets() if assets is None else assets

    async def get_page(self, request: web.Request) -> web.Response:
        return self._serve(request, INDEX)

    async def get_asset(self, request: web.Request) -> web.Response:
        name = request.match_info["asset"]
        if len(name) > ASSET_PATH_MAX_CHARS or name not in self.assets:
            raise NotFound(f"the console has no file {name[:ASSET_PATH_MAX_CHARS]!r}")
        return self._serve(request, name)

    def _serve(self, request: web.Request, name: str) -> web.Response:
        asset = self.assets[name]
        headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": CACHE_CONTROL}
        if _matches(request.headers.get("If-None-Match", ""), asset.etag):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = asset.content_type
        return web.Response(body=asset.body, headers=headers)


def _matches(header: str, etag: str) -> bool:
    """Does an If-None-Match header name `etag` (a weak tag compares by its tag) or `*`?"""
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
    return etag in tags or "*" in tags
