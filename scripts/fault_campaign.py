"""Fault campaign on a temporary 4-node cluster of real processes on 127.0.0.1 (docs/reliability.md).

Starts 4 `python -m ledgernode run` processes (tests/integration/procs.Cluster, with
debug_endpoints), runs a steady client (threads submitting records with ?wait=1 to the
live nodes, keeping every acknowledged record id) and, per fault kind, repeats N cycles
of: inject, wait (on a condition, bounded), heal, wait until all nodes reconverge, and
measure the time to reconverge. After each fault kind it checks that no acknowledged
record is lost, no fork, no duplicate and no equivocation. Everything is bounded by one
total deadline (--seconds); every process it starts is stopped by PID at the end and its
temporary directory is removed.

    python scripts/fault_campaign.py [--cycles 2] [--seconds 300] [--base-port 24700]

Exit 0 if nothing was lost, forked, duplicated or equivocated (and no cycle failed), else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledgernode import codec  # noqa: E402
from tests.integration import procs  # noqa: E402
from tests.integration.procs import Cluster  # noqa: E402

N = 4
CLIENT_THREADS = 3
CLIENT_PAUSE_S = 0.05          # between one thread's submissions: keeps the check affordable
SUBMIT_TIMEOUT_S = 15.0        # HTTP timeout of one ?wait=1 submission
PROBE_TIMEOUT_S = 5.0          # HTTP timeout of a status / block / record read
FAULT_WAIT_S = 20.0            # bound on "the others made progress" while a fault is on
FAULT_HEIGHTS = 3              # ... that many heights
SIGSTOP_S = 3.0                # how long a node stays stopped
RECONVERGE_MAX_S = 90.0        # bound on one reconvergence
RESERVE_S = 45.0               # kept back from the deadline for the last checks and stopping
STORAGE_RESTARTS_MAX = 3
KINDS = ["one-down-rate", "kill-random", "kill-primary", "sigstop", "partition", "full-disk", "flip-table",
         "wipe-ledger"]
RATE_WINDOW_S = 10.0           # one block-rate measurement window
BULK_THREADS = 2               # bulk loaders (no ?wait) that keep every mempool full while rates are measured
BULK_BATCH = 100               # records per bulk submission
BULK_BACKOFF_S = 0.2           # a bulk loader's pause after a 429/503 (the mempool is full: good)
SKIP_WAIT_S = 60.0             # bound on "the dead node's turns are skipped"
FULL_DISK_SPARE_BYTES = 8 << 20  # room left on the victim's small disk (tmpfs): bulk load fills it in seconds
FULL_DISK_WAIT_S = 90.0        # bound on "the node stopped on its full disk"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Campaign:
    def __init__(self, root: Path, cycles: int, seconds: float, base_port: int, seed: int,
                 kinds: list[str] | None = None) -> None:
        self.kinds = kinds or KINDS
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds
        self.cycles = cycles
        self.rng = random.Random(seed)
        if base_port:
            ports = list(range(base_port, base_port + 2 * N))
            for p in ports:  # fail early and clearly if a port is taken
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the nodes do: TIME_WAIT is fine
                    s.bind(("127.0.0.1", p))
            procs.free_ports = lambda count: ports[:count]  # type: ignore[assignment]
        self.c = Cluster(root, N)
        self.lock = threading.Lock()
        self.excluded: set[int] = set()      # nodes the client must not use now
        self.stopped: set[int] = set()       # SIGSTOPped right now (SIGCONT before stopping)
        self.acked: list[tuple[str, str]] = []   # (kind, record id)
        self.kind = "warmup"
        self.client_errors = 0
        self.stop_client = threading.Event()
        self.threads: list[threading.Thread] = []
        self.ref: dict[int, str] = {}        # height -> block hash, first seen
        self.checked: dict[int, int] = {i: 0 for i in range(N)}
        self.results: list[dict[str, Any]] = []
        self.recoveries: list[str] = []      # operator recoveries done by restore()
        self.restarts = 0                    # nodes the campaign, as their supervisor, started again
        self.rates: list[dict[str, float]] = []  # one-down-rate: blocks/s and records/s, healthy and one down
        self.bulk = threading.Event()        # set while the bulk loaders run

    # -- time ------------------------------------------------------------------

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def bound(self, want: float) -> float:
        return max(5.0, min(want, self.left()))

    # -- HTTP ------------------------------------------------------------------

    def req(self, i: int, method: str, path: str, body: bytes | None = None,
            ctype: str = "application/json", timeout: float = PROBE_TIMEOUT_S) -> tuple[int, Any]:
        return self.c.request(i, method, path, body, ctype, timeout=timeout)

    def status(self, i: int) -> dict[str, Any]:
        code, doc = self.req(i, "GET", "/v1/status")
        if code != 200:
            raise OSError(f"status {code} from node {i}")
        return doc

    def block_hash(self, i: int, h: int) -> str:
        code, doc = self.req(i, "GET", f"/v1/blocks/{h}")
        if code != 200:
            raise OSError(f"block {h} from node {i}: {code}")
        return doc["qc"]["block_hash"]

    def set_faults(self, spec: dict[str, Any]) -> None:
        for i in range(N):
            code, doc = self.req(i, "POST", "/v1/debug/faults", json.dumps(spec).encode())
            if code != 200:
                raise RuntimeError(f"node {i} refused faults {spec}: {code} {doc}")

    # -- processes -------------------------------------------------------------

    def alive(self, i: int) -> bool:
        p = self.c.procs.get(i)
        return p is not None and p.poll() is None

    def kill(self, i: int, sig: int) -> None:
        proc = self.c.procs.pop(i)
        if proc.poll() is None:
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=procs.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start(self, i: int) -> None:
        try:
            self.c.start(i)
        except BaseException:
            p = self.c.procs.pop(i, None)
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
            raise

    def stop_everything(self) -> None:
        self.stop_client.set()
        for i in list(self.stopped):
            p = self.c.procs.get(i)
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
        self.stopped.clear()
        for i in list(self.c.procs):
            proc = self.c.procs.pop(i)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
        for t in self.threads:
            t.join(timeout=SUBMIT_TIMEOUT_S + 5)

    # -- client ----------------------------------------------------------------

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        while not self.stop_client.is_set():
            with self.lock:
                live = [i for i in range(N) if i not in self.excluded and self.alive(i)]
                kind = self.kind
            if not live:
                time.sleep(0.1)
                continue
            i = rng.choice(live)
            try:
                code, doc = self.req(i, "POST", f"/v1/records?wait=1&timeout_ms={int(SUBMIT_TIMEOUT_S * 1000) - 2000}",
                                     self.c.record(f"campaign-{n}"), "application/msgpack", timeout=SUBMIT_TIMEOUT_S)
            except (OSError, ValueError):
                with self.lock:
                    self.client_errors += 1
                continue
            with self.lock:
                if code == 200 and doc.get("status") == "committed":
                    self.acked.append((kind, doc["id"]))
                else:
                    self.client_errors += 1
            time.sleep(CLIENT_PAUSE_S)

    def start_threads(self, target: Callable[[int], None], count: int) -> None:
        for n in range(count):
            t = threading.Thread(target=target, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)

    def _bulk(self, n: int) -> None:
        """Batches without ?wait while `self.bulk` is set: a saturated mempool, so the block
        rate is what consensus allows. Its records are not checked (the steady client's are)."""
        rng = random.Random(1000 + n)
        while not self.stop_client.is_set():
            if not self.bulk.wait(timeout=0.5):
                continue
            with self.lock:
                live = [i for i in range(N) if i not in self.excluded and self.alive(i)]
            if not live:
                time.sleep(BULK_BACKOFF_S)
                continue
            body = codec.encode([self.c.record(f"bulk-{n}") for _ in range(BULK_BATCH)])
            try:
                code, _ = self.req(rng.choice(live), "POST", "/v1/records/batch", body, "application/msgpack")
            except (OSError, ValueError):
                code = 0
            if code != 202 and code != 200:
                time.sleep(BULK_BACKOFF_S)

    # -- waits -----------------------------------------------------------------

    def wait(self, what: str, probe: Callable[[], tuple[bool, Any]], timeout: float) -> Any:
        return procs.wait_until(what, probe, timeout=self.bound(timeout), every=0.1)

    def others_progress(self, victim: int, timeout: float = FAULT_WAIT_S) -> None:
        others = [i for i in range(N) if i != victim]
        h0 = max(self.status(i)["height"] for i in others)

        def probe() -> tuple[bool, Any]:
            hs = {i: self.status(i)["height"] for i in others}
            return max(hs.values()) >= h0 + FAULT_HEIGHTS, hs
        self.wait(f"the others to commit {FAULT_HEIGHTS} heights past {h0}", probe, timeout)

    def reconverge(self) -> float:
        """From now (just healed) until every node is at least at the head seen now and all
        hold one block hash at their lowest head; seconds taken."""
        t = time.monotonic()
        target = max(self.status(i)["height"] for i in range(N) if i not in self.stopped and self.alive(i))

        def probe() -> tuple[bool, Any]:
            self.supervise()
            hs = {i: self.status(i)["height"] for i in range(N)}
            low = min(hs.values())
            if low < target:
                return False, hs
            hashes = {self.block_hash(i, low) for i in range(N)}
            return len(hashes) == 1, (hs, len(hashes))
        self.wait(f"all nodes to reach height {target} with one block hash", probe, RECONVERGE_MAX_S)
        return time.monotonic() - t

    def supervise(self) -> None:
        """As devnet or systemd would: start again a node that stopped by itself (one that found
        damage stops and rebuilds its store at the next start), counted in `self.restarts`."""
        for i in range(N):
            if i in self.stopped or i in self.excluded or self.alive(i) or i not in self.c.procs:
                continue
            code = self.c.procs.pop(i).wait()
            log(f"  node {i} had stopped by itself (exit {code}): {self.damage_lines(i)[-1:]}; starting it again")
            self.restarts += 1
            self._restart_storage(i)

    # -- faults ----------------------------------------------------------------

    def exclude(self, i: int) -> None:
        with self.lock:
            self.excluded.add(i)

    def include(self, i: int) -> None:
        with self.lock:
            self.excluded.discard(i)

    def primary(self) -> int:
        for i in range(N):
            try:
                return int(self.status(i)["primary"])
            except (OSError, ValueError, KeyError):
                continue
        raise RuntimeError("no node answers /v1/status")

    def fault_kill(self, victim: int) -> float:
        self.exclude(victim)
        self.kill(victim, signal.SIGKILL)
        self.others_progress(victim)
        t = time.monotonic()
        self.start(victim)
        self.include(victim)
        return (time.monotonic() - t) + self.reconverge()

    def fault_sigstop(self, victim: int) -> float:
        self.exclude(victim)
        os.kill(self.c.procs[victim].pid, signal.SIGSTOP)
        self.stopped.add(victim)
        t = time.monotonic()
        self.others_progress(victim)
        time.sleep(max(0.0, SIGSTOP_S - (time.monotonic() - t)))
        os.kill(self.c.procs[victim].pid, signal.SIGCONT)
        self.stopped.discard(victim)
        self.include(victim)
        return self.reconverge()

    def fault_partition(self, victim: int) -> float:
        self.exclude(victim)
        self.set_faults({"partition": [[victim], [i for i in range(N) if i != victim]]})
        self.others_progress(victim)
        self.set_faults({})
        self.include(victim)
        return self.reconverge()

    def _restart_storage(self, victim: int, starts: list[int] | None = None) -> None:
        """Start the damaged node; if it stops on the damage, start it again (at most 3 starts
        in all, counted in `starts`)."""
        path = self.c.root / f"node{victim}" / "node.log"
        starts = starts if starts is not None else [0]
        while starts[0] < STORAGE_RESTARTS_MAX:
            starts[0] += 1
            attempt = starts[0]
            try:
                self.start(victim)
            except RuntimeError as exc:
                log(f"  node {victim} stopped at start {attempt}: {str(exc)[:200]!r}")
                continue
            end = time.monotonic() + 1.0
            while time.monotonic() < end and self.alive(victim):
                time.sleep(0.2)
            if self.alive(victim):
                return
            self.c.procs.pop(victim).wait()
            log(f"  node {victim} stopped after start {attempt}; log tail: {path.read_text()[-300:]!r}")
        raise RuntimeError(f"node {victim} did not stay up after {STORAGE_RESTARTS_MAX} starts")

    def fault_flip(self, victim: int) -> float:
        self.exclude(victim)
        self.kill(victim, signal.SIGTERM)
        self.start(victim)                      # reopening turns the log into a table file
        self.kill(victim, signal.SIGTERM)
        ledger = self.c.root / f"node{victim}" / "data" / "ledger"
        tables = sorted(ledger.glob("*.ldb"), key=lambda p: p.stat().st_size)
        if not tables:
            raise RuntimeError(f"no .ldb table in {ledger}: {sorted(p.name for p in ledger.iterdir())}")
        data = bytearray(tables[-1].read_bytes())
        for k in range(64):
            data[(len(data) // 3 + k * 97) % len(data)] ^= 0xFF
        tables[-1].write_bytes(bytes(data))
        t = time.monotonic()
        starts = [0]
        self._restart_storage(victim, starts)
        self.include(victim)
        self.reconverge()
        dt = time.monotonic() - t
        # the damage may lie in blocks it has not read yet: read every block from it (as a
        # client would); if it stops on what it finds, start it again and reconverge again
        while True:
            try:
                for h in range(1, self.status(victim)["height"] + 1):
                    self.block_hash(victim, h)
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
            if self.alive(victim):
                break
            self.exclude(victim)
            self.c.procs.pop(victim).wait()
            log(f"  node {victim} stopped while its blocks were read: {self.damage_lines(victim)}")
            t2 = time.monotonic()
            self._restart_storage(victim, starts)
            self.include(victim)
            dt += (time.monotonic() - t2) + self.reconverge()
        log(f"  node {victim} after {starts[0]} start(s): {self.damage_lines(victim)}")
        return dt

    def damage_lines(self, victim: int) -> list[str]:
        text = (self.c.root / f"node{victim}" / "node.log").read_text(errors="replace")
        words = ("damaged", "kept aside", "rebuilt to", "Corrupt", "behind what")
        return [ln[-220:] for ln in text.splitlines() if any(w in ln for w in words)][-4:]

    def fault_wipe(self, victim: int) -> float:
        self.exclude(victim)
        self.kill(victim, signal.SIGTERM)
        shutil.rmtree(self.c.root / f"node{victim}" / "data" / "ledger")
        t = time.monotonic()
        self.start(victim)
        self.include(victim)
        return (time.monotonic() - t) + self.reconverge()

    def fault_full_disk(self, victim: int) -> float:
        """The victim's data directory moves onto a tmpfs with FULL_DISK_SPARE_BYTES to spare
        (root only); under bulk load it fills: the node must stop with the reason in its log and
        lose nothing. Healed by moving the data back to the real disk and starting it."""
        data = self.c.root / f"node{victim}" / "data"
        real = data.with_name("data.real")
        self.exclude(victim)
        self.kill(victim, signal.SIGTERM)
        used = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        os.replace(data, real)
        data.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used + FULL_DISK_SPARE_BYTES}", "tmpfs", str(data)],
                       check=True, capture_output=True, timeout=30)
        try:
            shutil.copytree(real, data, dirs_exist_ok=True)
            self.start(victim)
            self.include(victim)
            self.bulk.set()
            try:
                self.wait(f"node {victim} to stop on its full disk", lambda: (not self.alive(victim), None),
                          FULL_DISK_WAIT_S)
            finally:
                self.bulk.clear()
            self.exclude(victim)
            self.c.procs.pop(victim).wait()
            said = [ln[-200:] for ln in (self.c.root / f"node{victim}" / "node.log").read_text(
                errors="replace").splitlines() if "disk full" in ln or "No space" in ln]
            if not said:
                raise RuntimeError(f"node {victim} stopped without naming the full disk")
            log(f"  node {victim} stopped: {said[-1]}")
            shutil.rmtree(real)
            shutil.copytree(data, real)  # what it wrote before the disk filled is its store now
        finally:
            if self.alive(victim):  # it never stopped: it must not hold the tmpfs
                self.kill(victim, signal.SIGKILL)
            subprocess.run(["umount", str(data)], capture_output=True, timeout=30)
            data.rmdir()
            os.replace(real, data)
        t = time.monotonic()
        self.start(victim)
        self.include(victim)
        return (time.monotonic() - t) + self.reconverge()

    def rate(self, i: int) -> tuple[float, float]:
        """(blocks/s, records/s) committed by node i over one RATE_WINDOW_S window."""
        a, t = self.status(i), time.monotonic()
        time.sleep(RATE_WINDOW_S)  # a measurement window, not a wait for a condition
        b, dt = self.status(i), time.monotonic() - t
        return (b["height"] - a["height"]) / dt, (b["log_size"] - a["log_size"]) / dt

    def fault_one_down_rate(self, victim: int) -> float:
        """Block rate under bulk load with all nodes up, then with `victim` killed once the
        others skip its turns (docs/consensus.md, "A dead primary"; a node too old to show
        `skipped` is measured at once)."""
        watch = next(i for i in range(N) if i != victim)
        self.bulk.set()
        try:
            self.wait("a full mempool", lambda: (self.status(watch)["mempool"] >= BULK_BATCH, None), 30.0)
            healthy = self.rate(watch)
            self.exclude(victim)
            self.kill(victim, signal.SIGKILL)
            t = time.monotonic()
            self.wait(f"node {watch} to skip node {victim}'s turns",
                      lambda: (victim in self.status(watch).get("skipped", [victim]), None), SKIP_WAIT_S)
            skipped_after = time.monotonic() - t
            down = self.rate(watch)
        finally:
            self.bulk.clear()
        self.rates.append({"healthy_bps": healthy[0], "healthy_rps": healthy[1], "down_bps": down[0],
                           "down_rps": down[1], "skipped_after_s": skipped_after})
        log(f"  block rate: healthy {healthy[0]:.2f}/s ({healthy[1]:.0f} rec/s), node {victim} down "
            f"{down[0]:.2f}/s ({down[1]:.0f} rec/s) = {100 * down[0] / max(healthy[0], 1e-9):.0f}%; "
            f"its turns skipped {skipped_after:.1f} s after the kill")
        t = time.monotonic()
        self.start(victim)
        self.include(victim)
        return (time.monotonic() - t) + self.reconverge()

    def inject(self, kind: str) -> tuple[int, float]:
        p = self.primary()
        if kind == "kill-primary":
            victim = p
        else:
            victim = self.rng.choice([i for i in range(N) if i != p])
        fn = {"one-down-rate": self.fault_one_down_rate, "kill-random": self.fault_kill,
              "kill-primary": self.fault_kill, "sigstop": self.fault_sigstop,
              "partition": self.fault_partition, "full-disk": self.fault_full_disk,
              "flip-table": self.fault_flip, "wipe-ledger": self.fault_wipe}[kind]
        return victim, fn(victim)

    def restore(self) -> None:
        """After a failed cycle: undo whatever fault may still be on."""
        for i in list(self.stopped):
            if self.alive(i):
                os.kill(self.c.procs[i].pid, signal.SIGCONT)
        self.stopped.clear()
        for i in range(N):
            if not self.alive(i):
                self.c.procs.pop(i, None)
                try:
                    self._restart_storage(i)
                except RuntimeError as exc:
                    # what an operator would do: move the ledger aside so that the node re-syncs
                    ledger = self.c.root / f"node{i}" / "data" / "ledger"
                    log(f"  could not restart node {i} ({exc}); operator recovery: moving {ledger.name} aside")
                    self.recoveries.append(f"node {i}: {exc}; restarted with its ledger moved aside")
                    if ledger.exists():
                        ledger.rename(ledger.with_name(f"ledger.operator-aside-{time.monotonic_ns()}"))
                    try:
                        self.start(i)
                    except RuntimeError as exc2:
                        log(f"  could not restart node {i} even so: {str(exc2)[:300]}")
        try:
            self.set_faults({})
        except (OSError, RuntimeError) as exc:
            log(f"  could not clear faults: {exc}")
        with self.lock:
            self.excluded.clear()

    # -- checks ----------------------------------------------------------------

    def reachable(self) -> list[int]:
        out = []
        for i in range(N):
            try:
                if self.alive(i):
                    self.status(i)
                    out.append(i)
            except (OSError, ValueError):
                pass
        return out

    def check_records(self, ids: list[str], nodes: list[int]) -> tuple[int, int]:
        """(lost, duplicates): ids not committed on every node of `nodes` (after a bounded
        retry), and ids whose (height, leaf_index) differs between nodes."""
        def where(arg: tuple[int, str]) -> tuple[int, str, Any]:
            i, rid = arg
            try:
                code, doc = self.req(i, "GET", f"/v1/records/{rid}")
            except (OSError, ValueError):
                return i, rid, None
            if code == 200 and doc.get("status") == "committed":
                return i, rid, (doc["height"], doc["leaf_index"])
            return i, rid, None

        locs: dict[str, dict[int, Any]] = {rid: {} for rid in ids}
        todo = [(i, rid) for rid in ids for i in nodes]
        end = time.monotonic() + self.bound(30.0)
        with ThreadPoolExecutor(8) as pool:
            while todo:
                for i, rid, loc in pool.map(where, todo):
                    locs[rid][i] = loc
                todo = [(i, rid) for rid in ids for i in nodes if locs[rid].get(i) is None]
                if not todo or time.monotonic() > end:
                    break
                time.sleep(1.0)
        lost = sum(1 for rid in ids if any(locs[rid].get(i) is None for i in nodes))
        dups = sum(1 for rid in ids if len({v for v in locs[rid].values() if v is not None}) > 1)
        return lost, dups

    def check_forks(self, full: set[int], nodes: list[int]) -> int:
        """Heights (up to the lowest head) where some node's block hash differs from the first
        seen; nodes in `full` (their store was rebuilt) are checked again from height 1."""
        low = min(self.status(i)["height"] for i in nodes)
        forks: set[int] = set()

        def hashes(i: int) -> list[tuple[int, str]]:
            start = 1 if i in full else self.checked[i] + 1
            return [(h, self.block_hash(i, h)) for h in range(start, low + 1)]

        with ThreadPoolExecutor(N) as pool:
            per_node = list(pool.map(hashes, nodes))
        for i, pairs in zip(nodes, per_node):
            for h, bh in pairs:
                if self.ref.setdefault(h, bh) != bh:
                    forks.add(h)
            self.checked[i] = max(self.checked[i], low)
        return len(forks)

    def check_equivocations(self, nodes: list[int]) -> int:
        return sum(len(self.status_equiv(i)) for i in nodes)

    def status_equiv(self, i: int) -> list[Any]:
        code, doc = self.req(i, "GET", "/v1/equivocations")
        if code != 200:
            raise OSError(f"equivocations from node {i}: {code}")
        return doc["equivocations"]

    def checks(self, row: dict[str, Any], ids: list[str], full: set[int]) -> None:
        nodes = self.reachable()
        row["down"] = N - len(nodes)
        if row["down"]:
            row["failures"].append(f"check: {row['down']} node(s) not answering, checked on {nodes}")
        row["lost"], row["duplicates"] = self.check_records(ids, nodes)
        row["forks"] = self.check_forks(full, nodes)
        row["equivocations"] = self.check_equivocations(nodes)

    # -- the campaign ----------------------------------------------------------

    def run(self) -> None:
        log(f"starting {N} nodes in {self.c.root}")
        self.c.start_all()
        self.start_threads(self._client, CLIENT_THREADS)
        self.start_threads(self._bulk, BULK_THREADS)
        self.wait("ten acknowledged records", lambda: (len(self.acked) >= 10, len(self.acked)), 60.0)
        for kind in self.kinds:
            with self.lock:
                self.kind = kind
            times: list[float] = []
            victims: set[int] = set()
            failures: list[str] = []
            done = 0
            for cycle in range(self.cycles):
                if self.left() < RESERVE_S + (30.0 if kind in ("flip-table", "wipe-ledger") else 15.0):
                    log(f"{kind}: deadline near, skipping the remaining cycles")
                    break
                try:
                    victim, dt = self.inject(kind)
                    victims.add(victim)
                    times.append(dt)
                    log(f"{kind} cycle {cycle + 1}: node {victim}, reconverged in {dt:.2f} s")
                except (AssertionError, RuntimeError, OSError, ValueError, KeyError) as exc:
                    failures.append(f"cycle {cycle + 1}: {str(exc)[:300]}")
                    log(f"{kind} cycle {cycle + 1} FAILED: {str(exc)[:500]}")
                    self.restore()
                done += 1
            with self.lock:
                ids = [rid for k, rid in self.acked if k == kind]
            failures += [f"operator recovery: {r}" for r in self.recoveries]
            self.recoveries.clear()
            row: dict[str, Any] = {"kind": kind, "cycles": done, "acked": len(ids), "failures": failures}
            try:
                self.checks(row, ids, victims if kind in ("flip-table", "wipe-ledger") else set())
            except (AssertionError, OSError, ValueError, KeyError) as exc:
                failures.append(f"check: {str(exc)[:300]}")
                row.setdefault("lost", None)
                row.setdefault("duplicates", None)
                row.setdefault("forks", None)
                row.setdefault("equivocations", None)
                row.setdefault("down", None)
            row["median_s"] = statistics.median(times) if times else None
            row["max_s"] = max(times) if times else None
            self.results.append(row)
            print(line(row), flush=True)
        # every record acknowledged over the whole run (a later wipe must not lose earlier ones)
        with self.lock:
            self.kind = "final"
        self.stop_client.set()
        for t in self.threads:
            t.join(timeout=SUBMIT_TIMEOUT_S + 5)
        with self.lock:
            ids = [rid for _, rid in self.acked]
        row = {"kind": "all records, at the end", "cycles": sum(r["cycles"] for r in self.results),
               "acked": len(ids), "failures": [], "median_s": None, "max_s": None}
        try:
            self.checks(row, ids, set(range(N)))
        except (AssertionError, OSError, ValueError, KeyError) as exc:
            row["failures"].append(f"check: {str(exc)[:300]}")
            for k in ("lost", "duplicates", "forks", "equivocations", "down"):
                row.setdefault(k, None)
        self.results.append(row)
        print(line(row), flush=True)


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def line(r: dict[str, Any]) -> str:
    text = (f"{r['kind']}: cycles={r['cycles']} acked={r['acked']} lost={fmt(r['lost'])} forks={fmt(r['forks'])} "
            f"duplicates={fmt(r['duplicates'])} equivocations={fmt(r['equivocations'])} "
            f"reconverge_median_s={fmt(r['median_s'])} reconverge_max_s={fmt(r['max_s'])} down_at_check={fmt(r['down'])}")
    if r["failures"]:
        text += f" failures={len(r['failures'])}: " + " | ".join(r["failures"])
    return text


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| fault | cycles | acked | lost | forks | duplicates | equivocations | reconverge median (s) "
           "| reconverge max (s) | nodes down at check | failures |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['kind']} | {r['cycles']} | {r['acked']} | {fmt(r['lost'])} | {fmt(r['forks'])} | "
                   f"{fmt(r['duplicates'])} | {fmt(r['equivocations'])} | {fmt(r['median_s'])} | "
                   f"{fmt(r['max_s'])} | {fmt(r['down'])} | {len(r['failures'])} |")
    return "\n".join(out)


