"""The package map of docs/architecture.md, enforced: every module has a layer, and imports
only from the layers its own may use; each third-party library has one importer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "ledgernode"

# Packages: every module in them has the package's layer.
PACKAGE_LAYERS = {
    "consensus": "core", "auditing": "auditing", "storage": "storage", "net": "net", "api": "api", "families": "ledger",
    "devnet": "runtime", "console": "api",
}
# Top-level modules, by layer (docs/architecture.md).
MODULE_LAYERS = {
    "base": ["codec", "crypto", "merkle", "statemap", "maptree", "errors", "times", "logs", "config", "aio", "histogram",
             "progress", "charts", "sse", "tls", "httpsig"],
    "ledger": ["genesis", "members", "records", "ledgermap", "blocks", "state"],
    "auditing": ["verify", "equivocation"],
    "rooms": ["service", "mempool", "admission", "intake", "outcomes", "verification", "reads", "throttle", "access"],
    "net": ["guard", "catchup"],
    "runtime": ["node", "peers", "threadcpu", "roster", "witness", "metrics", "activity", "cli", "governance", "bench", "audit", "client",
                "calls", "judge", "nodeinit", "overview", "__main__"],
}
# What each layer may import (besides itself).
MAY_IMPORT = {
    "base": set(),
    "ledger": {"base"},
    "core": {"base", "ledger"},
    "auditing": {"base", "ledger", "core"},  # equivocation proofs are signed consensus messages
    "storage": {"base", "ledger"},
    "rooms": {"base", "ledger", "storage"},
    "net": {"base", "ledger", "core", "storage", "rooms"},
    "api": {"base", "ledger", "auditing", "storage", "rooms"},
    "runtime": {"base", "ledger", "core", "auditing", "storage", "rooms", "net", "api"},
}
THIRD_PARTY_IMPORTER = {
    "msgpack": "codec", "cryptography": "crypto", "nacl": "crypto", "plyvel": "storage.leveldb", "aiohttp": "aio",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top in PACKAGE_LAYERS:
        return PACKAGE_LAYERS[top]
    return next((layer for layer, names in MODULE_LAYERS.items() if module in names), None)


def _imports(module: str, path: Path) -> set[str]:
    """Modules of ledgernode (as `a.b`, no prefix) and top-level third-party names imported."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.removeprefix("ledgernode.") for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}".lstrip(".") for a in node.names]
                found.update(names)
            elif node.module:
                found.add(node.module.removeprefix("ledgernode."))
    return {f for f in found if f}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The ledgernode module a dotted import names (`storage.Store` -> `storage`), if any."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_has_a_layer() -> None:
    missing = [m for m in _modules() if m and layer_of(m) is None]
    assert missing == [], f"place these in docs/architecture.md and MODULE_LAYERS: {missing}"


def test_imports_go_down_the_layers_only() -> None:
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        if not module:
            continue
        mine = layer_of(module)
        assert mine is not None
        for name in _imports(module, path):
            target = _resolve(name, modules)
            if target is None or target == "" or target == module:
                continue
            theirs = layer_of(target)
            if theirs != mine and theirs not in MAY_IMPORT[mine]:
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_each_third_party_library_has_one_importer() -> None:
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        for name in _imports(module, path):
            top = name.split(".")[0]
            owner = THIRD_PARTY_IMPORTER.get(top)
            if owner is not None and module != owner:
                wrong.append(f"{module} imports {top} (only {owner} may)")
    assert wrong == []


@pytest.mark.parametrize("module", ["ledgernode.verify", "ledgernode.auditing", "ledgernode.consensus"])
def test_the_verifier_and_the_core_load_no_network_or_storage_library(module: str) -> None:
    probe = (f"import sys, importlib; importlib.import_module({module!r}); "
             "print(sorted(m for m in ('aiohttp', 'plyvel', 'asyncio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    loaded = set(eval(out.stdout))  # noqa: S307 - our own probe's printed list
    assert loaded & {"aiohttp", "plyvel"} == set()
    if module == "ledgernode.consensus":
        assert "asyncio" not in loaded, "the consensus core is a pure state machine"
