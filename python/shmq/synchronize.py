"""Locks, semaphores, conditions, events and barriers with the interface of
``multiprocessing``'s, on futex words in shared memory.

Each object is one shmq segment (``/dev/shm/shmq-py-*``; see ``_lifecycle``). It passes to child
processes as a ``Process`` argument under fork, spawn and forkserver, and pickles only then (as
``multiprocessing``'s do). Waits release the GIL and run signal handlers every 50 ms, so Ctrl-C
interrupts them.

Locks are robust: if the process holding a :class:`Lock` or :class:`RLock` is killed, the next
``acquire`` takes the lock over at once (when the kernel reports the holder's exit) and warns
with :class:`~shmq.OwnerDeadWarning`, instead of waiting for ever. A live holder is never taken
over from. A :class:`Lock` belongs to the acquiring thread's process: a thread that exits
holding it leaves it held, for another thread to release (as in ``multiprocessing``). An
:class:`RLock` belongs to the acquiring thread, the only one that may release it: one whose
thread exits holding it is taken over too (``multiprocessing`` would leave it held for good).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from multiprocessing import context
from typing import Any, TypeVar

from . import _lifecycle, _shmq
from ._errors import NotOwnerError

__all__ = [
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
]

# Sync.lock_kind / Sync's `lock`.
_NO_LOCK, _PLAIN, _REENTRANT = 0, 1, 2
# The largest semaphore value (the futex word is 32 bits; u32::MAX means unbounded).
SEM_VALUE_MAX = 2**32 - 2

T = TypeVar("T")
S = TypeVar("S", bound="_Shared")


def _reopen(cls: type[S], name: str) -> S:
    return _lifecycle.opened(_shmq.Sync.__new__(cls, name, open=True))


class _Shared(_shmq.Sync):
    """A :class:`_shmq.Sync` segment as a Python object: made through ``_lifecycle`` (tracked
    for removal), pickled as a reference to it only while a process is being started."""

    @classmethod
    def _make(
        cls: type[S],
        lock: int = _NO_LOCK,
        sems: list[tuple[int, int | None]] | None = None,
        event: bool = False,
        cells: int = 0,
    ) -> S:
        spec = sems or []
        return _lifecycle.create(
            lambda name: _shmq.Sync.__new__(cls, name, lock, spec, event, cells)
        )

    def __reduce__(self) -> Any:
        return _reopen, (type(self), _lifecycle.pin_for_child(self, self))


class _Segment(_Shared):
    """A segment used by a composite object (a condition's semaphores, a value's memory)."""


class _LockBase(_Shared):
    _kind = _PLAIN

    def __new__(cls, *, ctx: Any = None) -> _LockBase:
        return cls._make(lock=cls._kind)

    # The native calls themselves: no Python frame between the caller and the futex word.
    # ``with lock:`` runs the native ``__enter__``/``__exit__``.
    acquire = _shmq.Sync.lock_acquire
    release = _shmq.Sync.lock_release
    locked = _shmq.Sync.lock_is_locked
    _is_mine = _shmq.Sync.lock_is_mine
    _count = _shmq.Sync.lock_count

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
    release it.

    ``acquire(block=True, timeout=None)`` takes it, waiting if *block* is true (at most
    *timeout* seconds if given), and returns whether it did; if the previous holder died holding
    it, it is taken over and :class:`~shmq.OwnerDeadWarning` is warned. ``release()`` raises
    :exc:`ValueError` (:class:`~shmq.ReleaseError`) if it is not locked.
    """

    _kind = _PLAIN


class RLock(_LockBase):
    """A recursive lock, as :class:`multiprocessing.RLock`: the thread that holds it may acquire
    it again, and must release it as many times.

    ``acquire`` as :class:`Lock`'s; ``release()`` raises :exc:`AssertionError`
    (:class:`~shmq.NotOwnerError`) if the calling thread does not hold it.
    """

    _kind = _REENTRANT


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
        self._native.sem_release(self._index)

    def get_value(self) -> int:
        return self._native.sem_value(self._index)


class Semaphore(_Shared):
    """A counting semaphore, as :class:`multiprocessing.Semaphore`."""

    _bounded = False

    def __new__(cls, value: int = 1, *, ctx: Any = None) -> Semaphore:
        value = _check_value(value)
        return cls._make(sems=[(value, value if cls._bounded else None)])

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take one unit, waiting if *block* is true (at most *timeout* seconds if given);
        return whether it did."""
        return self.sem_acquire(0, block, timeout)

    def release(self) -> None:
        """Give one unit back (:exc:`ValueError` past a bounded semaphore's bound)."""
        self.sem_release(0)

    def get_value(self) -> int:
        """The units available now."""
        return self.sem_value(0)

    def __enter__(self) -> bool:
        return self.sem_acquire(0, True, None)

    def __exit__(self, *args: object) -> None:
        self.sem_release(0)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__}(value={self.get_value()})>"


class BoundedSemaphore(Semaphore):
    """A semaphore whose value never exceeds its initial value, as
    :class:`multiprocessing.BoundedSemaphore`: a ``release`` past it raises :exc:`ValueError`."""

    _bounded = True


# A condition's semaphores: sleepers announced, sleepers that woke, and wake-ups handed out.
_SLEEPING, _WOKEN, _WAKE = 0, 1, 2
# A condition's waiter table: cells of ``pid namespace << 32 | pid`` naming the processes with
# a thread asleep in ``wait``, so that ``notify`` can tell a waiter killed asleep (proven dead)
# from a slow one. After the cells its owner asked for (a barrier's state).
_WAITER_SLOTS = 16
_PID_MASK = (1 << 32) - 1