def rate_table(rates: list[dict[str, float]]) -> str:
    """Medians over the one-down-rate cycles (each cycle measures both, back to back)."""
    med = {k: statistics.median(r[k] for r in rates) for k in rates[0]}
    ratios = [r["down_bps"] / r["healthy_bps"] for r in rates if r["healthy_bps"] > 0]
    return "\n".join([
        "| block rate under bulk load (median of %d cycles) | blocks/s | records/s |" % len(rates),
        "|---|---:|---:|",
        f"| all 4 nodes up | {med['healthy_bps']:.2f} | {med['healthy_rps']:.0f} |",
        f"| one node down (its turns skipped) | {med['down_bps']:.2f} | {med['down_rps']:.0f} |",
        f"| one down / healthy, blocks/s (median of per-cycle ratios) | "
        f"{statistics.median(ratios) if ratios else float('nan'):.2f} | |",
        f"| seconds from the kill until its turns were skipped | {med['skipped_after_s']:.1f} | |",
    ])


def ok(rows: list[dict[str, Any]]) -> bool:
    return bool(rows) and all(r["failures"] == [] and all(r[k] == 0 for k in ("lost", "forks", "duplicates",
                                                                             "equivocations", "down")) for r in rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=2, help="cycles per fault kind (default 2)")
    p.add_argument("--seconds", type=float, default=300.0, help="total deadline in seconds (default 300)")
    p.add_argument("--base-port", type=int, default=24700,
                   help="first of 8 ports on 127.0.0.1 (default 24700; 0 picks free ports)")
    p.add_argument("--seed", type=int, default=1, help="seed for choosing victims (default 1)")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"comma-separated fault kinds to run, in order (default: all of {','.join(KINDS)})")
    args = p.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(1)
    signal.signal(signal.SIGTERM, on_term)

    started = time.monotonic()
    campaign: Campaign | None = None
    with tempfile.TemporaryDirectory(prefix="ledgernode-faults-") as tmp:
        try:
            campaign = Campaign(Path(tmp), args.cycles, args.seconds, args.base_port, args.seed, kinds)
            campaign.run()
        except (AssertionError, RuntimeError, OSError) as exc:
            log(f"campaign aborted: {exc}")
        finally:
            if campaign is not None:
                campaign.stop_everything()
    rows = campaign.results if campaign is not None else []
    elapsed = time.monotonic() - started
    print()
    print(f"Fault campaign {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: 4 nodes on 127.0.0.1, "
          f"--cycles {args.cycles}, {elapsed:.0f} s of a {args.seconds:.0f} s deadline, "
          f"submissions not acknowledged (errors, timeouts; never retried) "
          f"{campaign.client_errors if campaign else '-'}, nodes that stopped by themselves and were started "
          f"again {campaign.restarts if campaign else '-'}")
    print()
    print(table(rows))
    if campaign is not None and campaign.rates:
        print()
        print(rate_table(campaign.rates))
    good = ok(rows)
    print()
    print("result: " + ("PASS" if good else "FAIL"))
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
