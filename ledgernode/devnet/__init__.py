"""A local development network: N validator processes on 127.0.0.1 sharing one genesis.

`python -m ledgernode devnet --nodes N --dir D --base-port P` lays out D on first use
(keys, genesis, node configs: devnet/layout.py lists every file) and reuses every file
on later runs. devnet.json appears once every node answers /healthz and is removed when
the devnet stops. A node process that exits on its own is started again under a
RestartPolicy (devnet/supervisor.py). devnet.json follows: each node has the pid of its
process as it runs now and a "state" of "running", "restarting" (pid null while the
backoff runs) or "stopped" (given up: pid null, "reason" says why). The process runs
until SIGTERM or Ctrl-C, or until every node has been given up, and then stops every
node it started by its pid.

Modules:
  devnet/layout.py      the directory D: keys, genesis, node configs (prepare, load), and
                        devnet.json (write_manifest, read_target, read_ca, read_validator)
  devnet/nodes.py       node processes: port and option checks, start_node, waiting for
                        /healthz, stop_nodes
  devnet/supervisor.py  restarting nodes that exit (RestartPolicy, Supervisor)
  devnet/command.py     `ledgernode devnet` itself (run) and what it prints once up (guide)
  devnet/netns.py       --netns: a network namespace per node, a bridge between them
This package exports what the rest of the project uses (cli, bench, audit, scripts/, tests).
"""

from __future__ import annotations

from . import netns
from .command import guide, run
from .layout import (
    ALL_FAMILIES, CHAIN_ID, DEFAULT_BASE_PORT, DEFAULT_DIR, DEFAULT_NODES, DEPARTMENTS, GENESIS_FILE,
    MANIFEST_FILE, NODES_MAX, PEER_PORT_OFFSET, RESTARTING, RUNNING, STOPPED, ClientFiles, Devnet,
    DevnetError, NodeFiles, NodeState, client_roles, create, department, load, manifest, prepare,
    read_ca, read_target, read_validator, write_atomic, write_manifest,
)
from .nodes import check_log_options, check_ports, exit_text, node_command, start_node, stop_nodes, wait_healthy
from .supervisor import (
    RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS, RESTART_WINDOW_MS, RESTARTS_MAX, RestartPolicy, Supervisor,
)

__all__ = [
    "ALL_FAMILIES", "CHAIN_ID", "DEFAULT_BASE_PORT", "DEFAULT_DIR", "DEFAULT_NODES", "DEPARTMENTS",
    "GENESIS_FILE", "MANIFEST_FILE", "NODES_MAX", "PEER_PORT_OFFSET", "RESTARTING", "RUNNING", "STOPPED",
    "ClientFiles", "Devnet", "DevnetError", "NodeFiles", "NodeState", "client_roles", "create", "department",
    "load", "manifest", "prepare", "read_ca", "read_target", "read_validator", "write_atomic", "write_manifest",
    "check_log_options", "check_ports", "exit_text", "node_command", "start_node", "stop_nodes", "wait_healthy",
    "RESTART_BACKOFF_MAX_MS", "RESTART_BACKOFF_MS", "RESTART_WINDOW_MS", "RESTARTS_MAX", "RestartPolicy",
    "Supervisor",
    "guide", "run", "netns",
]
