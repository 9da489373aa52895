"""Instructions per `decode_envelope`, counted by callgrind (repeatable whatever
else the machine is doing, unlike a timing):

    python scripts/count_decode.py

Runs this file twice under `valgrind --tool=callgrind`, decoding 0 and then N
pre-signed evidence.notarize envelopes, and prints the difference per envelope.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

N = 2_000


def _decode(count: int) -> None:
    from ledgernode import crypto, devnet, genesis
    from ledgernode.bench import presign
    from ledgernode.records import decode_envelope

    with tempfile.TemporaryDirectory() as tmp:
        net = devnet.prepare(Path(tmp), 4, 39_900)
        gen = genesis.parse((Path(tmp) / "genesis.json").read_bytes())
        raws = presign(crypto.load_private_key(Path(tmp) / net.clients[0].key_file), net.chain_id, N, "c")
    for raw in raws[:count]:
        decode_envelope(raw, gen)


def _instructions(count: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         os.path.realpath(sys.executable), __file__, "--child", str(count)],
        capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        _decode(int(sys.argv[2]))
        return 0
    per = (_instructions(N) - _instructions(0)) / N
    print(f"decode_envelope: {per:,.0f} instructions per envelope ({N:,} envelopes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
