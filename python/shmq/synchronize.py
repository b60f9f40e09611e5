"""Locks, semaphores, conditions, events and barriers with the interface of
``multiprocessing``'s, on futex words in shared memory.

Each object is one shmq segment (``/dev/shm/shmq-py-*``; see ``_lifecycle``). It passes to child
processes as a ``Process`` argument under fork, spawn and forkserver, and pickles only then (as
``multiprocessing``'s do). Waits release the GIL and run signal handlers every 50 ms, so Ctrl-C
interrupts them.

Locks are robust: if the process holding a :class:`Lock` or :class:`RLock` is killed, the next
``acquire`` takes the lock over at once (when the kernel reports the holder's exit) and warns
with :class:`~shmq.OwnerDeadWarning`, instead of waiting for ever. A live holder is never taken
over from. A lock is attributed to the thread that acquired it: a thread that exits holding it,
while its process lives on, counts as dead too (``multiprocessing`` would leave such a lock held
for good).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from . import _lifecycle, _shmq
from ._errors import NotOwnerError, OwnerDeadWarning, ReleaseError

__all__ = [
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
]

# Sync.lock_kind / Sync.create's `lock`.
_NO_LOCK, _PLAIN, _REENTRANT = 0, 1, 2
# Sync.lock_acquire's answers.
_TAKEN_OVER = 2
# The largest semaphore value (the futex word is 32 bits; u32::MAX means unbounded).
SEM_VALUE_MAX = 2**32 - 2

T = TypeVar("T")


def _create(
    lock: int = _NO_LOCK,
    sems: list[tuple[int, int]] | None = None,
    event: bool = False,
    cells: int = 0,
) -> _shmq.Sync:
    sems = sems or []
    return _lifecycle.create(lambda name: _shmq.Sync.create(name, lock, sems, event, cells))


def _open(name: str) -> _shmq.Sync:
    return _lifecycle.opened(_shmq.Sync.open(name))


class _Shared:
    """An object over a :class:`_shmq.Sync` segment; pickles as a reference to it, only while
    a process is being started."""

    _native: _shmq.Sync

    def __getstate__(self) -> Any:
        return _lifecycle.pin_for_child(self, self._native)

    def __setstate__(self, name: Any) -> None:
        self._native = _open(name)


class _LockBase(_Shared):
    _kind = _PLAIN

    def __init__(self, *, ctx: Any = None) -> None:
        self._native = _create(lock=self._kind)

    @classmethod
    def _over(cls: type[T], native: _shmq.Sync) -> T:
        """The lock that lives in another object's segment (a condition's, a value's)."""
        lock = cls.__new__(cls)
        lock._native = native  # type: ignore[attr-defined]
        return lock

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire the lock, waiting if *block* is true (at most *timeout* seconds if given);
        return whether it was acquired.

        If the previous holder died holding the lock, it is taken over and
        :class:`~shmq.OwnerDeadWarning` is warned.
        """
        how = self._native.lock_acquire(block, timeout)
        if how == _TAKEN_OVER:
            warnings.warn(
                OwnerDeadWarning(
                    f"{self!r}: the previous holder died holding the lock; it is now held by "
                    "this thread, and what it protects may be half-updated"
                ),
                stacklevel=2,
            )
        return how != 0

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()

    def locked(self) -> bool:
        """Whether any thread of any process holds the lock (a snapshot)."""
        return self._native.lock_is_locked()

    def _is_mine(self) -> bool:
        return self._native.lock_is_mine()

    def _count(self) -> int:
        return self._native.lock_count()

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        if self._is_mine():
            state = f"{threading.current_thread().name}, {self._count()}"
        elif self.locked():
            state = "SomeOtherThread"
        else:
            state = "None"
        return f"<{type(self).__qualname__}(owner={state})>"


class Lock(_LockBase):
    """A non-recursive lock, as :class:`multiprocessing.Lock`: any thread of any process may
    release it."""

    _kind = _PLAIN

    def release(self) -> None:
        """Release the lock; :exc:`ValueError` (:class:`~shmq.ReleaseError`) if it is not
        locked."""
        if not self._native.lock_release():
            raise ReleaseError("semaphore or lock released too many times")


class RLock(_LockBase):
    """A recursive lock, as :class:`multiprocessing.RLock`: the thread that holds it may acquire
    it again, and must release it as many times."""

    _kind = _REENTRANT

    def release(self) -> None:
        """Release one level; :exc:`AssertionError` (:class:`~shmq.NotOwnerError`) if the calling
        thread does not hold the lock."""
        if not self._native.lock_release():
            raise NotOwnerError("attempt to release recursive lock not owned by thread")


def _check_value(value: int, name: str = "value") -> int:
    value = int(value)
    if value < 0:
        raise ValueError(f"semaphore initial {name} must be >= 0")
    if value > SEM_VALUE_MAX:
        raise OverflowError(f"semaphore {name} must be at most {SEM_VALUE_MAX}")
    return value


class _SemaphoreOf:
    """Semaphore *index* of a segment (a condition's counters)."""

    def __init__(self, native: _shmq.Sync, index: int) -> None:
        self._native = native
        self._index = index

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        return self._native.sem_acquire(self._index, block, timeout)

    def release(self) -> None:
        if not self._native.sem_release(self._index):
            raise ReleaseError("semaphore or lock released too many times")

    def get_value(self) -> int:
        return self._native.sem_value(self._index)


class Semaphore(_Shared):
    """A counting semaphore, as :class:`multiprocessing.Semaphore`."""

    _bounded = False

    def __init__(self, value: int = 1, *, ctx: Any = None) -> None:
        value = _check_value(value)
        self._native = _create(sems=[(value, value if self._bounded else 0)])

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take one unit, waiting if *block* is true (at most *timeout* seconds if given);
        return whether it did."""
        return self._native.sem_acquire(0, block, timeout)

    def release(self) -> None:
        """Give one unit back (:exc:`ValueError` past a bounded semaphore's bound)."""
        if not self._native.sem_release(0):
            raise ReleaseError("semaphore or lock released too many times")

    def get_value(self) -> int:
        """The units available now."""
        return self._native.sem_value(0)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__}(value={self.get_value()})>"


class BoundedSemaphore(Semaphore):
    """A semaphore whose value never exceeds its initial value, as
    :class:`multiprocessing.BoundedSemaphore`: a ``release`` past it raises :exc:`ValueError`."""

    _bounded = True


# A condition's semaphores: sleepers announced, sleepers that woke, and wake-ups handed out.
_SLEEPING, _WOKEN, _WAKE = 0, 1, 2


class Condition(_Shared):
    """A condition variable, as :class:`multiprocessing.Condition`.

    *lock* is a shmq :class:`Lock` or :class:`RLock` (a new :class:`RLock` if omitted). Waiters
    are counted in three shared semaphores: a ``notify`` hands out wake-ups and waits until the
    woken waiters have taken them (or timed out), so a wake-up never goes to a later waiter.
    """

    def __init__(self, lock: _LockBase | None = None, *, ctx: Any = None, _cells: int = 0) -> None:
        if lock is not None and not isinstance(lock, _LockBase):
            raise TypeError(f"a shmq Condition needs a shmq Lock or RLock, not {lock!r}")
        own = _REENTRANT if lock is None else _NO_LOCK
        native = _create(lock=own, sems=[(0, 0), (0, 0), (0, 0)], cells=_cells)
        self._setup(native, lock)

    def _setup(self, native: _shmq.Sync, lock: _LockBase | None) -> None:
        self._native = native
        self._lock: _LockBase = RLock._over(native) if lock is None else lock
        self._sleeping_count = _SemaphoreOf(native, _SLEEPING)
        self._woken_count = _SemaphoreOf(native, _WOKEN)
        self._wait_semaphore = _SemaphoreOf(native, _WAKE)
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __getstate__(self) -> Any:
        own = self._native.lock_kind != _NO_LOCK
        return (_lifecycle.pin_for_child(self, self._native), None if own else self._lock)

    def __setstate__(self, state: Any) -> None:
        name, lock = state
        self._setup(_open(name), lock)

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: object) -> None:
        self._lock.__exit__(*args)

    def __repr__(self) -> str:
        waiters = self._sleeping_count.get_value() - self._woken_count.get_value()
        return f"<{type(self).__qualname__}({self._lock!r}, {waiters})>"

    def _check_mine(self, what: str) -> None:
        if not self._lock._is_mine():
            raise NotOwnerError(f"must acquire() condition before using {what}()")

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait until notified (at most *timeout* seconds), then take the lock
        back at the depth it was held; return ``False`` if the timeout passed."""
        self._check_mine("wait")
        self._sleeping_count.release()
        depth = self._lock._count()
        for _ in range(depth):
            self._lock.release()
        try:
            return self._wait_semaphore.acquire(True, timeout)
        finally:
            self._woken_count.release()
            for _ in range(depth):
                self._lock.acquire()

    def notify(self, n: int = 1) -> None:
        """Wake up to *n* waiters (of any process)."""
        self._check_mine("notify")
        if self._wait_semaphore.acquire(False):
            # A wake-up left over means a notify and a waiter's timeout crossed badly.
            raise AssertionError("a wake-up of an earlier notify was never taken")
        # Waiters that timed out since the last notify announced themselves and woke: forget
        # both counts for them.
        while self._woken_count.acquire(False):
            taken = self._sleeping_count.acquire(False)
            assert taken, "a woken waiter that never announced itself"
        woken = 0
        while woken < n and self._sleeping_count.acquire(False):
            self._wait_semaphore.release()
            woken += 1
        if woken:
            # Each waiter handed a wake-up counts itself woken, whether it took the wake-up
            # or timed out first; then any wake-up a timed-out waiter left is withdrawn.
            for _ in range(woken):
                self._woken_count.acquire()
            while self._wait_semaphore.acquire(False):
                pass

    def notify_all(self) -> None:
        """Wake every waiter."""
        self.notify(n=SEM_VALUE_MAX)

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true (at most *timeout* seconds); return its last
        value."""
        result = predicate()
        if result:
            return result
        end = None if timeout is None else time.monotonic() + timeout
        while not result:
            if end is None:
                self.wait(None)
            else:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            result = predicate()
        return result


