"""Where sharded scoring runs: this process, a local Dask cluster, or a running scheduler, as `ClusterSpec`; the CLI's
``--cluster`` / ``--scheduler`` parsed (`parse_cluster`); the clusters a browser user may pick by name
(`cluster_choices`, `resolve_cluster`: the administrator's, never an address); and `dask_client`, which opens one with
a bounded handshake. A leaf module (no models, no methods), so whatever needs a cluster imports it without a cycle."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator

from .errors import InfluenceError
from .grads import Progress

ENV_SCHEDULER = "INFLUENCE_DASK_SCHEDULER"
_SCHEDULER_RE = re.compile(r"^(tcp|tls|ws|wss|inproc|ucx)://[^\s/]+$")


@dataclass(frozen=True)
class ClusterSpec:
    """Where sharded scoring runs: ``kind`` "process" (this process, shard after shard), "local" (a `LocalCluster`
    of ``workers`` processes with ``threads`` threads each), "local-cuda" (one worker per GPU, or ``workers`` GPUs)
    or "scheduler" (a running Dask scheduler at ``address``)."""

    kind: str = "process"
    workers: int | None = None
    threads: int = 1
    address: str | None = None
    name: str | None = None  # the administrator's name for it: what the app shows instead of the address
    connect_timeout_s: float = 10.0  # connect and Dask's handshake together
    tls: tuple[str | None, str | None, str | None] | None = None  # CA, certificate, key files for a tls:// scheduler

    def describe(self) -> str:
        if self.name is not None:
            return f"Dask cluster '{self.name}'"
        if self.kind == "local":
            return f"local Dask cluster of {self.workers} worker(s) × {self.threads} thread(s)"
        if self.kind == "local-cuda":
            return f"local CUDA Dask cluster ({self.workers or 'one worker per'} GPU)"
        if self.kind == "scheduler":
            return f"Dask scheduler at {self.address}"
        return "this process"


def parse_cluster(cluster: str | None = None, scheduler: str | None = None, *, threads: int = 1,
                  environ: dict | None = None) -> ClusterSpec:
    """The `ClusterSpec` for the CLI's ``--cluster local:N`` / ``local-cuda[:N]`` / ``none`` and ``--scheduler
    tcp://HOST:PORT``; with neither, ``$INFLUENCE_DASK_SCHEDULER`` when set, else this process. One-line errors."""
    environ = os.environ if environ is None else environ
    if cluster and scheduler:
        raise InfluenceError("give --cluster or --scheduler, not both")
    if scheduler is None and cluster is None:
        scheduler = environ.get(ENV_SCHEDULER) or None
    if threads < 1:
        raise InfluenceError(f"threads per worker must be at least 1, got {threads}")
    if scheduler:
        address = scheduler.strip()
        if "://" not in address:
            address = "tcp://" + address
        if not _SCHEDULER_RE.match(address) or not re.search(r":\d+$", address) and not address.startswith("inproc://"):
            raise InfluenceError(f"a Dask scheduler address looks like tcp://HOST:PORT, not '{scheduler}'")
        return with_server_settings(ClusterSpec("scheduler", address=address, threads=threads))
    text = (cluster or "none").strip().lower()
    if text in ("none", "process", "off", ""):
        return ClusterSpec("process", threads=threads)
    m = re.fullmatch(r"(local|local-cuda)(?::(\d+))?", text)
    if not m:
        raise InfluenceError(f"--cluster takes local:N (N worker processes), local-cuda[:N] or none, not '{cluster}'")
    n = int(m.group(2)) if m.group(2) else None
    if n is not None and n < 1:
        raise InfluenceError(f"a local cluster needs at least 1 worker, got {n}")
    if m.group(1) == "local":
        return ClusterSpec("local", workers=n or max(1, (os.cpu_count() or 1) // threads), threads=threads)
    return ClusterSpec("local-cuda", workers=n, threads=threads)


@contextmanager
def dask_client(spec: ClusterSpec, progress: Progress | None = None) -> Iterator[Any]:
    """A `distributed.Client` for ``spec`` (None for "process"); a cluster started here is closed on exit. While a
    scheduler is being reached, ``progress`` hears of it twice a second (a job's Stop raises from there)."""
    if spec.kind == "process":
        yield None
        return

    from distributed import Client, LocalCluster

    if spec.kind == "scheduler":
        client = _connect(spec, progress)
        try:
            yield client
        finally:
            client.close()
        return
    if spec.kind == "local-cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise InfluenceError("--cluster local-cuda needs dask-cuda (pip install dask-cuda) and a CUDA GPU") from None
        kwargs = {"CUDA_VISIBLE_DEVICES": list(range(spec.workers))} if spec.workers else {}
        cluster = LocalCUDACluster(threads_per_worker=spec.threads, dashboard_address=None, silence_logs=logging.ERROR, **kwargs)
    else:
        cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=spec.threads, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def with_server_settings(spec: ClusterSpec, config: Any = None) -> ClusterSpec:
    """A scheduler with the administrator's connect timeout and, for tls://, TLS files (``server.toml``): the CLI's
    --scheduler and $INFLUENCE_DASK_SCHEDULER reach a cluster the way the app's named clusters do."""
    from .server_config import server_config

    config = server_config() if config is None else config
    tls = (config.dask_tls_ca_file, config.dask_tls_cert_file, config.dask_tls_key_file)
    return replace(spec, connect_timeout_s=float(config.dask_connect_timeout_s),
                   tls=tls if spec.address.startswith("tls://") and any(tls) else None)


THIS_PROCESS = "this process"
FROM_THE_ENVIRONMENT = "default (from the environment)"


def cluster_choices(config: Any = None, environ: dict | None = None) -> dict[str, ClusterSpec]:
    """The clusters a browser user may pick, by name: this process, ``local:N`` up to the administrator's
    ``max_local_workers``, ``$INFLUENCE_DASK_SCHEDULER`` and the administrator's named ``clusters`` (a `ServerConfig`;
    default: `server_config()`), each with the configured connect timeout and, for tls://, TLS files."""
    from .server_config import server_config

    config = server_config() if config is None else config
    environ = os.environ if environ is None else environ

    def named(name: str, address: str) -> ClusterSpec:
        try:
            spec = parse_cluster(scheduler=address, environ={})
        except InfluenceError as err:
            raise InfluenceError(f"server config: Dask cluster '{name}': {err}") from None
        return replace(with_server_settings(spec, config), name=name)

    choices = {THIS_PROCESS: ClusterSpec("process")}
    choices.update({f"local:{n}": ClusterSpec("local", workers=n) for n in range(1, config.max_local_workers + 1)})
    if environ.get(ENV_SCHEDULER):
        choices[FROM_THE_ENVIRONMENT] = named(FROM_THE_ENVIRONMENT, environ[ENV_SCHEDULER])
    for name, address in config.clusters.items():
        choices.setdefault(name, named(name, address))
    return choices


def resolve_cluster(name: str | None, config: Any = None, environ: dict | None = None) -> ClusterSpec:
    """The cluster a browser user picked by ``name`` (None: this process); anything else, an address above all, is
    refused with one line before any connection is made."""
    choices = cluster_choices(config, environ)
    spec = choices.get(THIS_PROCESS if name is None else name)
    if spec is None:
        shown = repr(str(name))[:80]
        raise InfluenceError(f"{shown} is not a Dask cluster this server offers; choose one of: {', '.join(choices)}")
    return spec


def security(spec: ClusterSpec) -> Any:
    """Dask's `Security` for a tls:// scheduler from the administrator's CA, certificate and key files (None
    otherwise: Dask's own configuration applies)."""
    if spec.tls is None:
        return None
    from distributed.security import Security

    ca, cert, key = spec.tls
    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


def _connect(spec: ClusterSpec, progress: Progress | None) -> Any:
    """A `Client` of the scheduler at ``spec.address`` within ``spec.connect_timeout_s`` as a whole, or one line.
    Dask's own timeout covers the TCP connect but not its handshake, so a port that accepts and never answers (not a
    Dask scheduler) would hang for good: the handshake is tried first under a bound, and the caller waits at most the
    timeout (``progress`` may raise to stop waiting); the attempt then ends too (a client made meanwhile is closed)."""
    from distributed import Client
    from distributed.comm import connect

    timeout = spec.connect_timeout_s
    sec = security(spec)
    lock, box, gone = threading.Lock(), {}, threading.Event()  # gone: the caller stopped waiting
    deadline = time.monotonic() + timeout

    async def handshake() -> None:
        args = sec.get_connection_args("client") if sec is not None else {}
        task = asyncio.ensure_future(connect(spec.address, timeout=timeout, **args))
        while not task.done():
            if gone.is_set() or time.monotonic() >= deadline:
                raise TimeoutError("no Dask handshake in time")  # asyncio.run cancels the attempt and its socket
            await asyncio.wait({task}, timeout=0.25)
        await task.result().close()

    def attempt() -> None:
        try:
            asyncio.run(handshake())
            client = Client(spec.address, timeout=timeout, security=sec, set_as_default=False)
        except BaseException as err:  # noqa: BLE001 - reported by the waiting thread
            with lock:
                box["error"] = err
            return
        with lock:
            if not gone.is_set():
                box["client"] = client
                return
        client.close()

    thread = threading.Thread(target=attempt, name="dask-connect", daemon=True)
    thread.start()
    stopped = True  # until the wait ends without progress raising
    try:
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(min(0.5, max(deadline - time.monotonic(), 0.0)))
            if thread.is_alive() and progress is not None:
                progress(0.0, f"connecting to {spec.describe()}")
        stopped = False
    finally:
        with lock:
            gone.set()
            client, error = box.get("client"), box.get("error")
        if client is not None and stopped:  # stopped just as the client arrived
            client.close()
    if client is not None:
        return client
    if error is None or isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        raise InfluenceError(f"{spec.describe()} did not answer as a Dask scheduler within {timeout:g} s; "
                             "ask the server's administrator to check its address")
    reason = _one_line(error)
    if spec.name is not None:  # the app names a cluster; its address stays the administrator's
        reason = reason.replace(spec.address, "its address").replace(spec.address.split("://", 1)[1], "its address")
    if spec.address.startswith("tls://") and spec.tls is None:
        reason += "; a tls:// cluster needs dask_tls_ca_file, dask_tls_cert_file and dask_tls_key_file in server.toml"
    raise InfluenceError(f"cannot reach {spec.describe()}: {reason}")


def _one_line(err: BaseException) -> str:
    """An exception as one line for the user: its type and the first line of its message."""
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"
