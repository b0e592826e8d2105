"""Making batches ahead of time in background threads, and handing them over in order.

Each worker is a daemon thread that runs its own iterator of batches and puts the results in
its own bounded queue (``depth`` batches ahead). The consumer reads the queues round-robin, so
worker ``w`` of ``W`` makes batches ``w, w + W, ...`` and they come out in the original order.
An exception in a worker travels through the queue and is raised again in the consumer, with
the worker's traceback. Workers stop when their iterator ends, or soon after ``close()``, which
runs when iteration ends early or the consumer is garbage collected. The threads hold no
reference to the consumer object, so dropping it is enough to stop them.

Threads, not processes: NumPy releases the GIL in its copies and arithmetic, and the fast
batched path of the datasets here is mostly that.

May import: the standard library, dslearn.data.worker.

>>> batches = BackgroundBatches([iter([0, 2, 4]), iter([1, 3])], infos=[None, None], depth=2)
>>> list(batches)
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext

from dslearn.data.worker import WorkerInfo, loading_context

_ITEM, _DONE, _ERROR = "item", "done", "error"
_POLL_SECONDS = 0.05


class BackgroundBatches:
    """Iterate ``jobs[0], jobs[1], ...`` round-robin, each job run ahead in its own daemon thread.

    ``infos[w]`` is the ``WorkerInfo`` that job ``w`` runs as (None: no worker context);
    ``public_info`` says whether ``get_worker_info()`` shows it.
    """

    def __init__(self, jobs: Sequence[Iterator], infos: Sequence[WorkerInfo | None], depth: int,
                 public_info: bool = True) -> None:
        self._stop = threading.Event()
        self._queues = [queue.Queue(maxsize=depth) for _ in jobs]
        self._threads = [
            threading.Thread(target=_run_job, args=(job, info, public_info, q, self._stop), daemon=True,
                             name=f"dslearn-data-worker-{w}")
            for w, (job, info, q) in enumerate(zip(jobs, infos, self._queues))
        ]
        self._active = list(range(len(jobs)))
        self._turn = 0
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> BackgroundBatches:
        return self

    def __next__(self):
        while self._active:
            position = self._turn % len(self._active)
            kind, payload = self._queues[self._active[position]].get()
            if kind == _ITEM:
                self._turn = position + 1
                return payload
            if kind == _ERROR:
                self.close()
                raise payload
            del self._active[position]  # _DONE: this worker has no more batches
            self._turn = position
        raise StopIteration

    def close(self) -> None:
        """Ask every worker to stop; each one notices within a poll interval (daemon threads)."""
        self._stop.set()
        self._active = []

    def __del__(self) -> None:
        self._stop.set()


def _run_job(job: Iterator, info: WorkerInfo | None, public_info: bool, out: queue.Queue,
             stop: threading.Event) -> None:
    context = loading_context(info, public_info) if info is not None else nullcontext()
    with context:
        try:
            for item in job:
                if not _put(out, (_ITEM, item), stop):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            _put(out, (_ERROR, error), stop)
            return
    _put(out, (_DONE, None), stop)


def _put(out: queue.Queue, message: tuple, stop: threading.Event) -> bool:
    """Put ``message`` unless asked to stop first; True if it was put."""
    while not stop.is_set():
        try:
            out.put(message, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False
