"""Where per-track jobs run: a local process pool or a dask.distributed cluster.

Both runners take the same job function (one picklable job in, one result
out; the function catches its own errors) and report every job exactly once:
``record(result)`` when it ran, ``lost(job, reason)`` when it could not finish
(with the process pool: every job still in flight when a worker died, since
the pool cannot tell which one it was running). Work in flight is bounded, so
memory stays flat whatever the number of jobs. The job function must be
importable on the workers (for a remote cluster: musicrep installed there, the
audio and output folders on shared storage at the same paths).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from musicrep.errors import UsageError

logger = logging.getLogger(__name__)

Record = Callable[[Any], None]
Lost = Callable[[Any, str], None]


class Runner(Protocol):
    """Runs jobs and reports each exactly once (see the module docstring); a context manager
    that holds its workers (or cluster connection) for the duration of the ``with`` block."""

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc_info) -> None: ...

    def run(self, function: Callable[[Any], Any], jobs: Iterable[Any], record: Record, lost: Lost) -> None: ...


class ProcessPoolRunner:
    """Local worker processes; a worker killed by a signal loses its in-flight jobs and the pool restarts.

    Parameters
    ----------
    workers : int
        Processes.
    initializer : callable, optional
        Run once in each new process.
    in_flight_per_worker : int
        Jobs queued per worker (keeps every worker busy, bounds memory).
    """

    def __init__(self, workers: int, initializer: Callable[[], None] | None = None, in_flight_per_worker: int = 4
                 ) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be at least 1 (got {workers})")
        self.workers = workers
        self.initializer = initializer
        self.limit = in_flight_per_worker * workers

    def __enter__(self) -> ProcessPoolRunner:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def run(self, function: Callable[[Any], Any], jobs: Iterable[Any], record: Record, lost: Lost) -> None:
        queue = list(reversed(list(jobs)))
        while queue:
            with ProcessPoolExecutor(max_workers=self.workers, initializer=self.initializer) as pool:
                in_flight: dict[Future, Any] = {}
                try:
                    while queue or in_flight:
                        while queue and len(in_flight) < self.limit:
                            job = queue.pop()
                            in_flight[pool.submit(function, job)] = job
                        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            # a dead worker raises BrokenProcessPool here: the job is still in
                            # in_flight and is reported lost below, so nothing is lost silently
                            result = future.result()
                            del in_flight[future]
                            record(result)
                except BrokenProcessPool:
                    reason = _death_reason(pool)
                    n_lost = 0
                    for future, job in in_flight.items():
                        if future.done() and not future.cancelled() and future.exception() is None:
                            record(future.result())  # finished before the pool broke: not lost
                        else:
                            lost(job, reason)
                            n_lost += 1
                    logger.warning("a worker died (%s); %d job(s) lost, restarting the pool", reason, n_lost)


def _death_reason(pool: ProcessPoolExecutor) -> str:
    # ProcessPoolExecutor keeps its processes privately; their exit codes tell the signal. Once one
    # dies, the executor terminates the others (SIGTERM), so any other signal is the original cause.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.join(timeout=1.0)  # reap it: a dead process not yet waited for has no exit code
    signals = {-p.exitcode for p in processes if p.exitcode is not None and p.exitcode < 0}
    if not signals:
        return "worker died"
    cause = min(signals - {signal.SIGTERM}, default=signal.SIGTERM)
    return f"worker died (signal {int(cause)})"


class DaskRunner:
    """A dask.distributed cluster: ``"local"`` starts a LocalCluster, ``tcp://HOST:PORT`` joins one.

    Parameters
    ----------
    scheduler : str
        ``"local"`` or the scheduler's address.
    workers : int, optional
        Tasks in flight at once, and the LocalCluster's worker processes
        (default: one per core; tasks in flight default to twice the cluster's threads).
    initializer : callable, optional
        Run once on each worker (registered as a worker plugin, so workers joining later run it too).
    """

    def __init__(self, scheduler: str, workers: int | None = None, initializer: Callable[[], None] | None = None
                 ) -> None:
        if workers is not None and workers < 1:
            raise UsageError(f"--workers must be at least 1 (got {workers})")
        if scheduler != "local" and "://" not in scheduler:
            raise UsageError(f"--scheduler must be local or an address like tcp://HOST:PORT (got {scheduler!r})")
        self.scheduler = scheduler
        self.workers = workers
        self.initializer = initializer
        self._stack = contextlib.ExitStack()
        self.client = None

    def __enter__(self) -> DaskRunner:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise UsageError("--scheduler needs dask.distributed: pip install 'musicrep[dask]'") from exc
        if not logger.isEnabledFor(logging.DEBUG):
            # distributed narrates every connection at INFO (its import sets that level): warnings only
            logging.getLogger("distributed").setLevel(logging.WARNING)
        with self._stack:
            if self.scheduler == "local":
                cluster = self._stack.enter_context(LocalCluster(
                    n_workers=self.workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING))
                self.client = self._stack.enter_context(Client(cluster))
            else:
                try:
                    self.client = self._stack.enter_context(Client(self.scheduler, timeout="20s"))
                except (OSError, TimeoutError) as exc:
                    raise UsageError(f"cannot reach the dask scheduler at {self.scheduler} ({exc})") from exc
            if self.initializer is not None:
                self.client.register_plugin(_setup_plugin(self.initializer), name="musicrep-setup")
            self._stack = self._stack.pop_all()  # keep the cluster open past this block
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def run(self, function: Callable[[Any], Any], jobs: Iterable[Any], record: Record, lost: Lost) -> None:
        from distributed import as_completed

        limit = self.workers or max(1, 2 * sum(self.client.nthreads().values()))
        queue = iter(jobs)
        futures: dict[Any, Any] = {}
        pending = as_completed()

        def submit_next() -> None:
            job = next(queue, None)
            if job is not None:
                future = self.client.submit(function, job, pure=False)
                futures[future] = job
                pending.add(future)

        for _ in range(limit):
            submit_next()
        for future in pending:
            job = futures.pop(future)
            if future.status == "finished":
                record(future.result())
            elif future.status == "cancelled":
                lost(job, "cancelled (the dask scheduler or this client went away)")
            else:  # the scheduler gave up on it (e.g. KilledWorker after repeated worker deaths)
                error = future.exception()
                lost(job, f"worker died ({type(error).__name__}: {error})")
            future.release()
            submit_next()


def _setup_plugin(initializer: Callable[[], None]):
    """A worker plugin running ``initializer`` on each worker (defined here: distributed is an optional extra)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class Setup(WorkerPlugin):
        def setup(self, worker) -> None:
            initializer()

    return Setup()


def make_runner(workers: int | None, scheduler: str | None, initializer: Callable[[], None] | None = None
                ) -> Runner:
    """The runner for ``--workers`` / ``--scheduler`` (None: the local process pool)."""
    if scheduler is None:
        return ProcessPoolRunner(workers or 1, initializer)
    return DaskRunner(scheduler, workers, initializer)
