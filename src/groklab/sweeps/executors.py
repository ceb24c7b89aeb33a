"""Executors: run :class:`PointTask` s somewhere and hand back results as they finish.

Both have the same small surface, which the runner drives: ``capacity`` (points that run at
once), ``submit(task)``, ``poll(timeout)`` -> finished ``(task, result or exception)`` pairs,
``interrupt()`` (ask running points to checkpoint and stop) and ``close(force)``.

* :class:`LocalExecutor`: a ``spawn`` process pool on this machine.
* :class:`RayExecutor`: Ray tasks, on a cluster (``address``) or a local runtime bound to
  127.0.0.1 that is shut down on close. Tasks are retried (``max_retries``) when a worker dies.
  A cluster's nodes need groklab installed and the sweep directory on a shared filesystem.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from groklab.sweeps.spec import SweepError
from groklab.sweeps.worker import BatchTask, PointResult, PointTask, execute_task, expand_outcome, init_local_worker

__all__ = [
    "EXECUTORS",
    "LocalExecutor",
    "RayExecutor",
    "WorkerLost",
    "check_address",
    "check_executor_options",
    "cpu_cores",
    "make_executor",
    "threads_per_point",
]

EXECUTORS = ("local", "ray")

Finished = list[tuple[PointTask, "PointResult | BaseException"]]


class WorkerLost(RuntimeError):
    """The process running a point died (the local pool breaks as a whole; the runner resubmits)."""


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_point(workers: int, cores: int | None = None) -> int:
    """Torch threads per point so that workers x threads = cores (at least 1)."""
    return max(1, (cores or cpu_cores()) // max(1, workers))


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int) -> None:
        self.capacity = workers
        self._futures: dict[Future[Any], PointTask | BatchTask] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.capacity,
            mp_context=mp.get_context("spawn"),
            initializer=init_local_worker,
            initargs=(os.getpid(),),
        )
        pool.submit(int)  # start the workers now: their imports overlap with the runner's planning
        return pool

    @property
    def running(self) -> int:
        return len(self._futures)

    def submit(self, task: PointTask | BatchTask) -> None:
        self._futures[self._pool.submit(execute_task, task)] = task

    def poll(self, timeout: float) -> Finished:
        if not self._futures:
            return []
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        out: Finished = []
        broken = False
        for fut in done:
            task = self._futures.pop(fut)
            exc = fut.exception()
            if isinstance(exc, BrokenProcessPool):
                broken = True
                out += expand_outcome(task, WorkerLost(f"worker process died ({exc})"))
            else:
                out += expand_outcome(task, exc if exc is not None else fut.result())
        if broken:  # every pending future of a broken pool fails; start a fresh pool for the rest
            for fut, task in list(self._futures.items()):
                fut.cancel()
                out += expand_outcome(task, WorkerLost("worker pool broke while this point was queued"))
            self._futures.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return out

    def interrupt(self) -> None:
        for pid in list(getattr(self._pool, "_processes", None) or {}):
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def close(self, force: bool = False) -> None:
        if force:
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                proc.terminate()
        self._pool.shutdown(wait=not force, cancel_futures=True)


def _split_address(address: str) -> tuple[str, int]:
    rest = address.split("://", 1)[-1]
    host, _, port_s = rest.rpartition(":")
    if not host:
        host, port_s = rest, ("10001" if address.startswith("ray://") else "6379")
    try:
        return host.strip("[]"), int(port_s)
    except ValueError:
        raise SweepError(f"--address {address}: expected HOST:PORT") from None


def _is_loopback(address: str) -> bool:
    if address == "auto":
        return False
    host = _split_address(address)[0]
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _prefer_loopback(address: str | None) -> None:
    """Make Ray use the loopback address for this node, so that every process of a local runtime
    binds 127.0.0.1 and a head started on 127.0.0.1 is reached there rather than at the machine's
    routable address. Ray reads this when first imported: call before any ``import ray``."""
    if address is None or _is_loopback(address):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def check_address(address: str, timeout: float = 3.0) -> None:
    """Refuse an address where no Ray cluster answers, within ``timeout`` (``ray.init`` would
    retry for much longer). A TCP connection alone proves little (a proxy may accept anything),
    so the Ray GCS is asked for its cluster id over gRPC; any answer from Ray itself counts, an
    authentication refusal included."""
    if address == "auto":
        return
    host, port = _split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise SweepError(f"--address {address}: no Ray cluster reachable ({e.strerror or e})") from None
    if address.startswith("ray://"):
        return  # a Ray Client server, not the GCS: the TCP check is what we can do cheaply
    _prefer_loopback(address)
    try:
        import grpc  # comes with Ray; importing it does not import ray (whose settings we may still set)
    except ImportError:
        return  # RayExecutor reports that Ray is missing
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        # GetClusterIdRequest is an empty message: its encoding is b"".
        get_cluster_id = channel.unary_unary(
            "/ray.rpc.NodeInfoGcsService/GetClusterId",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            get_cluster_id(b"", timeout=timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                # The cluster uses token authentication: have ray.init send this machine's Ray
                # token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token).
                os.environ.setdefault("RAY_AUTH_MODE", "token")
            elif e.code() != grpc.StatusCode.PERMISSION_DENIED:
                detail = (e.details() or "").splitlines()[0][:80] if e.details() else ""
                raise SweepError(
                    f"--address {address}: no Ray cluster answers there ({e.code().name}: {detail})"
                ) from None


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, threads: int, max_retries: int = 2, workers: int | None = None) -> None:
        try:
            _prefer_loopback(address)
            import ray
        except ImportError:
            raise SweepError("the ray executor needs Ray: pip install 'groklab[ray]'") from None
        self._ray = ray
        self._started = False
        init: dict[str, Any] = {"logging_level": "error", "log_to_driver": False, "configure_logging": True}
        try:
            if address is not None:
                check_address(address)
                ray.init(address=address, **init)
            else:
                ray.init(address="local", num_cpus=cpu_cores(), include_dashboard=False, **init)
                self._started = True
        except SweepError:
            raise
        except Exception as e:  # ConnectionError, RuntimeError, ...: one line for the user
            raise SweepError(f"could not start or join Ray ({type(e).__name__}: {str(e).splitlines()[0]})") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, min(workers or cpus, cpus // threads or 1))
        self._remote = ray.remote(execute_task).options(num_cpus=threads, max_retries=max_retries)
        self._refs: dict[Any, PointTask | BatchTask] = {}

    @property
    def running(self) -> int:
        return len(self._refs)

    def submit(self, task: PointTask | BatchTask) -> None:
        self._refs[self._remote.remote(task)] = task

    def poll(self, timeout: float) -> Finished:
        if not self._refs:
            return []
        ray = self._ray
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:  # collect whatever else is ready too
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        out: Finished = []
        for ref in ready:
            task = self._refs.pop(ref)
            try:
                out += expand_outcome(task, ray.get(ref))
            except ray.exceptions.TaskCancelledError:
                out += expand_outcome(task, KeyboardInterrupt("cancelled"))
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
                out += expand_outcome(task, WorkerLost(f"Ray worker died: {str(e).splitlines()[0]}"))
            except Exception as e:
                out += expand_outcome(task, e)
        return out

    def interrupt(self) -> None:
        # ray.cancel delivers SIGINT to the task's worker: the trainer checkpoints and stops.
        for ref in list(self._refs):
            self._ray.cancel(ref, force=False)

    def close(self, force: bool = False) -> None:
        if force:
            for ref in list(self._refs):
                self._ray.cancel(ref, force=True)
        self._ray.shutdown()


def check_executor_options(name: str, workers: int | None, address: str | None = None) -> None:
    """Refuse bad executor options, and an address nothing listens on, before anything starts."""
    if name not in EXECUTORS:
        raise SweepError(f"--executor {name!r}: unknown (choose from {', '.join(EXECUTORS)})")
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    if address is not None and name != "ray":
        raise SweepError("--address only applies to --executor ray")
    if address is not None:
        check_address(address)


def make_executor(
    name: str, workers: int | None, address: str | None = None, max_retries: int = 1
) -> tuple[LocalExecutor | RayExecutor, int]:
    """(executor, torch threads per point) for ``--executor``/``--workers``/``--address``.

    Local: ``workers`` (default: the CPU cores) processes, each with cores // workers threads.
    Ray: each point reserves that many CPUs; joining a cluster without ``workers``, one thread
    per point and as many points at once as the cluster has CPUs.
    """
    check_executor_options(name, workers, address)
    if name == "local":
        n = workers or cpu_cores()
        return LocalExecutor(n), threads_per_point(n)
    threads = 1 if address is not None and workers is None else threads_per_point(workers or cpu_cores())
    return RayExecutor(address, threads, max_retries=max_retries, workers=workers), threads
