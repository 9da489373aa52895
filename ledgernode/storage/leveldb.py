"""LevelDB backend: the only module that imports plyvel (docs/storage.md, "Backend interface").

LevelDB's `LOCK` file keeps a second process out of the directory but says
nothing about who holds it, so the owner also writes its pid to `owner.pid`
beside `LOCK` once the lock is its own, and removes it on close. A refused open
reads that file to name the holder. LevelDB ignores files whose names it does
not use, so the pid file never disturbs the database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import plyvel

from ..errors import StoreCorrupt, StoreLocked, StoreUnwritable

WRITE_BUFFER_BYTES = 64 << 20  # larger memtable: about 40% less compaction CPU on 1M-leaf appends
LRU_CACHE_BYTES = 32 << 20
BLOOM_FILTER_BITS = 10  # per key: makes 'is this record committed?' misses cheap
OWNER_FILE = "owner.pid"  # beside LevelDB's LOCK: the pid of the process holding it
CURRENT_FILE = "CURRENT"  # names LevelDB's live manifest: a store without it has lost its table list
PID_FILE_MAX_BYTES = 32  # a pid is at most 7 digits on Linux; anything longer is not ours


def _is_lock_error(exc: plyvel.IOError) -> bool:
    """LevelDB words a held lock as "IO error: lock DIR/LOCK: <reason>" (reason: EAGAIN from
    fcntl across processes, "already held by process" within one)."""
    return "/LOCK: " in _message(exc)


def _is_leveldb_file(name: str) -> bool:
    return name.endswith((".ldb", ".sst", ".log")) or name.startswith("MANIFEST-")


def _message(exc: plyvel.Error) -> str:
    raw = exc.args[0] if exc.args else ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def owner_pid(path: str | Path) -> int | None:
    """The pid in DIR/owner.pid if that process is alive, else None."""
    try:
        with (Path(path) / OWNER_FILE).open("rb") as f:
            text = f.read(PID_FILE_MAX_BYTES).decode("ascii").strip()
        pid = int(text)
    except (OSError, ValueError):  # ValueError: UnicodeDecodeError too
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return None  # left by a holder killed before it could remove it
    except PermissionError:
        pass  # exists, owned by another user
    return pid


def locked_message(path: str | Path) -> str:
    pid = owner_pid(path)
    if pid is None:
        return f"another node process holds {path}"
    if pid == os.getpid():
        return f"this process already holds {path} (pid {pid}); close that store first"
    return f"another node process holds {path} (pid {pid}); stop it or give this node another data_dir"


class LevelKV:
    def __init__(self, path: str | Path, salvage: bool = False) -> None:
        """`salvage`: open a damaged store to read what it still holds (storage/repair.py):
        LevelDB's own repair first rebuilds its manifest from every table and log file it
        finds, and no check refuses the open; the reader verifies every checksum instead."""
        Path(path).mkdir(parents=True, exist_ok=True)
        self._owner = Path(path) / OWNER_FILE
        if not salvage and not (Path(path) / CURRENT_FILE).is_file() and any(
                _is_leveldb_file(p.name) for p in Path(path).iterdir()):
            # LevelDB would start a fresh manifest here and delete every table as obsolete
            raise StoreCorrupt(f"LevelDB at {path} is damaged: its {CURRENT_FILE} file is missing "
                               "while its table and log files are there")
        try:
            if salvage:
                plyvel.repair_db(str(path), paranoid_checks=False)
            self._db = plyvel.DB(
                str(path),
                create_if_missing=not salvage,
                paranoid_checks=not salvage,
                write_buffer_size=WRITE_BUFFER_BYTES,
                lru_cache_size=LRU_CACHE_BYTES,
                bloom_filter_bits=BLOOM_FILTER_BITS,
            )
        except plyvel.IOError as exc:
            if _is_lock_error(exc):
                raise StoreLocked(locked_message(path)) from None
            raise StoreLocked(f"cannot open LevelDB at {path}: {_message(exc)}") from None
        except plyvel.CorruptionError as exc:  # a damaged table, log or manifest
            raise StoreCorrupt(f"LevelDB at {path} is damaged: {_message(exc)}") from None
        self.path = Path(path)
        # Called (on the reading thread) with the error before it is raised, so the node
        # learns of damage found by any reader: an API answer, catch-up, the scrub.
        self.on_corrupt: Callable[[StoreCorrupt], None] | None = None
        try:
            self._write_owner()
        except OSError:
            self._db.close()
            raise

    def _write_owner(self) -> None:
        """Only after LevelDB granted the lock: a refused opener must never overwrite the holder's pid.
        Via a temporary file and rename, so a reader never sees half a pid."""
        tmp = self._owner.with_name(OWNER_FILE + ".tmp")
        tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
        os.replace(tmp, self._owner)

    # Only CorruptionError means damaged bytes. An IOError (disk full, too many open
    # files) is a condition of the host: it stops the node as it is, and must never
    # make it move a good store aside.
    def _corrupt(self, exc: plyvel.Error) -> StoreCorrupt:
        err = StoreCorrupt(f"LevelDB at {self.path} is damaged: {_message(exc)}")
        if self.on_corrupt is not None:
            self.on_corrupt(err)
        return err

    def get(self, key: bytes, verify: bool = False) -> bytes | None:
        try:
            return self._db.get(key, verify_checksums=verify)
        except plyvel.CorruptionError as exc:  # a checksum mismatch in a table, found on read
            raise self._corrupt(exc) from None

    def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes], sync: bool) -> None:
        try:
            with self._db.write_batch(sync=sync, transaction=True) as batch:
                for key, value in puts:
                    batch.put(key, value)
                for key in deletes:
                    batch.delete(key)
        except plyvel.CorruptionError as exc:  # a background compaction met damage: every write fails now
            raise self._corrupt(exc) from None
        except plyvel.IOError as exc:  # the host's condition, never damage: nothing is moved aside
            raise StoreUnwritable(f"cannot write LevelDB at {self.path}: {_message(exc)} "
                                  "(is the disk full?)") from None

    def scan(self, start: bytes, stop: bytes, verify: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """`verify`: check every block's checksum (the scrub), and keep it out of the cache."""
        try:
            with self._db.iterator(start=start, stop=stop, verify_checksums=verify, fill_cache=not verify) as it:
                yield from it
        except plyvel.CorruptionError as exc:
            raise self._corrupt(exc) from None

    def close(self) -> None:
        if not self._db.closed:
            # Removed while the lock is still ours: once LevelDB lets go, the next owner may
            # already have written its own pid here.
            self._owner.unlink(missing_ok=True)
            self._db.close()
