"""`devnet --netns` (ledgernode/devnet/__init__.py): each node in a network namespace of its own,
so the nodes are shown not to depend on sharing 127.0.0.1 (root only, Linux, `ip` of iproute2).

The network, made by `setup` and removed by `teardown`:

    root namespace     bridge lnbr0, address 10.77.0.1/24 (devnet, submit, tests reach the APIs here)
    ln-node{i}         lo, and eth0 = 10.77.0.(10 + i)/24: one end of a veth pair whose other
                       end, lnveth{i}, is a port of lnbr0 in the root namespace

Node i listens on its own address only (API on 10.77.0.(10+i):P+i, peer link on
10.77.0.(10+i):P+100+i, as devnet/layout.py writes its config), and reaches the others
through the bridge; inside its namespace 127.0.0.1 is its own loopback, which no other node
shares. Nodes are started with `ip netns exec ln-node{i} python -m ledgernode run ...`
(`ip` execs the command: the pid devnet keeps is the node's). The names are fixed, so one
`--netns` devnet runs on a machine at a time: at start, namespaces ln-node* with no
process in them (left by a devnet that was killed) are removed with their links; one with
a process in it is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .layout import NETNS_BRIDGE_ADDRESS, NETNS_NAMESPACE_PREFIX as NAMESPACE_PREFIX, NETNS_PREFIX_LEN, \
    DevnetError, netns_address

BRIDGE = "lnbr0"
VETH_PREFIX = "lnveth"  # the root end of node i's veth pair: lnveth{i} (a link name is at most 15 bytes)
PROBE_NAMESPACE = "ln-probe"
IP_TIMEOUT_S = 20.0  # one `ip` command; it takes milliseconds unless the kernel is stuck


def namespace(i: int) -> str:
    return f"{NAMESPACE_PREFIX}{i}"


def wrap(i: int, cmd: list[str]) -> list[str]:
    """`cmd` run in node i's namespace."""
    return ["ip", "netns", "exec", namespace(i), *cmd]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevnetError(f"--netns: `ip {' '.join(args)}` failed: {exc}") from None
    if check and done.returncode != 0:
        raise DevnetError(f"--netns: `ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")
    return done


def check_permitted() -> None:
    """DevnetError (exit 2) unless this process may make namespaces: root, `ip`, and a probe
    namespace that can be created and deleted."""
    if os.geteuid() != 0:
        raise DevnetError("--netns needs root: it creates network namespaces, a bridge and veth links "
                          "(run it with sudo, or without --netns)")
    if shutil.which("ip") is None:
        raise DevnetError("--netns needs the `ip` command (Debian: apt-get install iproute2)")
    probe = f"{PROBE_NAMESPACE}{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        raise DevnetError(f"--netns: network namespaces are not permitted here ({made.stderr.strip()})")
    _ip("netns", "delete", probe, check=False)


def namespaces() -> list[str]:
    """The devnet's namespaces that exist now (ln-node*)."""
    listed = _ip("netns", "list").stdout.split("\n")
    return sorted(line.split()[0] for line in listed if line.startswith(NAMESPACE_PREFIX))


def _pids(ns: str) -> list[str]:
    return _ip("netns", "pids", ns, check=False).stdout.split()


def teardown() -> None:
    """Remove every ln-node* namespace (their veth pairs go with them) and the bridge; what
    is already gone is skipped."""
    for ns in namespaces():
        _ip("netns", "delete", ns, check=False)
    links = _ip("-o", "link", "show", check=False).stdout.split("\n")
    for line in links:
        parts = line.split(": ")
        name = parts[1].split("@")[0] if len(parts) > 1 else ""
        if name.startswith(VETH_PREFIX) or name == BRIDGE:
            _ip("link", "delete", name, check=False)


def clear_stale() -> None:
    """Remove what a devnet that did not stop cleanly left; refuse if one still runs."""
    busy = {ns: pids for ns in namespaces() if (pids := _pids(ns))}
    if busy:
        held = "; ".join(f"{ns}: pid {', '.join(pids)}" for ns, pids in busy.items())
        raise DevnetError(f"--netns: another devnet --netns is running ({held}); stop it first")
    teardown()


def setup(count: int) -> None:
    """The bridge and `count` namespaces, each with its address, all links up."""
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{NETNS_BRIDGE_ADDRESS}/{NETNS_PREFIX_LEN}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    for i in range(count):
        ns, veth = namespace(i), f"{VETH_PREFIX}{i}"
        _ip("netns", "add", ns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", veth, "master", BRIDGE, "up")
        _ip("-n", ns, "addr", "add", f"{netns_address(i)}/{NETNS_PREFIX_LEN}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