class Event(_Shared):
    """An event, as :class:`multiprocessing.Event`: a flag that ``set`` raises and ``clear``
    lowers, and that ``wait`` waits for."""

    def __init__(self, *, ctx: Any = None) -> None:
        self._native = _create(event=True)

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._native.event_is_set()

    def set(self) -> None:
        """Set the flag, waking every waiter."""
        self._native.event_set()

    def clear(self) -> None:
        """Lower the flag."""
        self._native.event_clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set (at most *timeout* seconds); return whether it is."""
        return self._native.event_wait(timeout)

    def __repr__(self) -> str:
        state = "set" if self.is_set() else "unset"
        return f"<{type(self).__qualname__} at {id(self):#x} {state}>"


class Barrier(threading.Barrier):
    """A barrier, as :class:`multiprocessing.Barrier` (and :class:`threading.Barrier`, whose
    algorithm it runs over a shmq :class:`Condition` and two shared cells): ``wait``,
    ``reset``, ``abort``, ``parties``, ``n_waiting``, ``broken``, and
    :exc:`threading.BrokenBarrierError`.
    """

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        ctx: Any = None,
    ) -> None:
        if parties < 1:
            raise ValueError("parties must be > 0")
        cond = Condition(_cells=1)
        self.__setstate__((parties, action, timeout, cond))

    def __setstate__(self, state: Any) -> None:
        self._parties, self._action, self._timeout, self._cond = state

    def __getstate__(self) -> Any:
        return (self._parties, self._action, self._timeout, self._cond)

    # threading.Barrier keeps its state and count in these two attributes, read and written
    # under its condition's lock: here they are two 4-byte integers of the condition's cell.
    @property
    def _state(self) -> int:
        return int(self._cond._native.atomic_load(0, 4, True))

    @_state.setter
    def _state(self, value: int) -> None:
        self._cond._native.atomic_store(0, 4, True, value)

    @property
    def _count(self) -> int:
        return int(self._cond._native.atomic_load(4, 4, True))

    @_count.setter
    def _count(self, value: int) -> None:
        self._cond._native.atomic_store(4, 4, True, value)

    def __repr__(self) -> str:
        if self.broken:
            return f"<{type(self).__qualname__}: broken>"
        return (
            f"<{type(self).__qualname__}: waiters={self.n_waiting}/{self.parties}, "
            f"state={self._state}>"
        )
