"""The printable evidence certificate (存证证书): one HTML page, Chinese and English.

`render(bundle, genesis)` first verifies the bundle with the offline verifier
and shows only what that verification established (the record's facts, its
block, the validators whose signatures form the QC), so the page never states
more than the proof carries. The bundle itself is embedded verbatim as JSON in
<script type="application/json" id="evidence-bundle">, and the page tells a
reader how to check it offline: `python -m ledgernode verify certificate.html
--genesis genesis.json` reads the bundle back with `bundle_from_page`
(docs/verification.md section 4.7). The page is a rendering; the proof is the
bundle.

Record fields are untrusted input: every text goes through html.escape, and
the embedded JSON escapes "<", ">" and "&" as \\u003c, \\u003e, \\u0026 so no
field can close the <script> element. The page runs no script: its own
Content-Security-Policy (a <meta> element, so a saved copy keeps it) allows
inline styles only, and it prints on A4. Standard library only (no template
engine).
"""

from __future__ import annotations

import json
from html import escape
from html.parser import HTMLParser
from typing import Any

from ..genesis import Genesis, quorum_of
from ..times import utc_text
from .bundle import TYPE_NAMES, verify_bundle
from .checks import Verdict
from .parse import PAGE_MAX_BYTES, Unusable, parse_json

BUNDLE_ELEMENT_ID = "evidence-bundle"
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'"
HEX32_CHARS = 64  # hashes are shown as hex: set them in a monospace font
TIME_FIELDS = frozenset(["valid_from", "valid_until", "effective", "expires"])
_STYLE = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
       "Hiragino Sans GB", "WenQuanYi Micro Hei", "Noto Sans", Arial, sans-serif;
       max-width: 52em; margin: 2em auto; padding: 0 1em; color: #111; line-height: 1.45; }
