"""Exceptions and warnings of shmq."""

import queue

__all__ = ["ShutDown", "OwnerDeadWarning", "ReleaseError", "NotOwnerError"]

_base: type = getattr(queue, "ShutDown", Exception)


class ShutDown(_base):  # type: ignore[misc]
    """Raised by ``put``/``get`` on a queue that was shut down with ``shutdown()``.

    A subclass of :class:`queue.ShutDown` on Python 3.13 and later (of :class:`Exception`
    before), so ``except queue.ShutDown`` catches it there.
    """


class OwnerDeadWarning(RuntimeWarning):
    """Warned by ``acquire`` when it took a lock over from a holder that died holding it.

    The lock is held by the caller, as after any successful ``acquire``; what the dead holder
    was protecting may be half-updated. Turn the warning into an exception with
    ``warnings.simplefilter("error", shmq.OwnerDeadWarning)`` to stop instead (the lock is then
    held: release it once the data is repaired).
    """


class ReleaseError(ValueError, RuntimeError):
    """``release`` of a lock that is not locked, or of a bounded semaphore at its bound.

    A :exc:`ValueError`, as ``multiprocessing`` raises, and a :exc:`RuntimeError`, as
    ``threading`` raises.
    """


class NotOwnerError(AssertionError, RuntimeError):
    """``release`` of an ``RLock`` (or ``wait``/``notify`` of a ``Condition``) by a thread that
    does not hold it.

    An :exc:`AssertionError`, as ``multiprocessing`` raises, and a :exc:`RuntimeError`, as
    ``threading`` raises.
    """
