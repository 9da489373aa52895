"""Record signatures: checked once per node, off the event loop (docs/performance.md).

Admission decodes envelopes on the event loop and verifies their signatures in
chunks on a thread pool (libsodium releases the GIL). Records of a block this
node never admitted are verified ahead the same way and kept for the height
(`verified`, at most VERIFIED_CACHE_MAX), so judging the block costs no
signature on the consensus step. A certified block (its QC checked) is judged
without record signatures: Q validators, f + 1 of them honest, checked them
before they voted (docs/consensus.md, catch-up); keys and roles are checked
either way.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from .errors import InvalidInput
from .members import Members
from .mempool import Mempool
from .records import Envelope, check_registered, check_signer, decode_envelope

VERIFY_CHUNK = 128  # records per thread-pool task
VERIFIED_CACHE_MAX = 100_000
_E = TypeVar("_E", bound=BaseException)


def kept(exc: _E) -> _E:
    """`exc` as kept in a result list: without its traceback and chained exceptions,
    whose frames reference that list back and would make a cycle only the (rarely
    run) collector frees."""
    exc.__context__ = exc.__cause__ = None
    return exc.with_traceback(None)


def _check_signers(envs: list[Envelope], members: Members) -> list[InvalidInput | None]:
    """Runs on a worker thread: check_signer for each envelope (None when it passes)."""
    out: list[InvalidInput | None] = []
    for env in envs:
        try:
            check_signer(env, members)
            out.append(None)
        except InvalidInput as exc:
            out.append(kept(exc))
    return out


class Verification:
    def __init__(self, members: Callable[[], Members], mempool: Mempool, threads: int,
                 count: Callable[[str, int], None]) -> None:
        """`members`: who may sign at the committed head, asked anew for each batch."""
        self.members, self.mempool, self.count = members, mempool, count
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="verify")
        self.verified: dict[bytes, Envelope] = {}  # block records verified off-loop, this height

    async def verify_ahead(self, payload: tuple[bytes, ...]) -> None:
        """Verify on the worker threads the records we never admitted ourselves, for
        `envelopes` to find in `self.verified`."""
        unknown = [raw for raw in payload if self.mempool.by_raw(raw) is None and raw not in self.verified]
        if not unknown:
            return
        for raw, result in zip(unknown, await self.decode_and_verify(unknown)):
            if isinstance(result, Envelope) and len(self.verified) < VERIFIED_CACHE_MAX:
                self.verified[raw] = result

    async def decode_and_verify(self, raws: list[bytes]) -> list[Envelope | InvalidInput]:
        """Decode here, verify signatures in chunks on the thread pool (libsodium frees the GIL)."""
        decoded: list[Envelope | InvalidInput] = []
        members = self.members()
        for raw in raws:
            try:
                decoded.append(decode_envelope(raw, members))
            except InvalidInput as exc:
                decoded.append(kept(exc))
        envs = [(i, e) for i, e in enumerate(decoded) if isinstance(e, Envelope)]
        self.count("signatures_checked", len(envs))
        loop = asyncio.get_running_loop()
        chunks = [envs[k: k + VERIFY_CHUNK] for k in range(0, len(envs), VERIFY_CHUNK)]
        results = await asyncio.gather(*(loop.run_in_executor(self.pool, _check_signers, [e for _, e in c],
                                                               members) for c in chunks))
        for chunk, verdicts in zip(chunks, results):
            for (i, _), verdict in zip(chunk, verdicts):
                if verdict is not None:
                    decoded[i] = verdict
        return decoded

    def envelopes(self, payload: tuple[bytes, ...], certified: bool = False) -> tuple[Envelope, ...]:
        """Decode a block's envelopes; verify signatures only for records nobody verified yet,
        and not at all in a `certified` block: a QC means Q validators, f + 1 of them honest,
        checked every signature in it (docs/consensus.md, catch-up). Keys and roles are
        checked either way."""
        out = []
        members = self.members()
        for raw in payload:
            env = self.mempool.by_raw(raw) or self.verified.get(raw)
            if env is None:
                env = decode_envelope(raw, members)
                if certified:
                    check_registered(env, members)
                else:
                    self.count("signatures_checked", 1)
                    check_signer(env, members)
            out.append(env)
        return tuple(out)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
