"""Restarting the devnet's nodes (ledgernode/devnet/__init__.py): a node process that
exits on its own is started again after a backoff (1 s, doubling), at most RESTARTS_MAX
times within RESTART_WINDOW_MS; each exit is reported on stderr with the node, its exit
code and the last lines of its log. A node that exhausts the policy is given up
("stopped" in devnet.json, with a "reason"); the others keep running.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .layout import RESTARTING, RUNNING, STOPPED, Devnet, NodeFiles, NodeState
from .nodes import exit_text, log_tail

RESTARTS_MAX = 5  # restarts of one node within RESTART_WINDOW_MS before devnet gives up on it
RESTART_WINDOW_MS = 600_000  # 10 min: a node that crashes less often than this is restarted forever
RESTART_BACKOFF_MS = 1_000  # before the first restart in the window; doubles with each further one
RESTART_BACKOFF_MAX_MS = 30_000


@dataclass(frozen=True)
class RestartPolicy:
    """How often a node that exits on its own is started again: at most `restarts_max` times within
    any `window_ms`, each after a backoff that doubles from `backoff_ms` up to `backoff_max_ms`."""

    restarts_max: int = RESTARTS_MAX
    window_ms: int = RESTART_WINDOW_MS
    backoff_ms: int = RESTART_BACKOFF_MS
    backoff_max_ms: int = RESTART_BACKOFF_MAX_MS

    def backoff_s(self, recent_restarts: int) -> float:
        return min(self.backoff_max_ms, self.backoff_ms * 2 ** recent_restarts) / 1000


@dataclass
class _Watch:
    restarts: deque[float] = field(default_factory=deque)  # monotonic seconds, within the window
    due_s: float | None = None  # when the scheduled restart happens; None: none scheduled
    reason: str | None = None  # how the last process ended, while the node is not running
    given_up: bool = False


class Supervisor:
    """Keeps one process per node running: a process that exits is started again under a
    RestartPolicy, and a node that exhausts it is given up (the others keep running).

    `poll` does all the work and never blocks, so one loop both probes health and supervises;
    `spawn` and `clock` are parameters so the policy can be tested without processes or waiting.
    """

    def __init__(self, net: Devnet, spawn: Callable[[NodeFiles], subprocess.Popen[bytes]],
                 policy: RestartPolicy = RestartPolicy(), clock: Callable[[], float] = time.monotonic) -> None:
        self.net, self.spawn, self.policy, self.clock = net, spawn, policy, clock
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.watches = {n.index: _Watch() for n in net.nodes}

    def start_all(self) -> None:
        for node in self.net.nodes:
            # Stored as soon as Popen returns: a stop asked meanwhile still finds every node.
            self.procs[node.index] = self.spawn(node)
            print(f"devnet: started node {node.index} ({node.dept}) pid {self.procs[node.index].pid}", flush=True)

    def poll(self) -> bool:
        """Notice exited nodes and restart those whose backoff has passed; True if any state changed."""
        now = self.clock()
        changed = False
        for i, w in self.watches.items():
            if w.given_up or i not in self.procs:
                continue
            if w.due_s is None:
                code = self.procs[i].poll()
                if code is not None:
                    self._exited(i, code, now)
                    changed = True
            elif now >= w.due_s:
                self._restart(i, now)
                changed = True
        return changed

    def _exited(self, i: int, code: int, now: float) -> None:
        w, node, p = self.watches[i], self.net.nodes[i], self.policy
        while w.restarts and w.restarts[0] <= now - p.window_ms / 1000:
            w.restarts.popleft()
        log = self.net.root / node.log
        how, recent, window = exit_text(code), len(w.restarts), f"{p.window_ms / 1000:g} s"
        if recent >= p.restarts_max:
            w.given_up, w.reason = True, f"{how}; given up after {recent} restarts within {window}"
            action = f"restarted {recent} times within {window} already, so given up (the others keep running)"
        else:
            delay_s = p.backoff_s(recent)
            w.due_s, w.reason = now + delay_s, f"{how}; restarting"
            action = f"restarting it in {delay_s:g} s (restart {recent + 1} of at most {p.restarts_max} in {window})"
        print(f"devnet: node {i} ({node.dept}) {how}; {action}. Last lines of {log}:\n{log_tail(log)}",
              file=sys.stderr, flush=True)

    def _restart(self, i: int, now: float) -> None:
        w, node = self.watches[i], self.net.nodes[i]
        w.restarts.append(now)
        w.due_s, w.reason = None, None
        self.procs[i] = self.spawn(node)
        print(f"devnet: restarted node {i} ({node.dept}) pid {self.procs[i].pid}", file=sys.stderr, flush=True)

    def expected(self) -> dict[int, int | None]:
        """Nodes not given up, with the pid of their process (None while a restart waits)."""
        return {i: None if w.due_s is not None else self.procs[i].pid
                for i, w in self.watches.items() if not w.given_up and i in self.procs}

    def states(self) -> dict[int, NodeState]:
        out = {}
        for i, w in self.watches.items():
            if i not in self.procs:
                continue
            if w.given_up:
                out[i] = NodeState(None, STOPPED, w.reason)
            elif w.due_s is not None:
                out[i] = NodeState(None, RESTARTING, w.reason)
            else:
                out[i] = NodeState(self.procs[i].pid, RUNNING)
        return out

    def all_given_up(self) -> bool:
        return all(w.given_up for w in self.watches.values())

    def wait_s(self, most_s: float) -> float:
        """How long the caller may sleep before the next poll: at most `most_s`, less when a
        restart falls due sooner."""
        due = [w.due_s for w in self.watches.values() if w.due_s is not None]
        return max(0.0, min([most_s] + [d - self.clock() for d in due]))
