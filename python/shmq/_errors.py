"""Exceptions of shmq."""

import queue

__all__ = ["ShutDown"]

_base: type = getattr(queue, "ShutDown", Exception)


class ShutDown(_base):  # type: ignore[misc]
    """Raised by ``put``/``get`` on a queue that was shut down with ``shutdown()``.

    A subclass of :class:`queue.ShutDown` on Python 3.13 and later (of :class:`Exception`
    before), so ``except queue.ShutDown`` catches it there.
    """
