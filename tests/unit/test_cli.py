"""CLI: keygen and genesis (key files, specs, refusal to overwrite, exit codes), --version,
help texts, logging options and a reader that closes the pipe early."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import argparse
import itertools
import re

import pytest

from ledgernode import __version__, crypto, logs, records
from ledgernode.cli import build_parser, main
from ledgernode.genesis import parse
from tests.fixtures import seeded_key

REPO = Path(__file__).resolve().parents[2]
IDENTITY = "01" + "00" * 31  # small order (the neutral element)
ORDER_4 = "00" * 32  # y = 0: a point of order 4
NON_CANONICAL = "ed" + "ff" * 30 + "7f"  # y = p, not reduced


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _keygen(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, str]:
    rc, out, _ = _run(capsys, "keygen", "--out", str(path))
    assert rc == 0
    return json.loads(out)


# -- keygen ------------------------------------------------------------------------


def test_keygen_writes_0600_pem_and_prints_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys" / "justice.pem"  # parent directory is created
    doc = _keygen(capsys, path)
    assert set(doc) == {"key_file", "pubkey", "key_id"}
    assert doc["key_file"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    assert pem.rstrip().endswith(b"-----END PRIVATE KEY-----")
    key = crypto.load_private_key(path)
    assert doc["pubkey"] == key.public.raw.hex() and len(doc["pubkey"]) == 64
    assert doc["key_id"] == crypto.key_id(key.public.raw) == crypto.H("key", key.public.raw)[:8].hex()
    assert len(doc["key_id"]) == 16
    # Two runs make two different keys.
    assert _keygen(capsys, tmp_path / "other.pem")["pubkey"] != doc["pubkey"]


def test_keygen_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.pem"
    _keygen(capsys, path)
    before = path.read_bytes()
    rc, out, err = _run(capsys, "keygen", "--out", str(path))
    assert rc == 2 and out == ""
    assert "exists" in err and "never overwrites" in err
    assert path.read_bytes() == before
    # Not even a file that is not a key.
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    assert _run(capsys, "keygen", "--out", str(other))[0] == 2
    assert other.read_text() == "keep me"


def test_keygen_through_python_m(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ledgernode", "keygen", "--out", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pubkey"] == crypto.load_private_key(path).public.raw.hex()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "exists" in proc.stderr


# -- genesis -------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    out = {}
    for name in ("justice", "market", "app"):
        out[name] = tmp_path / f"{name}.pem"
        _keygen(capsys, out[name])
    return out


def test_genesis_from_pem_and_hex_specs(tmp_path: Path, keys: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    hex_validator = seeded_key("validator-x").public.raw.hex()
    hex_client = seeded_key("client-x").public.raw.hex()
    out = tmp_path / "genesis.json"
    rc, stdout, err = _run(
        capsys, "genesis", "--chain-id", "gov-devnet",
        "--validator", f"justice:{keys['justice']}:Dept of Justice: Beijing",  # a name may hold colons
        "--validator", f"market:{keys['market']}",
        "--validator", f"health:{hex_validator}:卫生健康委员会",
        "--client", f"justice:{keys['app']}:evidence.*,cert.*",
        "--client", f"health:{hex_client}:dataset.publish",
        "--record-ts-window-ms", "300000", "--block-max-records", "1000",
        "--out", str(out),
    )
    assert rc == 0, err
    raw = out.read_bytes()
    assert json.loads(stdout) == {"genesis": str(out), "genesis_hash": hashlib.sha256(raw).hexdigest()}
    g = parse(raw)
    assert g.chain_id == "gov-devnet" and g.genesis_hash == hashlib.sha256(raw).hexdigest()
    pubs = {name: crypto.load_private_key(path).public for name, path in keys.items()}
    assert [(v.dept, v.name, v.pubkey.raw.hex()) for v in g.validators] == [
        ("justice", "Dept of Justice: Beijing", pubs["justice"].raw.hex()),
        ("market", "market", pubs["market"].raw.hex()),  # name defaults to the dept
        ("health", "卫生健康委员会", hex_validator),
    ]
    app = g.signers[pubs["app"].key_id]
    assert (app.dept, app.roles, app.validator) == ("justice", ("evidence.*", "cert.*"), None)
    assert app.allows("cert.issue") and not app.allows("dataset.publish")
    assert g.signers[crypto.key_id(bytes.fromhex(hex_client))].roles == ("dataset.publish",)
    assert g.signers[pubs["market"].key_id].validator == 1
    assert (g.record_ts_window_ms, g.block_max_records) == (300_000, 1000)
    assert (g.n, g.f, g.quorum) == (3, 0, 3)
    doc = json.loads(raw)
    assert doc["format"] == "ledgernode-genesis/2"
    assert doc["params"] == {"record_ts_window_ms": 300_000, "block_max_records": 1000}
    assert raw.endswith(b"\n")


def test_genesis_never_overwrites(tmp_path: Path, keys: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "genesis.json"
    argv = ["genesis", "--chain-id", "gov", "--validator", f"justice:{keys['justice']}", "--out", str(out)]
    assert _run(capsys, *argv)[0] == 0
    before = out.read_bytes()
    # Even with different content, an existing genesis file is never rewritten.
    rc, stdout, err = _run(capsys, *argv[:-2], "--validator", f"market:{keys['market']}", "--out", str(out))
    assert rc == 2 and stdout == ""
    assert "exists" in err and "never edited" in err
    assert out.read_bytes() == before


@pytest.mark.parametrize("spec_args, message", [
    (["--validator", "justice"], "--validator DEPT:KEY[:NAME]"),
    (["--validator", "justice:{justice}", "--client", "justice:{app}"], "--client DEPT:KEY:ROLE"),
    (["--validator", f"justice:{IDENTITY}"], "small order"),
    (["--validator", f"justice:{ORDER_4}"], "small order"),
    (["--validator", f"justice:{NON_CANONICAL}"], "not a canonical curve point"),
    (["--validator", "justice:{justice}", "--client", f"justice:{IDENTITY}:cert.*"], "small order"),
    (["--validator", "justice:{justice}", "--validator", "market:{justice}"], "listed twice"),
    (["--validator", "justice:{justice}", "--client", "police:{app}:cert.*"], "not a validator's department"),
    (["--validator", "justice:{justice}", "--client", "justice:{app}:Cert.Issue"], "roles"),
    (["--validator", "justice:{justice}", "--client", "justice:{app}:"], "roles"),
    (["--validator", "bad dept:{justice}"], "dept"),
    (["--validator", "justice:{missing}"], "cannot read key file"),
    (["--validator", "justice:{open}"], "readable by others"),
    (["--validator", "justice:{notpem}"], "not an unencrypted PEM"),
    (["--validator", "justice:" + "AB" * 32], "cannot read key file"),  # hex must be lowercase
    ([], "validators"),
    (["--validator", "justice:{justice}", "--record-ts-window-ms", "0"], "record_ts_window_ms"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_genesis_bad_specs_exit_2(tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                  spec_args: list[str], message: str) -> None:
    opened = tmp_path / "open.pem"
    opened.write_bytes(keys["app"].read_bytes())
    opened.chmod(0o644)
    notpem = tmp_path / "notpem.pem"
    notpem.write_text("hello")
    notpem.chmod(0o600)
    paths = {**keys, "missing": tmp_path / "missing.pem", "open": opened, "notpem": notpem}
    argv = [a.format(**paths) for a in spec_args]
    out = tmp_path / "genesis.json"
    rc, stdout, err = _run(capsys, "genesis", "--chain-id", "gov", *argv, "--out", str(out))
    assert rc == 2
    assert stdout == ""
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_genesis_through_python_m(tmp_path: Path, keys: dict[str, Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "g.json"
    base = [sys.executable, "-m", "ledgernode", "genesis", "--chain-id", "gov-devnet", "--out", str(out)]
    proc = subprocess.run(base + ["--validator", f"justice:{IDENTITY}"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "small order" in proc.stderr and not out.exists()
    proc = subprocess.run(base + ["--validator", f"justice:{keys['justice']}:Dept of Justice",
                                  "--client", f"justice:{keys['app']}:evidence.*"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert parse(out.read_bytes()).genesis_hash == json.loads(proc.stdout)["genesis_hash"]


# -- version, help, logging options, closed pipes ----------------------------------------


def _commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _option_entries(help_text: str) -> dict[str, str]:
    """Option string -> its whole entry in a --help text (invocation and help, joined)."""
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in help_text.splitlines() + [""]:
        if re.match(r"  -", line) or not line.strip():
            if current:
                joined = " ".join(part.strip() for part in current)
                for name in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", current[0]):
                    entries.setdefault(name, joined)
            current = [line] if line.strip() else []
        elif current:
            current.append(line)
    return entries


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ledgernode {__version__}"


def test_every_option_states_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    missing = []
    for name, parser in _commands().items():
        entries = _option_entries(parser.format_help())
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction) or action.required:
                continue
            entry = entries.get(action.option_strings[-1], "")
            if "default" not in entry:
                missing.append(f"{name} {action.option_strings[-1]}: {entry!r}")
    assert not missing, missing


def test_submit_help_lists_every_record_type_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    lines = _commands()["submit"].format_help().splitlines()
    for record_type, schema in records.BODY_SCHEMAS.items():
        (start,) = [i for i, ln in enumerate(lines) if ln.startswith(f"  {record_type} ")]
        entry = [lines[start]]
        entry += itertools.takewhile(lambda ln: ln.startswith("    "), lines[start + 1:])  # wrapped on
        fields = re.findall(r"([a-z_]+\??)(?: [a-z]+)?(?:,|$)", " ".join(entry)[len(record_type) + 2:].strip())
        assert fields == [f"{f}{'' if required else '?'}" for f, (_, required) in schema.items()], entry
    text = "\n".join(lines)
    assert "exit codes" in text and "3  --wait ran out" in text


def test_run_configures_logging_from_its_options(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(logs, "configure", lambda level, fmt: calls.append((level, fmt)))
    missing = str(tmp_path / "missing.toml")
    rc, _, err = _run(capsys, "run", "-c", missing, "--log-level", "debug", "--log-format", "json")
    assert rc == 2 and "config error" in err
    assert _run(capsys, "run", "-c", missing)[0] == 2
    assert calls == [("debug", "json"), ("info", "text")]


def test_devnet_takes_the_log_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["devnet", "--log-level", "warning", "--log-format", "json"])
    assert (args.log_level, args.log_format) == ("warning", "json")
    args = build_parser().parse_args(["devnet"])
    assert (args.log_level, args.log_format) == ("info", "text")
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["devnet", "--log-level", "loud"])
    assert info.value.code == 2 and "debug" in capsys.readouterr().err


# (arguments, unbuffered stdout, exit code): buffered, the write fails in main()'s final
# flush after the command returned its code; unbuffered, inside the command's print().
CLOSED_PIPE_CASES = [
    (["keygen", "--out", "{tmp}/buffered.pem"], False, 0),
    (["keygen", "--out", "{tmp}/unbuffered.pem"], True, 1),
    (["submit", "--help"], False, 0),
    (["--version"], True, 0),
]


@pytest.mark.parametrize("argv, unbuffered, code", CLOSED_PIPE_CASES)
def test_output_into_a_closed_pipe_exits_quietly(tmp_path: Path, argv: list[str], unbuffered: bool,
                                                 code: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {"PYTHONPATH": str(REPO)}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written, as after `| head -1`
    try:
        proc = subprocess.run([sys.executable, "-m", "ledgernode", *(a.format(tmp=tmp_path) for a in argv)],
                              stdout=writer, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(writer)
    assert proc.stderr.decode() == "" and proc.returncode == code
