"""Node configuration (ledgernode.config): load what render writes; every bad field is a
ConfigError whose message names the field."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from ledgernode import config, devnet
from ledgernode.config import ConfigError, Limits, NodeConfig

DROP = object()  # marks a top-level field to leave out

BASE: dict[str, str] = {  # field -> TOML value text
    "data_dir": '"data"',
    "key_file": '"validator.pem"',
    "genesis": '"../genesis.json"',
    "index": "1",
    "api_listen": '"127.0.0.1:7101"',
    "peer_listen": '"127.0.0.1:7201"',
}
K0, K2, K3 = "a0" * 32, "c2" * 32, "d3" * 32  # validators' public keys, as hex in a genesis
PEERS = {f'"{K0}"': '"127.0.0.1:7200"', f'"{K2}"': '"127.0.0.1:7202"'}


def toml_text(top: dict[str, Any] | None = None, peers: dict[str, str] | None = None,
              limits: dict[str, str] | None = None, tail: str = "") -> str:
    doc: dict[str, Any] = {**BASE, **(top or {})}
    lines = [f"{k} = {v}" for k, v in doc.items() if v is not DROP]
    lines += ["", "[peers]"] + [f"{k} = {v}" for k, v in (PEERS if peers is None else peers).items()]
    if limits is not None:
        lines += ["", "[limits]"] + [f"{k} = {v}" for k, v in limits.items()]
    return "\n".join(lines) + "\n" + tail


def write(tmp_path: Path, text: str | bytes, name: str = "node.toml") -> Path:
    d = tmp_path / "node1"
    d.mkdir(exist_ok=True)
    p = d / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def load_error(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text))
    return str(err.value)


# -- good configs ------------------------------------------------------------------


def test_load_accepts_rendered_config_and_resolves_paths_against_its_directory(tmp_path: Path) -> None:
    text = config.render("data", "validator.pem", "../genesis.json", "127.0.0.1:7101", "127.0.0.1:7201",
                         {K0: "127.0.0.1:7200", K2: "localhost:7202", K3: "10.0.0.3:7203"},
                         {"round_timeout_ms": 1000, "block_interval_ms": 20}, debug=True)
    path = write(tmp_path, text)
    cfg = config.load(path)
    assert isinstance(cfg, NodeConfig)
    here = (tmp_path / "node1").resolve()
    assert cfg.path == path
    assert cfg.data_dir == here / "data"
    assert cfg.key_file == here / "validator.pem"
    assert cfg.genesis.resolve() == tmp_path.resolve() / "genesis.json"
    assert cfg.index is None  # the key names the node; configs of before named its genesis index
    assert cfg.api_listen == ("127.0.0.1", 7101)
    assert cfg.peer_listen == ("127.0.0.1", 7201)
    assert cfg.peers == {K0: ("127.0.0.1", 7200), K2: ("localhost", 7202), K3: ("10.0.0.3", 7203)}
    assert cfg.limits == Limits(round_timeout_ms=1000, block_interval_ms=20)
    assert cfg.debug_endpoints is True


def test_render_without_limits_or_peers_loads_with_defaults(tmp_path: Path) -> None:
    text = config.render("d", "k.pem", "g.json", "127.0.0.1:1", "127.0.0.1:65535", {})
    cfg = config.load(write(tmp_path, text))
    assert cfg.peers == {}
    assert cfg.limits == Limits()
    assert cfg.debug_endpoints is False
    assert cfg.api_listen == ("127.0.0.1", 1) and cfg.peer_listen == ("127.0.0.1", 65535)


def test_every_limit_round_trips_through_render(tmp_path: Path) -> None:
    values = {f.name: 1_000 + i for i, f in enumerate(fields(Limits))}
    values["wait_default_ms"], values["wait_max_ms"] = 500, 600
    text = config.render("d", "k.pem", "g.json", "127.0.0.1:7100", "127.0.0.1:7200", {K2: "h:1"}, values)
    assert config.load(write(tmp_path, text)).limits == Limits(**values)


def test_relative_paths_do_not_depend_on_the_working_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, toml_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = config.load(Path("..") / "node1" / "node.toml")  # a relative path to the config file
    assert cfg.data_dir == path.parent.resolve() / "data"
    assert cfg.key_file == path.parent.resolve() / "validator.pem"


def test_absolute_paths_stay_absolute(tmp_path: Path) -> None:
    abs_dir = tmp_path / "abs" / "data"
    cfg = config.load(write(tmp_path, toml_text({"data_dir": f'"{abs_dir.as_posix()}"'})))
    assert cfg.data_dir == abs_dir


def test_config_path_may_be_a_str(tmp_path: Path) -> None:
    path = write(tmp_path, toml_text())
    assert config.load(str(path)).index == 1


def test_wait_default_equal_to_wait_max_is_allowed(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, toml_text(limits={"wait_default_ms": "700", "wait_max_ms": "700"})))
    assert cfg.limits.wait_default_ms == cfg.limits.wait_max_ms == 700


REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "node.example.toml"
# "# name = 123" in the example's [limits] table: a limit shown commented out, at its default
EXAMPLE_LIMIT = re.compile(r"^# ([a-z_]+) = ([0-9]+)$", re.MULTILINE)


def test_the_example_config_loads() -> None:
    cfg = config.load(EXAMPLE)
    assert cfg.index is None and len(cfg.peers) == 3 and all(len(key) == 64 for key in cfg.peers)
    assert cfg.limits == Limits()  # every limit is left at its default
    assert cfg.debug_endpoints is False


def test_the_example_names_every_top_level_field() -> None:
    text = EXAMPLE.read_text()
    for f in fields(NodeConfig):
        if f.name == "path":  # the file's own path, not a field in it
            continue
        optional = f.name in ("index", "tls", "reads")  # shown commented out: the example runs without them
        shown = rf"^(# {f.name} = |{f.name} = |#? ?\[{f.name}\]$)" if optional else rf"^({f.name} = |\[{f.name}\]$)"
        assert re.search(shown, text, re.MULTILINE), f"{f.name} is not in the example"


def test_the_example_documents_every_limit_with_its_default() -> None:
    """A limit added to Limits without a documented line in the example fails here."""
    text = EXAMPLE.read_text()
    limits_table = text.split("\n[limits]\n", 1)[1]
    shown = {name: int(value) for name, value in EXAMPLE_LIMIT.findall(limits_table)}
    for f in fields(Limits):
        assert f.name in shown, f"limits.{f.name} is not documented in {EXAMPLE}"
        paragraph = limits_table.split(f"\n# {f.name} = ", 1)[0].rsplit("\n\n", 1)[-1]
        assert "Default" in paragraph, f"limits.{f.name}: its comment does not give the default"
        if f.default > 0:  # verify_threads' default 0 (one per core) cannot be written: shown as an example
            assert shown[f.name] == f.default, f"limits.{f.name}: the example shows {shown[f.name]}, not {f.default}"


def test_the_example_limits_load_when_uncommented(tmp_path: Path) -> None:
    """Every limit line is valid as shown: uncommenting them all still loads."""
    head, table = EXAMPLE.read_text().split("\n[limits]\n", 1)
    uncommented = EXAMPLE_LIMIT.sub(r"\1 = \2", table)
    cfg = config.load(write(tmp_path, head + "\n[limits]\n" + uncommented))
    shown = {name: int(value) for name, value in EXAMPLE_LIMIT.findall(table)}
    assert cfg.limits == Limits(**shown)


def test_the_example_does_not_clash_with_a_running_devnet() -> None:
    cfg = config.load(EXAMPLE)
    ports = {cfg.api_listen[1], cfg.peer_listen[1], *(port for _, port in cfg.peers.values())}
    devnet_api = range(devnet.DEFAULT_BASE_PORT, devnet.DEFAULT_BASE_PORT + devnet.NODES_MAX)
    devnet_peer = range(devnet.DEFAULT_BASE_PORT + devnet.PEER_PORT_OFFSET,
                        devnet.DEFAULT_BASE_PORT + devnet.PEER_PORT_OFFSET + devnet.NODES_MAX)
    assert not [p for p in ports if p in devnet_api or p in devnet_peer]
    devnet_dir = (REPO / devnet.DEFAULT_DIR).resolve()
    for path in (cfg.data_dir, cfg.key_file, cfg.genesis):
        assert not path.resolve().is_relative_to(devnet_dir), path
    assert cfg.data_dir.resolve() == (REPO / "configs" / "data" / "node0").resolve()


# -- bad configs ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(BASE) - {"index"}))
def test_missing_required_field(tmp_path: Path, name: str) -> None:
    msg = load_error(tmp_path, toml_text({name: DROP}))
    assert msg.startswith(f"{name}:") and "missing" in msg


def test_index_is_optional(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, toml_text({"index": DROP}))).index is None


@pytest.mark.parametrize("name, value", [
    ("data_dir", "5"),
    ("data_dir", "true"),
    ("key_file", '["validator.pem"]'),
    ("key_file", "{ path = \"k.pem\" }"),
    ("genesis", "1.5"),
    ("index", '"1"'),
    ("index", "true"),
    ("index", "1.0"),
    ("api_listen", "7101"),
    ("api_listen", '["127.0.0.1", 7101]'),
    ("peer_listen", "false"),
    ("debug_endpoints", '"yes"'),
    ("debug_endpoints", "1"),
])
def test_wrong_type(tmp_path: Path, name: str, value: str) -> None:
    msg = load_error(tmp_path, toml_text({name: value}))
    assert msg.startswith(f"{name}:"), msg


def test_negative_index(tmp_path: Path) -> None:
    assert load_error(tmp_path, toml_text({"index": "-1"})).startswith("index:")


BAD_ADDRESSES = [
    "127.0.0.1",  # no port
    "127.0.0.1:",  # empty port
    ":7100",  # empty host
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "127.0.0.1:70000",
    "127.0.0.1:-1",
    "127.0.0.1:http",
    "127.0.0.1:71OO",
    "127.0.0.1: 7100",
    "127.0.0.1:7100 ",
    "127.0.0.1:+7100",
    "127.0.0.1:7_100",
    "",
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
@pytest.mark.parametrize("name", ["api_listen", "peer_listen"])
def test_bad_listen_address(tmp_path: Path, name: str, address: str) -> None:
    msg = load_error(tmp_path, toml_text({name: f'"{address}"'}))
    assert msg.startswith(f"{name}:") and "host:port" in msg, msg


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_peer_address(tmp_path: Path, address: str) -> None:
    msg = load_error(tmp_path, toml_text(peers={f'"{K0}"': '"127.0.0.1:7200"', f'"{K2}"': f'"{address}"'}))
    assert msg.startswith(f"peers.{K2[:16]}:") and "host:port" in msg, msg


def test_peer_address_not_a_string(tmp_path: Path) -> None:
    assert load_error(tmp_path, toml_text(peers={f'"{K0}"': "7200"})).startswith(f"peers.{K0[:16]}:")


def test_unknown_top_level_field(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text({"listen": '"127.0.0.1:1"'}))
    assert msg.startswith("listen:") and "unknown" in msg


def test_unknown_top_level_table(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text(tail="\n[limit]\ntick_ms = 5\n"))
    assert msg.startswith("limit:") and "unknown" in msg


def test_unknown_limit(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text(limits={"tick_ms": "10", "mempool_max": "5"}))
    assert msg.startswith("limits.mempool_max:") and "unknown" in msg
    assert "mempool_max_records" in msg  # lists the known names


@pytest.mark.parametrize("value", ["0", "-5", "true", "false", "1.5", '"10"', "[10]"])
def test_limit_must_be_a_positive_integer(tmp_path: Path, value: str) -> None:
    msg = load_error(tmp_path, toml_text(limits={"tick_ms": value}))
    assert msg.startswith("limits.tick_ms:") and "positive integer" in msg, msg


@pytest.mark.parametrize("name", [f.name for f in fields(Limits)])
def test_every_limit_refuses_zero(tmp_path: Path, name: str) -> None:
    assert load_error(tmp_path, toml_text(limits={name: "0"})).startswith(f"limits.{name}:")


def test_limits_not_a_table(tmp_path: Path) -> None:
    assert load_error(tmp_path, toml_text({"limits": "5"})).startswith("limits:")


def test_wait_default_above_wait_max(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text(limits={"wait_default_ms": "2000", "wait_max_ms": "1000"}))
    assert msg.startswith("limits.wait_default_ms:") and "wait_max_ms" in msg


def test_wait_default_above_the_default_wait_max(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text(limits={"wait_default_ms": str(Limits().wait_max_ms + 1)}))
    assert msg.startswith("limits.wait_default_ms:")


@pytest.mark.parametrize("value", ['["127.0.0.1:7200", "127.0.0.1:7202"]', '"127.0.0.1:7200"', "3"])
def test_peers_not_a_table(tmp_path: Path, value: str) -> None:
    text = toml_text({"peers": value}, peers={}).replace("\n[peers]\n", "\n")
    assert load_error(tmp_path, text).startswith("peers:")


def test_peers_keyed_by_index_as_before_name_the_new_format(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text(peers={"0": '"127.0.0.1:7200"', "2": '"127.0.0.1:7202"'}))
    assert msg.startswith("peers.0:") and "public keys" in msg and "format of before" in msg, msg


@pytest.mark.parametrize("key", ["a", "node2", "-1", '"1.5"', '" 2"', '""', f'"{"A0" * 32}"', f'"{"a0" * 31}"',
                                 f'"{"a0" * 33}"', f'"{"g0" * 32}"'])
def test_peers_with_keys_that_are_not_64_lowercase_hex(tmp_path: Path, key: str) -> None:
    msg = load_error(tmp_path, toml_text(peers={key: '"127.0.0.1:7200"'}))
    assert msg.startswith("peers."), msg
    assert "64 lowercase hex" in msg


def test_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir = = 'x\n[[[\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(path) in str(err.value) and "TOML" in str(err.value)


def test_json_is_not_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in load_error(tmp_path, '{"data_dir": "data", "index": 0}\n')


def test_not_utf8(tmp_path: Path) -> None:
    assert "not valid TOML" in load_error(tmp_path, b'data_dir = "\xff\xfe"\n')


def test_duplicate_key_is_not_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in load_error(tmp_path, "index = 2\n" + toml_text())


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(path) in str(err.value) and "cannot read" in str(err.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path)
    assert "cannot read" in str(err.value)


def test_superscript_digit_port_is_a_config_error(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text({"api_listen": '"127.0.0.1:7²"'}))
    assert msg.startswith("api_listen:")


def test_superscript_digit_peer_key_is_a_config_error(tmp_path: Path) -> None:
    msg = load_error(tmp_path, toml_text(peers={'"²"': '"127.0.0.1:7200"'}))
    assert msg.startswith("peers.")


@pytest.mark.parametrize("port", ["７１０１", "٧١٠١", "7101\u0663"])
def test_non_ascii_digit_ports_are_refused(tmp_path: Path, port: str) -> None:
    """int() would read these as numbers; the config insists on ASCII digits."""
    assert load_error(tmp_path, toml_text({"api_listen": f'"127.0.0.1:{port}"'})).startswith("api_listen:")


def test_non_ascii_digit_peer_key_is_refused(tmp_path: Path) -> None:
    assert load_error(tmp_path, toml_text(peers={'"２"': '"127.0.0.1:7202"'})).startswith("peers.")
