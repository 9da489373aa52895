"""The printable evidence certificate (存证证书): one HTML page, Chinese and English.

`render(bundle, genesis)` first verifies the bundle with the offline verifier
and shows only what that verification established (the record's facts, its
block, the validators whose signatures form the QC), so the page never states
more than the proof carries. The bundle itself is embedded verbatim as JSON in
<script type="application/json" id="evidence-bundle">, and the page tells a
reader how to extract it and check it offline with `python -m ledgernode verify`.
The page is a rendering; the proof is the bundle.

Record fields are untrusted input: every text goes through html.escape, and
the embedded JSON escapes "<", ">" and "&" as \\u003c, \\u003e, \\u0026 so no
field can close the <script> element. Standard library only (no template engine).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from .genesis import Genesis
from .verify import Verdict, utc_text, verify_bundle

BUNDLE_ELEMENT_ID = "evidence-bundle"
# The one-liner the page prints: save the page as certificate.html, run this,
# get bundle.json. It holds no double quote, so it fits in python -c "...".
EXTRACT_SCRIPT = (
    "import re; p = open('certificate.html', encoding='utf-8').read(); "
    "open('bundle.json', 'w', encoding='utf-8').write("
    f"re.search(r'{BUNDLE_ELEMENT_ID}.>(.*?)</script>', p, re.S).group(1))"
)
HEX32_CHARS = 64  # hashes are shown as hex: set them in a monospace font
TIME_FIELDS = frozenset(["valid_from", "valid_until", "effective", "expires"])
TYPE_NAMES: dict[str, tuple[str, str]] = {
    "dataset.publish": ("数据目录发布", "dataset published"),
    "share.grant": ("数据共享授权", "data sharing granted"),
    "share.revoke": ("数据共享撤销", "data sharing revoked"),
    "share.access": ("共享数据访问", "shared data accessed"),
    "cert.issue": ("电子证照签发", "certificate issued"),
    "cert.revoke": ("电子证照吊销", "certificate revoked"),
    "cert.suspend": ("电子证照暂停", "certificate suspended"),
    "cert.resume": ("电子证照恢复", "certificate resumed"),
    "evidence.notarize": ("电子数据存证", "evidence notarized"),
    "trace.event": ("溯源事件", "tracing event"),
}
_STYLE = """
body { font-family: "Noto Serif CJK SC", "Songti SC", serif; max-width: 52em; margin: 2em auto;
       padding: 0 1em; color: #111; line-height: 1.45; }
h1 { text-align: center; letter-spacing: 0.3em; margin-bottom: 0.1em; }
h1 .en { display: block; font-size: 0.55em; letter-spacing: 0.05em; font-weight: normal; }
h2 { border-bottom: 1px solid #999; font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { width: 14em; background: #f3f3f3; font-weight: normal; }
.mono, pre, code { font-family: "DejaVu Sans Mono", monospace; font-size: 0.85em;
                   word-break: break-all; white-space: pre-wrap; }
.note { font-size: 0.9em; color: #333; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } }
"""


def _row(zh: str, en: str, value: str, mono: bool = False) -> str:
    """A table row; `value` must already be escaped HTML."""
    cls = ' class="mono"' if mono else ""
    return f"<tr><th>{escape(zh)}<br>{escape(en)}</th><td{cls}>{value}</td></tr>"


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
    rows += [_row("引用记录", "Derived from (ref)", escape(ref), mono=True) for ref in rec["refs"]]
    signer = rec["signer"]
    rows += [
        _row("签名部门", "Signed by department", escape(_dept_label(signer["dept"], genesis))),
        _row("签名密钥", "Signing key id", escape(signer["key_id"]), mono=True),
        _row("声明时间（UTC）", "Claimed time (UTC)", escape(rec["claimed_time"])),
    ]
    return "<h2>记录 Record</h2><table>" + "".join(rows) + "</table>"


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
    later = facts.get("later")
    if later:
        rows.append(_row("后续检查点", "Later checkpoint",
                         escape(f"height {later['height']}, {later['time']}, log size "
                                f"{later['log_size']} (consistency proven)")))
    return "<h2>区块 Block</h2><table>" + "".join(rows) + "</table>"


def _validators_section(facts: dict[str, Any], genesis: Genesis) -> str:
    signed = facts["certified_by"]
    rows = "".join(
        f"<tr><td>{escape(str(v['validator']))}</td><td>{escape(v['dept'])}</td>"
        f"<td>{escape(v['name'])}</td></tr>" for v in signed)
    summary = (f"{len(signed)} / {genesis.n} 个验证节点签名（法定数量 {genesis.quorum}） · "
               f"{len(signed)} of {genesis.n} validators signed (quorum {genesis.quorum})")
    return ("<h2>认证节点 Certified by</h2><table><tr><th>编号 No.</th><th>部门 Department</th>"
            f"<th>名称 Name</th></tr>{rows}</table><p class=\"note\">{escape(summary)}</p>")


def _instructions(record_id: str, genesis: Genesis) -> str:
    steps = [
        ("取得本账本的创世文件 genesis.json（例如任一节点的 GET /v1/genesis），"
         f"并核对其 SHA-256 为 {genesis.genesis_hash}。",
         "Obtain the ledger's genesis file genesis.json (e.g. GET /v1/genesis from any node) "
         f"and check that its SHA-256 is {genesis.genesis_hash}."),
        ("将本页另存为 certificate.html，并取出嵌入的证据包：",
         "Save this page as certificate.html and extract the embedded evidence bundle:",
         f'python -c "{EXTRACT_SCRIPT}"'),
        ("或向任一节点重新获取证据包：", "or fetch the bundle again from any node:",
         f"python -m ledgernode evidence --api URL --id {record_id} --out bundle.json"),
        ("在离线计算机上验证（退出码 0 表示有效）：",
         "Verify on an offline computer (exit code 0 means valid):",
         "python -m ledgernode verify bundle.json --genesis genesis.json [--file ORIGINAL]"),
    ]
    items = []
    for zh, en, *command in steps:
        code = f"<pre>{escape(command[0])}</pre>" if command else ""
        items.append(f"<li>{escape(zh)}<br>{escape(en)}{code}</li>")
    return ("<h2>如何离线验证 How to verify offline</h2><ol>" + "".join(items) + "</ol>"
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
