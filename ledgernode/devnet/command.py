"""`python -m ledgernode devnet` (ledgernode/devnet/__init__.py): start every node, wait
for /healthz, write devnet.json and print where everything is, supervise the nodes until
SIGTERM or Ctrl-C (or until every node has been given up), then stop every node by its pid.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading

from . import netns
from .layout import GENESIS_FILE, MANIFEST_FILE, Devnet, write_manifest
from .nodes import (
    DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL, POLL_S, check_log_options, check_ports, start_node, stop_nodes,
    wait_expected_healthy,
)
from .supervisor import RestartPolicy, Supervisor

HEALTH_TIMEOUT_S = 120.0  # a bound on waiting for every node to answer /healthz (a loaded machine is slow)


def guide(net: Devnet) -> str:
    """What to print once the devnet is up: where to look and how to submit."""
    d = shlex.quote(str(net.root))
    admin = net.clients[0]
    node0 = net.nodes[0]
    spares = sum(n.spare for n in net.nodes)
    more = f" and {spares} spare node(s) whose keys the genesis does not hold (each follows until " \
        "governance adds it)" if spares else ""
    lines = ["", f"devnet {net.chain_id}: {len(net.nodes) - spares} validators{more}", ""]
    lines += [f"  node{n.index} {n.dept:<12} API {n.api}   log {net.root / n.log}" + ("   spare" if n.spare else "")
              for n in net.nodes]
    if net.netns:
        lines += ["", f"  each node i in network namespace {netns.NAMESPACE_PREFIX}i, reached through bridge "
                  f"{netns.BRIDGE} (`ip netns exec {netns.namespace(0)} ss -tn` shows node 0's links)"]
    cacert = ""
    if net.ca_file is not None:
        cacert = f" --cacert {shlex.quote(str(net.ca_file))}"
        lines += ["", f"  TLS on both ports: certificates in {net.ca_file.parent}, signed by the CA {net.ca_file} "
                  "(commands given --devnet trust it; give others --cacert)"]
    lines += [
        "",
        f"  genesis      {net.root / GENESIS_FILE}",
        f"  devnet.json  {net.root / MANIFEST_FILE}   (APIs, pids, client keys and their roles)",
        f"  console      {node0.api}/ui/   (in a browser: the network, blocks, records, verify)",
        "",
        "Submit a record and wait for its commit:",
        f"  python -m ledgernode submit --api {node0.api}{cacert} "
        f"--key {shlex.quote(str(net.root / admin.key_file))} \\",
        f"      --type evidence.notarize --subject demo-1 --file {shlex.quote(str(net.root / GENESIS_FILE))} \\",
        "      --body '{\"title\": \"devnet genesis\"}' --wait",
        "or, taking node 0's API and the first client key from devnet.json:",
        f"  python -m ledgernode submit --devnet {d} --type evidence.notarize --subject demo-1 \\",
        f"      --file {shlex.quote(str(net.root / GENESIS_FILE))} --body '{{\"title\": \"devnet genesis\"}}' --wait",
        "Then fetch its evidence and verify it offline (ID is the \"id\" printed by submit):",
        f"  python -m ledgernode evidence --devnet {d} --id ID --out bundle.json",
        f"  python -m ledgernode verify bundle.json --genesis {shlex.quote(str(net.root / GENESIS_FILE))}",
        "From Python: ledgernode.client.Client(api, key).submit(envelope, wait=True) (see README)"
        + (f"; over TLS Client(api, key, ca_file={str(net.ca_file)!r})." if net.ca_file else "."),
        "",
        "Ctrl-C or SIGTERM stops every node.",
    ]
    return "\n".join(lines)


def _supervise(net: Devnet, sup: Supervisor, stop: threading.Event) -> int:
    """Until stop is asked: restart nodes as they exit, keeping devnet.json truthful."""
    while not stop.wait(sup.wait_s(POLL_S)):
        if sup.poll():
            write_manifest(net, sup.states())
        if sup.all_given_up():
            print("devnet: every node has been given up; stopping", file=sys.stderr, flush=True)
            return 1
    return 0


def run(net: Devnet, health_timeout_s: float = HEALTH_TIMEOUT_S, *, log_level: str = DEFAULT_LOG_LEVEL,
        log_format: str = DEFAULT_LOG_FORMAT, policy: RestartPolicy = RestartPolicy()) -> int:
    """Start the nodes, report where they are, restart any that exits (under `policy`) and keep
    them running until SIGTERM/Ctrl-C; then stop every node by its pid."""
    check_log_options(log_level, log_format)
    if net.netns:
        # Fresh namespaces: their ports are free; what a killed run left is removed first.
        netns.check_permitted()
        netns.clear_stale()
    else:
        check_ports(net)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    manifest_path = net.root / MANIFEST_FILE
    manifest_path.unlink(missing_ok=True)  # never leave a stale one from a past run
    sup = Supervisor(net, lambda node: start_node(net, node, log_level, log_format), policy)
    try:
        if net.netns:
            netns.setup(len(net.nodes))
        sup.start_all()

        def refresh() -> dict[int, int | None]:
            sup.poll()
            return sup.expected()

        if not wait_expected_healthy(net, refresh, stop, health_timeout_s):
            return 0 if stop.is_set() else 1
        if not stop.is_set():
            # Written once the nodes answer: its appearance means "ready to submit".
            write_manifest(net, sup.states())
            print(guide(net), flush=True)
        return _supervise(net, sup, stop)
    finally:
        # Gone before the nodes stop: `submit --devnet` then says the devnet is not running
        # instead of trying ports nobody listens on.
        manifest_path.unlink(missing_ok=True)
        print("devnet: stopping nodes", flush=True)
        stop_nodes(sup.procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("devnet: all nodes stopped", flush=True)
        if net.netns:
            netns.teardown()
            print(f"devnet: network namespaces {netns.NAMESPACE_PREFIX}* and bridge {netns.BRIDGE} removed", flush=True)