_pidns: tuple[int, int] | None = None  # (pid, namespace tag) of this process


def _namespace_tag() -> int:
    """The low 32 bits of this process's PID namespace (0: unknown, so never judged)."""
    global _pidns
    pid = os.getpid()
    if _pidns is None or _pidns[0] != pid:
        try:
            tag = os.stat("/proc/self/ns/pid").st_ino & _PID_MASK
        except OSError:
            tag = 0
        _pidns = (pid, tag)
    return _pidns[1]


def _proven_dead(pid: int) -> bool:
    """Whether process ``pid`` (of this PID namespace) is gone for sure: no such process, or a
    zombie. Anything else (alive, someone else's, unreadable) is not proof."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


class Condition:
    """A condition variable, as :class:`multiprocessing.Condition`.

    *lock* is a shmq :class:`Lock` or :class:`RLock` (a new :class:`RLock` if omitted). Waiters
    are counted in three shared semaphores: a ``notify`` hands out wake-ups and waits until the
    woken waiters have taken them (or timed out), so a wake-up never goes to a later waiter.
    Waiters also name their process in a table of 16 slots, so that a ``notify`` does not wait
    for one killed while asleep (its process proven gone, in this PID namespace).
    """

    def __init__(self, lock: _LockBase | None = None, *, ctx: Any = None, _cells: int = 0) -> None:
        if lock is not None and not isinstance(lock, _LockBase):
            raise TypeError(f"a shmq Condition needs a shmq Lock or RLock, not {lock!r}")
        sems: list[tuple[int, int | None]] = [(0, None), (0, None), (0, None)]
        cells = _cells + _WAITER_SLOTS
        native: _Shared
        if lock is None:
            # Its own RLock, in the segment of its semaphores.
            native = RLock._make(lock=_REENTRANT, sems=sems, cells=cells)
        else:
            native = _Segment._make(sems=sems, cells=cells)
        self._setup(native, lock)

    def _setup(self, native: _Shared, lock: _LockBase | None) -> None:
        self._native = native
        self._slots = range(native.memory_size - 8 * _WAITER_SLOTS, native.memory_size, 8)
        self._lock: _LockBase = native if lock is None else lock  # type: ignore[assignment]
        self._sleeping_count = _SemaphoreOf(native, _SLEEPING)
        self._woken_count = _SemaphoreOf(native, _WOKEN)
        self._wait_semaphore = _SemaphoreOf(native, _WAKE)
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __getstate__(self) -> Any:
        context.assert_spawning(self)
        own = self._lock is self._native
        return (self._native, None if own else self._lock)

    def __setstate__(self, state: Any) -> None:
        native, lock = state
        self._setup(native, lock)

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
        # Under the lock, with the announcement: a notifier (who holds the lock) sees both.
        slot, tag = self._register()
        depth = self._lock._count()
        for _ in range(depth):
            self._lock.release()
        try:
            return self._wait_semaphore.acquire(True, timeout)
        finally:
            # The slot goes before the count: a waiter is never counted woken twice (killed
            # between the two, it is not recovered).
            if slot is not None:
                self._native.atomic_compare_exchange(slot, 8, False, tag, 0)
            self._woken_count.release()
            for _ in range(depth):
                self._lock.acquire()

    def _register(self) -> tuple[int | None, int]:
        """Names this process in a free waiter slot: ``(offset, tag)``, or ``(None, tag)`` if
        every slot is taken (a waiter killed asleep then cannot be recovered)."""
        tag = _namespace_tag() << 32 | os.getpid()
        for off in self._slots:
            if self._native.atomic_compare_exchange(off, 8, False, 0, tag)[0]:
                return off, tag
        return None, tag

    def _reap_dead_waiters(self) -> None:
        """Counts each waiter whose process is proven dead as woken, as its own ``wait`` would
        have on its way out, so that the bookkeeping below forgets its announcement and no
        wake-up is handed to it. Called by a notifier (holding the lock: no waiter is between
        its announcement and its slot)."""
        mine = _namespace_tag()
        if not mine or self._sleeping_count.get_value() == 0:
            return
        for off in self._slots:
            v = self._native.atomic_load(off, 8, False)
            if v and v >> 32 == mine and _proven_dead(v & _PID_MASK):
                if self._native.atomic_compare_exchange(off, 8, False, v, 0)[0]:
                    self._woken_count.release()

    def notify(self, n: int = 1) -> None:
        """Wake up to *n* waiters (of any process)."""
        self._check_mine("notify")
        self._reap_dead_waiters()
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

    def __new__(cls, *, ctx: Any = None) -> Event:
        return cls._make(event=True)

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self.event_is_set()

    def set(self) -> None:
        """Set the flag, waking every waiter."""
        self.event_set()

    def clear(self) -> None:
        """Lower the flag."""
        self.event_clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set (at most *timeout* seconds); return whether it is."""
        return self.event_wait(timeout)

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
    def _cell(self) -> _Shared:
        cond: Condition = self._cond
        return cond._native

    @property
    def _state(self) -> int:
        return self._cell.atomic_load(0, 4, True)

    @_state.setter
    def _state(self, value: int) -> None:
        self._cell.atomic_store(0, 4, True, value)

    @property
    def _count(self) -> int:
        return self._cell.atomic_load(4, 4, True)

    @_count.setter
    def _count(self, value: int) -> None:
        self._cell.atomic_store(4, 4, True, value)

    def __repr__(self) -> str:
        if self.broken:
            return f"<{type(self).__qualname__}: broken>"
        return (
            f"<{type(self).__qualname__}: waiters={self.n_waiting}/{self.parties}, "
            f"state={self._state}>"
        )
