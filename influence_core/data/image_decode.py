"""Decoding an image zip's members a chunk at a time in a bounded pool of workers (issue 18 §3).

The zip is read in the calling thread (reading is cheap; the archive never leaves it); each chunk's bytes go to a
worker that decodes them into one uint8 N×H×W×C array. Chunks come back in the zip's order whatever the pool, so
the pixels are the serial path's bit for bit and an unreadable image raises the same one-line error as there (the
first one in order). At most ``2 × workers`` chunks are in flight: memory stays a few chunks, not the zip.

Threads suffice where PIL's C code dominates (decoding and resizing photos: PIL releases the GIL there); small
images spend most of their time in Python under the GIL, where only worker processes run in parallel (started by
the "forkserver" method: never a fork of a server's threads; each pays one import of this package).
bench/results/e2e.md measures both. The worker count is the server's ``decode_workers`` (`server_config`), capped at
the machine's CPU count; 1 decodes in the calling thread.
"""

from __future__ import annotations

import multiprocessing
import os
import zipfile
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Callable, Iterator, Sequence

import numpy as np

from ..errors import InfluenceError

POOLS = ("threads", "processes")


def decode_pool(workers: int | None = None, pool: str | None = None) -> tuple[int, str]:
    """(workers, pool kind): the given ones, else the server's ``decode_workers`` and ``decode_pool``; the workers
    capped at the CPU count, at least 1."""
    from ..server_config import server_config

    config = server_config()
    workers = config.decode_workers if workers is None else workers
    pool = config.decode_pool if pool is None else pool
    if pool not in POOLS:
        raise InfluenceError(f"decode_pool must be one of {', '.join(POOLS)}, not {str(pool)[:20]!r}")
    return max(1, min(int(workers), os.cpu_count() or 1)), pool


def decode_chunk(decode: Callable[[bytes, str], np.ndarray], items: Sequence[tuple[bytes, str]]) -> np.ndarray:
    """One chunk: ``decode(data, name)`` of each (data, name), stacked (a worker's task; picklable)."""
    return np.stack([decode(data, name) for data, name in items])


def _pool(kind: str, workers: int) -> Executor:
    if kind == "threads":
        return ThreadPoolExecutor(workers, thread_name_prefix="decode")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["influence_core.data.uploads"])  # imported once by the server, not per worker
    return ProcessPoolExecutor(workers, mp_context=context)


def decoded_chunks(archive: zipfile.ZipFile, members: Sequence[zipfile.ZipInfo],
                   decode: Callable[[bytes, str], np.ndarray], batch: int, workers: int | None = None,
                   pool: str | None = None) -> Iterator[np.ndarray]:
    """uint8 arrays of ``members`` decoded by ``decode(data, name)``, in order, with at most ``batch`` images in
    memory (decoded or in flight, besides the one given out): chunks of ``batch`` in the calling thread, or of
    ``batch / (2 · workers)`` decoded by ``workers`` at once (``pool``: "threads" or "processes"; None: the
    server's settings, `decode_pool`; a process pool needs ``decode`` picklable, e.g. a `functools.partial` of a
    module-level function)."""
    workers, pool = decode_pool(workers, pool)
    chunk = batch if workers == 1 else max(1, -(-batch // (2 * workers)))
    spans = (members[lo : lo + chunk] for lo in range(0, len(members), chunk))

    def items(span):
        return [(archive.read(m), m.filename) for m in span]

    if workers <= 1:
        for span in spans:
            yield decode_chunk(decode, items(span))
        return
    executor = _pool(pool, workers)
    try:
        pending: deque = deque()
        for span in spans:
            pending.append(executor.submit(decode_chunk, decode, items(span)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # also when the consumer stops early or a chunk failed: nothing left running
        executor.shutdown(wait=True, cancel_futures=True)
