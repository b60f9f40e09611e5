"""shmq: ``multiprocessing``'s queues, locks and shared values in shared memory.

``shmq.Queue``, ``shmq.SimpleQueue`` and ``shmq.JoinableQueue`` have the interface of
``multiprocessing``'s, and move messages through a lock-free ring in a shared-memory segment
(``/dev/shm``) instead of a pipe, with futex blocking. ``Lock``, ``RLock``, ``Semaphore``,
``BoundedSemaphore``, ``Condition``, ``Event``, ``Barrier``, ``Value``, ``Array``, ``RawValue``
and ``RawArray`` are shmq's too (robust locks, atomic integer operations). Everything else of
``multiprocessing`` (``Process``, ``Pool``, ``current_process``, ``set_start_method``, ...) is
re-exported, so ``import shmq as multiprocessing`` works::

    import shmq as multiprocessing

    def worker(q):
        q.put("hello")

    if __name__ == "__main__":
        q = multiprocessing.Queue()
        p = multiprocessing.Process(target=worker, args=(q,))
        p.start()
        print(q.get())
        p.join()
"""

from __future__ import annotations

import multiprocessing as _mp
from typing import Any

from . import queues, sharedctypes, synchronize
from ._errors import NotOwnerError, OwnerDeadWarning, ReleaseError, ShutDown
from ._lifecycle import reclaim_stale
from ._shmq import ShmqError

# ``X as X``: re-exported (the names are in ``__all__`` through ``_OURS``).
from .queues import JoinableQueue as JoinableQueue
from .queues import Queue as Queue
from .queues import SimpleQueue as SimpleQueue
from .sharedctypes import Array as Array
from .sharedctypes import RawArray as RawArray
from .sharedctypes import RawValue as RawValue
from .sharedctypes import Value as Value
from .synchronize import Barrier as Barrier
from .synchronize import BoundedSemaphore as BoundedSemaphore
from .synchronize import Condition as Condition
from .synchronize import Event as Event
from .synchronize import Lock as Lock
from .synchronize import RLock as RLock
from .synchronize import Semaphore as Semaphore

# Everything multiprocessing exports at top level (bound to its default context), then ours.
_OURS = (
    "Queue",
    "SimpleQueue",
    "JoinableQueue",
    "get_context",
    *synchronize.__all__,
    "Value",
    "Array",
    "RawValue",
    "RawArray",
)
for _name in _mp.__all__:
    if _name not in _OURS:
        globals()[_name] = getattr(_mp, _name)
# shmq's Manager (shared containers without a server process) in place of multiprocessing's.
from ._manager import Manager as Manager  # noqa: E402

SUBDEBUG = getattr(_mp, "SUBDEBUG")  # noqa: B009 - not in typeshed
SUBWARNING = getattr(_mp, "SUBWARNING")  # noqa: B009

TimeoutError = _mp.TimeoutError
ProcessError = _mp.ProcessError
BufferTooShort = _mp.BufferTooShort
AuthenticationError = _mp.AuthenticationError
reducer = _mp.reducer


class _Context:
    """A ``multiprocessing`` context whose ``Queue`` and ``JoinableQueue`` are shmq's; everything
    else delegates to the wrapped context. Its ``SimpleQueue`` stays ``multiprocessing``'s:
    ``multiprocessing.pool.Pool`` and ``concurrent.futures.ProcessPoolExecutor`` take a context
    and use the internals (``_reader``, ``_writer``) of its ``SimpleQueue``."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def __repr__(self) -> str:
        return f"<shmq context over {self._ctx!r}>"

    def Queue(self, maxsize: int = 0, **kwargs: Any) -> Queue:  # noqa: N802
        return Queue(maxsize, **kwargs)

    def JoinableQueue(self, maxsize: int = 0, **kwargs: Any) -> JoinableQueue:  # noqa: N802
        return JoinableQueue(maxsize, **kwargs)

    def get_context(self, method: str | None = None) -> _Context:
        return get_context(method)


def get_context(method: str | None = None) -> _Context:
    """``multiprocessing.get_context(method)``, with shmq's ``Queue`` and ``JoinableQueue``.

    It can be passed where a context is expected (``Pool(context=...)``,
    ``ProcessPoolExecutor(mp_context=...)``); those keep ``multiprocessing``'s queues inside."""
    return _Context(_mp.get_context(method))


# multiprocessing's submodules, as attributes (``shmq.pool.ThreadPool``, ``shmq.managers``):
# imported on first use, as ``multiprocessing.pool`` is once imported. ``shmq.queues``,
# ``shmq.synchronize`` and ``shmq.sharedctypes`` are ours.
_SUBMODULES = frozenset(
    "connection context dummy forkserver heap managers pool popen_fork popen_forkserver "
    "popen_spawn_posix process reduction resource_sharer resource_tracker shared_memory "
    "spawn util".split()
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"multiprocessing.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [n for n in _mp.__all__ if n not in _OURS] + [
    *_OURS,
    "ShutDown",
    "OwnerDeadWarning",
    "ReleaseError",
    "NotOwnerError",
    "ShmqError",
    "reclaim_stale",
    "queues",
    "synchronize",
    "sharedctypes",
]
