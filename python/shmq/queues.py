"""Queues with the interface of ``multiprocessing.Queue``, in shared memory.

Messages are encoded in the putting process straight into a slot of a lock-free ring in a
shared-memory segment, and decoded by the getting process from it: no pipe, no feeder thread,
no lock around the ring. Plain data (None, bool, int, float, str, bytes, bytearray, and tuples,
lists and dicts of them) uses a compact native encoding; anything else is pickled (protocol 5,
with ``multiprocessing``'s pickler), its out-of-band buffers (numpy arrays, for instance)
copied once, straight into the slot.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterable
from multiprocessing import util
from typing import Any

from . import _lifecycle, _shmq
from ._errors import ShutDown

__all__ = [
    "Queue",
    "SimpleQueue",
    "JoinableQueue",
    "ShutDown",
]


def _raise_closed(queue: str, error: type[Exception] = ValueError) -> Any:
    """A stand-in for ``put``/``get`` of a closed handle (given the queue's repr, not the queue:
    no reference cycle keeps the handle alive)."""

    def closed(*args: Any, **kwargs: Any) -> Any:
        raise error(f"Queue {queue} is closed" if error is ValueError else "handle is closed")

    return closed


def _geometry(maxsize: int, max_message_size: int | None) -> tuple[int, int]:
    """Slot count and message size limit for a queue (0: unbounded, resp. any size).

    ``maxsize <= 0`` is an unbounded queue (its items live in the segment's shared heap, which
    grows as it fills), and ``max_message_size=None`` takes messages of any size (those longer
    than a slot go through the heap).
    """
    capacity = 0 if maxsize <= 0 else int(maxsize)
    if max_message_size is None:
        return capacity, 0
    size = int(max_message_size)
    if size < 1:
        raise ValueError("max_message_size must be at least 1")
    return capacity, size


class Queue:
    """A process-shared FIFO queue with the interface of :class:`multiprocessing.Queue`.

    If *maxsize* is less than or equal to zero, the queue is unbounded: ``put`` never blocks,
    and items are kept in shared memory that grows as the queue fills (up to half of /dev/shm;
    past that ``put`` raises :exc:`ShmqError`). Otherwise it holds exactly *maxsize* items.
    Messages of any size are accepted (those longer than a slot travel through the queue's
    shared heap); with *max_message_size* given, messages larger than that once encoded are
    refused with :exc:`ValueError` at :meth:`put`.

    Pass the queue to child processes as an argument (``Process(args=(q,))``, or a ``Pool``
    initializer's arguments), under any start method; threads of a process share it as is.
    It pickles, as a reference to the same queue, only while a process is being started.

    Unlike :class:`multiprocessing.Queue`, ``put`` encodes the object at once (an object that
    cannot be pickled raises there) and writes it into shared memory before it returns: there
    is no feeder thread, so :meth:`join_thread` and :meth:`cancel_join_thread` have nothing to
    wait for, and :meth:`qsize` is exact.
    """

    _joinable = False

    def __init__(
        self,
        maxsize: int = 0,
        *,
        max_message_size: int | None = None,
        ctx: Any = None,
    ) -> None:
        capacity, size = _geometry(maxsize, max_message_size)
        self._maxsize = maxsize
        joinable = self._joinable
        self._native = _lifecycle.create(
            lambda name: _shmq.Channel.create(name, capacity, size, joinable)
        )
        self._reset()
        util.register_after_fork(self, Queue._after_fork)

    def _reset(self) -> None:
        self._closed = False
        self._bind()

    def _bind(self) -> None:
        """Binds ``put`` and ``get`` on this handle to the native calls themselves (no Python
        frame between the caller and the ring); once closed, to calls that raise."""
        if self._closed:
            self.__dict__["put"] = self.__dict__["get"] = _raise_closed(repr(self))
        else:
            self.__dict__["put"] = self._native.put
            self.__dict__["get"] = self._native.get
        self._joincancelled = False
        self._opid = os.getpid()

    def _after_fork(self) -> None:
        self._reset()

    def __getstate__(self) -> tuple[str, int]:
        return (_lifecycle.pin_for_child(self, self._native), self._maxsize)

    def __setstate__(self, state: tuple[str, int]) -> None:
        name, self._maxsize = state
        self._native = _lifecycle.opened(_shmq.Channel.open(name, self._joinable))
        self._reset()
        util.register_after_fork(self, Queue._after_fork)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self._native.name}>"

    def _check_closed(self) -> None:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put *obj* into the queue.

        If *block* is true and *timeout* is ``None`` (the default), block if necessary until a
        free slot is available. If *timeout* is a positive number, block at most *timeout*
        seconds and raise :exc:`queue.Full` if no free slot was available within that time.
        Otherwise (*block* is false), put the item if a free slot is immediately available,
        else raise :exc:`queue.Full` (*timeout* is ignored in that case).

        Raises :exc:`ValueError` if the queue is closed or the message is larger than the
        queue's ``max_message_size``, :exc:`ShutDown` if it was shut down, and whatever pickling
        raises for an object that cannot be pickled.
        """
        self._check_closed()
        self._native.put(obj, block, timeout)

    def put_nowait(self, obj: Any) -> None:
        """Equivalent to ``put(obj, False)``."""
        self.put(obj, False)

    def put_many(self, items: Iterable[Any]) -> int:
        """Put every item of *items*, in order, blocking for free slots as needed.

        Returns the number of items put. Faster than a ``put`` per item.
        """
        self._check_closed()
        return self._native.put_many(items)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item from the queue.

        If *block* is true and *timeout* is ``None`` (the default), block if necessary until an
        item is available. If *timeout* is a positive number, block at most *timeout* seconds
        and raise :exc:`queue.Empty` if no item was available within that time. Otherwise
        (*block* is false), return an item if one is immediately available, else raise
        :exc:`queue.Empty` (*timeout* is ignored in that case).

        Raises :exc:`ValueError` if the queue is closed and :exc:`ShutDown` once it was shut
        down and drained. A blocked call is interrupted by signals (``KeyboardInterrupt``).
        """
        self._check_closed()
        return self._native.get(block, timeout)

    def get_nowait(self) -> Any:
        """Equivalent to ``get(False)``."""
        return self.get(False)

    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Return a list of up to *max_items* items.

        Waits for the first item as :meth:`get` does (raising :exc:`queue.Empty` as it does),
        then takes up to ``max_items - 1`` more of those already in the queue, without waiting.
        """
        self._check_closed()
        return self._native.get_many(max_items, block, timeout)

    def qsize(self) -> int:
        """Return the number of items in the queue (claimed by a producer and not yet taken)."""
        return self._native.qsize()

    def empty(self) -> bool:
        """Return ``True`` if the queue is empty, ``False`` otherwise."""
        return self._native.qsize() == 0

    def full(self) -> bool:
        """Return ``True`` if the queue is full, ``False`` otherwise."""
        return self._native.full()

    def close(self) -> None:
        """Indicate that no more data will be put on or got from this queue by this process.

        Other processes' handles are unaffected (see :meth:`shutdown` for that). Further
        ``put``/``get`` calls on this handle raise :exc:`ValueError`.
        """
        self._closed = True
        self._bind()

    def join_thread(self) -> None:
        """Wait for the queue's background thread. Only valid after :meth:`close`.

        shmq queues write each item into shared memory before ``put`` returns, so there is no
        background thread and nothing to flush: this returns at once.
        """
        assert self._closed, f"Queue {self!r} not closed"

    def cancel_join_thread(self) -> None:
        """Prevent :meth:`join_thread` from blocking at exit (nothing to cancel: see there)."""
        self._joincancelled = True

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down in every process, waking every blocked ``put`` and ``get``.

        Later ``put`` calls raise :exc:`ShutDown`. ``get`` calls return what is left, then raise
        :exc:`ShutDown`; with *immediate*, they raise at once and the items left are discarded
        (and, for a :class:`JoinableQueue`, counted as done).
        """
        self._native.shutdown(immediate)

    @property
    def is_shutdown(self) -> bool:
        """Whether :meth:`shutdown` was called, in any process."""
        return self._native.is_shutdown()

    @property
    def maxsize(self) -> int:
        """``maxsize`` as given (0 for an unbounded queue)."""
        return 0 if self._native.capacity >= 1 << 63 else int(self._native.capacity)

    @property
    def max_message_size(self) -> int:
        """The largest encoded message accepted, in bytes (``2**64 - 1``: any size)."""
        return self._native.max_len

    def release(self) -> None:
        """Unmap the queue in this process now, instead of when the handle is collected.

        The handle is unusable afterwards. The segment's name is removed from /dev/shm once no
        process maps it.
        """
        _lifecycle.release(self._native)

    @classmethod
    def __class_getitem__(cls, item: Any) -> types.GenericAlias:
        return types.GenericAlias(cls, item)


class JoinableQueue(Queue):
    """A :class:`Queue` with :meth:`task_done` and :meth:`join`, as
    :class:`multiprocessing.JoinableQueue`: every :meth:`put` adds an unfinished task, every
    :meth:`task_done` finishes one, and :meth:`join` waits until none is left, across all
    processes.
    """

    _joinable = True

    def task_done(self) -> None:
        """Indicate that a formerly enqueued task is complete.

        Raises :exc:`ValueError` if called more times than there were items placed in the queue.
        """
        self._native.task_done()

    def join(self, timeout: float | None = None) -> bool:
        """Block until all items in the queue have been gotten and processed.

        With *timeout* (an shmq addition), wait at most that many seconds; returns whether all
        tasks are done.
        """
        return self._native.join(timeout)

    @property
    def unfinished_tasks(self) -> int:
        """The number of items put and not yet marked done."""
        return self._native.unfinished_tasks()


class SimpleQueue:
    """A simplified queue with the interface of :class:`multiprocessing.SimpleQueue`: ``get``,
    ``put``, ``empty`` and ``close``, over the same shared-memory ring as :class:`Queue`.
    """

    def __init__(self, *, max_message_size: int | None = None, ctx: Any = None) -> None:
        capacity, size = _geometry(0, max_message_size)
        self._native = _lifecycle.create(
            lambda name: _shmq.Channel.create(name, capacity, size, False)
        )
        self._closed = False
        self._bind()

    def __getstate__(self) -> str:
        return _lifecycle.pin_for_child(self, self._native)

    def __setstate__(self, name: str) -> None:
        self._native = _lifecycle.opened(_shmq.Channel.open(name, False))
        self._closed = False
        self._bind()

    def _bind(self) -> None:
        """``put`` and ``get`` are the native calls themselves, as for :class:`Queue`."""
        if self._closed:
            self.__dict__["put"] = self.__dict__["get"] = _raise_closed(repr(self), OSError)
        else:
            self.__dict__["put"] = self._native.put
            self.__dict__["get"] = self._native.get

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self._native.name}>"

    def _check_closed(self) -> None:
        if self._closed:
            raise OSError("handle is closed")

    def close(self) -> None:
        """Close the queue in this process: later calls on this handle raise :exc:`OSError`."""
        self._closed = True
        self._bind()

    def empty(self) -> bool:
        """Return ``True`` if the queue is empty, ``False`` otherwise."""
        self._check_closed()
        return self._native.qsize() == 0

    def get(self) -> Any:
        """Remove and return an item from the queue, waiting for one."""
        self._check_closed()
        return self._native.get(True, None)

    def put(self, obj: Any) -> None:
        """Put an item into the queue (never waits: a simple queue is unbounded)."""
        self._check_closed()
        self._native.put(obj, True, None)

    @classmethod
    def __class_getitem__(cls, item: Any) -> types.GenericAlias:
        return types.GenericAlias(cls, item)
