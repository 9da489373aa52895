"""`ledgernode init` (ledgernode/nodeinit.py): the peers file's checks, the config it writes
(every field explained, loaded back by the node's own loader) and its exit codes."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from ledgernode import cli, config, crypto, genesis
from ledgernode.config import Limits

DEPTS = ("justice", "market", "health", "customs")


class Network:
    """Four validator keys and a client in `root`, a genesis made by the CLI's `genesis`
    command, and a peers file for validator 0 naming validators 1-3."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = [root / "keys" / f"{d}.pem" for d in DEPTS]
        for path in self.keys:
            assert cli.main(["keygen", "--out", str(path)]) == 0
        app = root / "keys" / "app.pem"
        assert cli.main(["keygen", "--out", str(app)]) == 0
        self.genesis = root / "genesis.json"
        argv = ["genesis", "--chain-id", "gov-init", "--out", str(self.genesis), "--client", f"justice:{app}:*"]
        for dept, path in zip(DEPTS, self.keys):
            argv += ["--validator", f"{dept}:{path}"]
        assert cli.main(argv) == 0
        self.pubkeys = [crypto.load_private_key(p).public.raw.hex() for p in self.keys]
        self.peers = root / "peers.toml"
        self.write_peers({k: f"10.1.0.{12 + i}:7200" for i, k in enumerate(self.pubkeys[1:])})

    def write_peers(self, entries: dict[str, str], extra: str = "") -> None:
        self.peers.write_text("".join(f'"{k}" = "{v}"\n' for k, v in entries.items()) + extra)

    def argv(self, key: int = 0, out: str = "node.toml", *more: str) -> list[str]:
        return ["init", "--genesis", str(self.genesis), "--key", str(self.keys[key]), "--peers", str(self.peers),
                "--data-dir", str(self.root / "data"), "--api", "127.0.0.1:7100",
                "--peer-listen", "10.1.0.11:7200", "--out", str(self.root / out), *more]


@pytest.fixture
def net(tmp_path: Path) -> Network:
    return Network(tmp_path)


def test_writes_a_config_the_node_loads(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli.main(net.argv()) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"config": str(net.root / "node.toml"), "validator": 0, "dept": "justice", "peers": 3}
    cfg = config.load(net.root / "node.toml")
    assert cfg.data_dir == net.root / "data"
    assert cfg.key_file == net.keys[0] and cfg.genesis == net.genesis  # relative to the config's directory
    assert cfg.api_listen == ("127.0.0.1", 7100) and cfg.peer_listen == ("10.1.0.11", 7200)
    assert cfg.peers == {k: (f"10.1.0.{12 + i}", 7200) for i, k in enumerate(net.pubkeys[1:])}
    assert cfg.limits == Limits() and cfg.debug_endpoints is False and cfg.index is None
    assert stat.S_IMODE((net.root / "node.toml").stat().st_mode) == 0o640
    text = (net.root / "node.toml").read_text()
    assert 'data_dir = "data"' in text and 'key_file = "keys/justice.pem"' in text


def test_every_field_and_limit_is_explained(net: Network) -> None:
    assert cli.main(net.argv()) == 0
    lines = (net.root / "node.toml").read_text().splitlines()
    settings = [i for i, line in enumerate(lines) if line and not line.startswith(("#", '"'))]
    for i in settings:  # every field and table has a comment line just above it
        assert lines[i - 1].startswith("# "), lines[i]
    for limit in fields(Limits):  # every limit is shown, commented out, after a line saying what it is
        at = lines.index(f"# {limit.name} = {getattr(Limits(), limit.name) or config.LIMIT_EXAMPLES[limit.name]}")
        assert lines[at - 1].startswith("# ") and len(lines[at - 1]) > 20
    # Uncommenting a shown limit gives a config that still loads.
    uncommented = "\n".join(line[2:] if line.startswith("# verify_threads =") else line for line in lines)
    (net.root / "edited.toml").write_text(uncommented)
    assert config.load(net.root / "edited.toml").limits.verify_threads == 2


