"""Ed25519 verify rate here: `cryptography` (OpenSSL) against PyNaCl (libsodium),
on one thread and on as many threads as there are cores, median of 3 runs each.

    python scripts/bench_crypto.py
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from typing import Callable

import nacl.bindings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MESSAGES = 4_000
RUNS = 3


def rate(verify: Callable[[bytes, bytes], None], msgs: list[bytes], sigs: list[bytes], threads: int) -> float:
    def work() -> None:
        for m, s in zip(msgs, sigs):
            verify(s, m)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * len(msgs) / (time.perf_counter() - start)


def main() -> None:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    msgs = [os.urandom(200) for _ in range(MESSAGES)]
    sigs = [key.sign(m) for m in msgs]
    libs = {
        "cryptography": lambda s, m: pub.verify(s, m),
        "pynacl": lambda s, m: nacl.bindings.crypto_sign_open(s + m, raw),
    }
    cores = os.cpu_count() or 1
    out = {"cores": cores}
    for name, fn in libs.items():
        for threads in sorted({1, cores}):
            out[f"{name}_{threads}_thread_per_s"] = round(statistics.median(
                rate(fn, msgs, sigs, threads) for _ in range(RUNS)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