h1 { text-align: center; letter-spacing: 0.3em; margin-bottom: 0.1em; }
h1 .en { display: block; font-size: 0.55em; letter-spacing: 0.05em; font-weight: normal; }
h2 { border-bottom: 1px solid #999; font-size: 1.1em; margin: 1.4em 0 0.4em; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.5em; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { width: 12em; background: #f3f3f3; font-weight: normal; }
.mono, pre, code { font-family: "DejaVu Sans Mono", "Noto Sans Mono CJK SC", Menlo, Consolas, monospace;
                   font-size: 0.85em; word-break: break-all; overflow-wrap: anywhere; white-space: pre-wrap; }
pre { margin: 0.3em 0; }
.note { font-size: 0.9em; color: #333; }
@page { size: A4; margin: 15mm 14mm 15mm 14mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 9.5pt; line-height: 1.3; }
  h1 { font-size: 16pt; margin-top: 0; }
  h2 { break-after: avoid; page-break-after: avoid; margin-top: 0.9em; }
  section.keep, tr, li, pre { break-inside: avoid; page-break-inside: avoid; }
}
"""


def _row(zh: str, en: str, value: str, mono: bool = False) -> str:
    """A table row; `value` must already be escaped HTML."""
    cls = ' class="mono"' if mono else ""
    return f"<tr><th>{escape(zh)}<br>{escape(en)}</th><td{cls}>{value}</td></tr>"


def _section(title: str, body: str, keep: bool = True) -> str:
    """A titled part of the page. Printing keeps a `keep` section on one sheet; the record's
    section may be long (64 refs, 1,024-character texts) and breaks between its rows instead
    of leaving the first sheet blank (see _STYLE)."""
    cls = ' class="keep"' if keep else ""
    return f"<section{cls}><h2>{escape(title)}</h2>{body}</section>"


def _bundle_json(bundle: dict[str, Any]) -> str:
    """The bundle as JSON that is safe inside <script>: no "<", ">" or "&" at all."""
    text = json.dumps(bundle, indent=2, ensure_ascii=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _body_value(name: str, value: Any) -> str:
    text = escape(str(value))
    if name in TIME_FIELDS and isinstance(value, int):
        text += f" ({escape(utc_text(value))})"
    return text


def _dept_label(dept: str, genesis: Genesis) -> str:
    """A department id with the name its validator has in the genesis, if it runs one."""
    name = next((v.name for v in genesis.validators if v.dept == dept), None)
    return f"{dept} ({name})" if name and name != dept else dept


def _record_section(rec: dict[str, Any], genesis: Genesis) -> str:
    zh, en = TYPE_NAMES.get(rec["type"], ("", ""))
    kind = escape(rec["type"]) + (f" — {escape(zh)} / {escape(en)}" if zh else "")
    rows = [
        _row("记录编号", "Record ID", escape(rec["id"]), mono=True),
        _row("记录类型", "Record type", kind),
        _row("主体", "Subject", escape(rec["subject"])),
    ]
    rows += [_row(f"内容 · {name}", f"body · {name}", _body_value(name, value),
                  mono=isinstance(value, str) and len(value) == HEX32_CHARS)
             for name, value in rec["body"].items()]
    if rec["refs"]:  # one row for all refs (up to 64): a row each would push the page past two sheets
        rows.append(_row(f"引用记录（{len(rec['refs'])}）", "Derived from (refs)",
                         "<br>".join(escape(ref) for ref in rec["refs"]), mono=True))
    signer = rec["signer"]
    rows += [
        _row("签名部门", "Signed by department", escape(_dept_label(signer["dept"], genesis))),
        _row("签名密钥", "Signing key id", escape(signer["key_id"]), mono=True),
        _row("声明时间（UTC）", "Claimed time (UTC)", escape(rec["claimed_time"])),
    ]
    if signer.get("until") is not None:
        rows.append(_row("密钥吊销", "Key revoked",
                         escape(f"at leaf {signer['until']}; this record was signed before (leaf "
                                f"{signer.get('from', 0)} to {signer['until'] - 1} could sign)")))
    return _section("记录 Record", "<table>" + "".join(rows) + "</table>", keep=False)


def _block_section(facts: dict[str, Any], genesis: Genesis) -> str:
    block = facts["block"]
    rows = [
        _row("区块高度", "Block height", escape(str(block["height"]))),
        _row("出块时间（UTC）", "Block time (UTC)", escape(block["time"])),
        _row("区块哈希", "Block hash", escape(block["hash"]), mono=True),
        _row("日志根", "Log root (Merkle)", escape(block["log_root"]), mono=True),
        _row("日志位置", "Log position", escape(f"leaf {facts['leaf_index']} of {block['log_size']}")),
        _row("账本标识", "Chain id", escape(genesis.chain_id)),
        _row("创世文件哈希", "Genesis SHA-256", escape(genesis.genesis_hash), mono=True),
    ]
    cp = facts["checkpoint"]
    rows.append(_row("检查点", "Checkpoint",
                     escape(f"height {cp['height']}, {cp['time']}, log size {cp['log_size']} "
                            "(consistency proven; the signing key proven in its state)")))
    return _section("区块 Block", "<table>" + "".join(rows) + "</table>")


def _validators_section(facts: dict[str, Any], genesis: Genesis) -> str:
    signed = facts["certified_by"]
    n = facts["block"].get("validators", genesis.n)  # the set of the block's epoch
    rows = "".join(
        f"<tr><td>{escape(str(v['validator']))}</td><td>{escape(v['dept'])}</td>"
        f"<td>{escape(v['name'])}</td></tr>" for v in signed)
    summary = (f"{len(signed)} / {n} 个验证节点签名（法定数量 {quorum_of(n)}） · "
               f"{len(signed)} of {n} validators signed (quorum {quorum_of(n)})")
    return _section("认证节点 Certified by", "<table><tr><th>编号 No.</th><th>部门 Department</th>"
                    f"<th>名称 Name</th></tr>{rows}</table><p class=\"note\">{escape(summary)}</p>")


def _instructions(record_id: str, genesis: Genesis) -> str:
    steps = [
        ("取得本账本的创世文件 genesis.json（例如任一节点的 GET /v1/genesis），"
         f"并核对其 SHA-256 为 {genesis.genesis_hash}。",
         "Obtain the ledger's genesis file genesis.json (e.g. GET /v1/genesis from any node) "
         f"and check that its SHA-256 is {genesis.genesis_hash}."),
        ("将本页另存为 certificate.html，在离线计算机上验证（退出码 0 表示有效）：",
         "Save this page as certificate.html and verify it on an offline computer (exit code 0 means valid):",
         "python -m ledgernode verify certificate.html --genesis genesis.json"),
        ("或向任一节点重新获取证据包并验证：",
         "Or fetch the evidence bundle again from any node and verify it:",
         f"python -m ledgernode evidence --api URL --id {record_id} --out bundle.json\n"
         "python -m ledgernode verify bundle.json --genesis genesis.json [--file ORIGINAL]"),
    ]
    items = []
    for zh, en, *command in steps:
        code = f"<pre>{escape(command[0])}</pre>" if command else ""
        items.append(f"<li>{escape(zh)}<br>{escape(en)}{code}</li>")
    return _section("如何离线验证 How to verify offline", "<ol>" + "".join(items) + "</ol>"
                    '<p class="note">本页只是证据包的展示；证明力来自证据包及其离线验证结果。'
                    "This page only displays the bundle; the proof is the bundle and its offline "
                    "verification, which needs nothing but the genesis file.</p>")


def render(bundle: dict[str, Any], genesis: Genesis) -> str:
    """The certificate page of a committed record's bundle; ValueError if it does not verify."""
    verdict: Verdict = verify_bundle(bundle, genesis)
    if not verdict.valid:
        failed = next((c for c in verdict.checks if not c["ok"]), {})
        raise ValueError(f"bundle does not verify: {failed.get('error', 'unknown failure')}")
    facts = verdict.facts
    record_id = facts["record"]["id"]
    title = f"存证证书 Evidence Certificate {record_id[:16]}"
    lead = ("兹证明下列记录已由本账本的验证节点共同确认并写入账本，记录内容自写入后未被更改。"
            "This certifies that the record below was certified by the validators of this "
            "ledger and written to its log, and has not been altered since.")
    return "".join([
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        "<h1>存证证书<span class=\"en\">Evidence Certificate</span></h1>",
        f'<p class="note">{escape(lead)}</p>',
        _record_section(facts["record"], genesis),
        _block_section(facts, genesis),
        _validators_section(facts, genesis),
        _instructions(record_id, genesis),
        f'<script type="application/json" id="{BUNDLE_ELEMENT_ID}">\n{_bundle_json(bundle)}\n</script>',
        "</body></html>\n",
    ])


# -- reading a saved page back ------------------------------------------------------------


class _BundleFinder(HTMLParser):
    """Collects the text of every <script id="evidence-bundle"> element of a page.

    html.parser reads a <script> element's content as raw text up to its end tag,
    the way a browser does, so the JSON comes back exactly as `render` wrote it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and ("id", BUNDLE_ELEMENT_ID) in attrs:
            self.current = []

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self.current is not None:
            self.blocks.append("".join(self.current))
            self.current = None


def bundle_from_page(page: bytes) -> dict[str, Any]:
    """The evidence bundle embedded in a certificate page (UTF-8 HTML of at most PAGE_MAX_BYTES);
    Unusable unless the page holds exactly one complete embedded bundle, a JSON object."""
    if len(page) > PAGE_MAX_BYTES:
        raise Unusable(f"the certificate page is larger than {PAGE_MAX_BYTES} bytes")
    try:
        text = page.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unusable("the certificate page is not UTF-8 text (save it again as HTML)") from None
    finder = _BundleFinder()
    try:
        finder.feed(text)
        finder.close()
    except (AssertionError, ValueError) as exc:  # html.parser's own checks on a mangled page
        raise Unusable(f"the certificate page cannot be read as HTML: {exc}") from None
    if finder.current is not None:
        raise Unusable("the certificate page ends inside its evidence bundle: the file is cut off")
    if len(finder.blocks) != 1:
        raise Unusable(f"the page holds {len(finder.blocks)} embedded evidence bundles "
                       f'(<script id="{BUNDLE_ELEMENT_ID}">); a certificate page from the ledger holds '
                       "exactly one, so this is not one or it was edited")
    return parse_json(finder.blocks[0], "the evidence bundle embedded in the certificate page")