def test_refuses_to_overwrite_without_force(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    (net.root / "node.toml").write_text("kept")
    assert cli.main(net.argv()) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert (net.root / "node.toml").read_text() == "kept"
    assert cli.main(net.argv(0, "node.toml", "--force")) == 0
    assert config.load(net.root / "node.toml").peer_listen == ("10.1.0.11", 7200)


def test_a_key_no_validator_holds_runs_as_a_follower(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    follower = net.root / "keys" / "new.pem"
    crypto.save_private_key(follower, crypto.generate_private_key())
    net.write_peers({k: f"10.1.0.{11 + i}:7200" for i, k in enumerate(net.pubkeys)})
    capsys.readouterr()
    argv = net.argv()
    argv[argv.index("--key") + 1] = str(follower)
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "will run as a follower" in captured.err
    assert json.loads(captured.out)["validator"] is None
    assert len(config.load(net.root / "node.toml").peers) == 4


def test_warns_about_a_validator_without_an_address(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    net.write_peers({net.pubkeys[1]: "10.1.0.12:7200"})
    assert cli.main(net.argv()) == 0
    err = capsys.readouterr().err
    assert f"health ({net.pubkeys[2][:16]})" in err and f"customs ({net.pubkeys[3][:16]})" in err


def bad_cases(net: Network) -> list[tuple[str, str]]:
    """(peers file text, what the error must say)."""
    other = crypto.generate_private_key().public.raw.hex()
    k1, k2 = net.pubkeys[1], net.pubkeys[2]
    not_a_point = "ff" * 32  # 64 hex, yet no point of the curve
    return [
        (f'"{k1.upper()}" = "10.1.0.12:7200"\n', "64 lowercase hex"),
        ('"12" = "10.1.0.12:7200"\n', "64 lowercase hex"),
        (f'"{other}" = "10.1.0.12:7200"\n', "no validator's key in the genesis"),
        (f'"{net.pubkeys[0]}" = "10.1.0.12:7200"\n', "this node's own key"),
        (f'"{not_a_point}" = "10.1.0.12:7200"\n', "not a canonical curve point"),
        (f'"{k1}" = "10.1.0.12"\n', "host:port"),
        (f'"{k1}" = "10.1.0.12:70000"\n', "port 1-65535"),
        (f'"{k1}" = 7200\n', "host:port"),
        (f'"{k1}" = "0.0.0.0:7200"\n', "wildcard"),
        (f'"{k1}" = "10.1.0.12:7200"\n"{k2}" = "10.1.0.12:7200"\n', "named for two keys"),
        (f'[peers]\n"{k1}" = "10.1.0.12:7200"\n', "no tables"),
        ('"unterminated = 1\n', "not valid TOML"),
    ]


def test_bad_peers_files_exit_2_naming_the_entry(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    for text, said in bad_cases(net):
        net.peers.write_text(text)
        capsys.readouterr()
        assert cli.main(net.argv()) == 2, text
        err = capsys.readouterr().err
        assert err.startswith("init: ") and said in err, (text, err)
        assert not (net.root / "node.toml").exists()


def test_bad_inputs_exit_2(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [("--genesis", str(net.root / "missing.json"), "cannot read"),
             ("--genesis", str(net.peers), "not a genesis file"),
             ("--key", str(net.root / "missing.pem"), "cannot read key file"),
             ("--peers", str(net.root / "missing.toml"), "cannot read"),
             ("--api", "localhost", "host:port"),
             ("--peer-listen", "10.1.0.11:0", "port 1-65535")]
    for option, value, said in cases:
        argv = net.argv()
        argv[argv.index(option) + 1] = value
        capsys.readouterr()
        assert cli.main(argv) == 2, option
        assert said in capsys.readouterr().err, (option, value)


def test_an_open_key_file_is_refused(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(net.keys[0], 0o644)
    assert cli.main(net.argv()) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_paths_outside_the_config_directory_are_absolute(net: Network) -> None:
    argv = net.argv(0, "etc/node.toml")
    assert cli.main(argv) == 0
    doc = tomllib.loads((net.root / "etc" / "node.toml").read_text())
    assert doc["genesis"] == str(net.genesis.resolve()) and doc["data_dir"] == str((net.root / "data").resolve())
    assert config.load(net.root / "etc" / "node.toml").genesis == net.genesis.resolve()


def test_the_written_genesis_is_the_one_checked(net: Network) -> None:
    gen = genesis.parse(net.genesis.read_bytes())
    assert cli.main(net.argv()) == 0
    assert gen.genesis_hash[:16] in (net.root / "node.toml").read_text().splitlines()[0]


def test_render_without_explanations_is_unchanged() -> None:
    text = config.render("d", "k.pem", "g.json", "127.0.0.1:1", "127.0.0.1:2", {"a" * 64: "h:3"}, {"tick_ms": 5})
    assert "#" not in text
    assert text == ('data_dir = "d"\nkey_file = "k.pem"\ngenesis = "g.json"\napi_listen = "127.0.0.1:1"\n'
                    'peer_listen = "127.0.0.1:2"\ndebug_endpoints = false\n\n[peers]\n'
                    f'"{"a" * 64}" = "h:3"\n\n[limits]\ntick_ms = 5\n')


def test_every_limit_has_a_note() -> None:
    assert list(config.LIMIT_NOTES) == [f.name for f in fields(Limits)]
    assert all(getattr(Limits(), name) == 0 for name in config.LIMIT_EXAMPLES)
