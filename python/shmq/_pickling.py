"""The pickle fallback: multiprocessing's pickler, protocol 5, buffers out of band.

:func:`dumps_shared` is the one for what goes into a shared container (a managed ``list`` or
``dict``): there, shmq queues, locks, semaphores, events and shared values pickle as references
to the same object at any time, not only while a process is being started (the containers' own
proxies always do). A reference is good while some process maps the object (for one a manager
made, until the manager's ``shutdown()``).
"""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler
from typing import Any


def dumps(obj: Any, out_of_band: bool) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickles ``obj``; with ``out_of_band``, returns its pickle-5 buffers separately."""
    return _dumps_with(ForkingPickler, obj, out_of_band)


def _dumps_with(
    pickler: type[ForkingPickler], obj: Any, out_of_band: bool
) -> tuple[bytes, list[pickle.PickleBuffer]]:
    buf = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    callback = buffers.append if out_of_band else None
    # ForkingPickler.__init__ takes positional arguments only: file, protocol, fix_imports,
    # buffer_callback.
    pickler(buf, 5, True, callback).dump(obj)
    return buf.getvalue(), buffers


def loads(data: bytes, buffers: list[bytearray]) -> Any:
    """Unpickles what :func:`dumps` made, the buffers copied out of shared memory."""
    return pickle.loads(data, buffers=buffers)


class _SharedPickler(ForkingPickler):
    """``ForkingPickler`` that stores shmq queues, locks, semaphores, events and shared values by
    name (they refuse outside process start)."""

    def reducer_override(self, obj: Any) -> Any:
        from . import queues, sharedctypes, synchronize

        if isinstance(obj, queues.SimpleQueue):
            return (_queue_from_state, (type(obj), obj._native.name))
        if isinstance(obj, queues.Queue):
            return (_queue_from_state, (type(obj), (obj._native.name, obj._maxsize)))
        if isinstance(obj, synchronize._Shared):
            return (synchronize._reopen, (type(obj), obj.name))
        return sharedctypes._reduce_shared(obj)


def _queue_from_state(cls: type[Any], state: Any) -> Any:
    """A queue handle of ``cls`` over the segment its ``__getstate__`` named."""
    q = object.__new__(cls)
    q.__setstate__(state)
    return q


def dumps_shared(obj: Any, out_of_band: bool) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """:func:`dumps` for an item of a shared container (queues by reference, at any time)."""
    return _dumps_with(_SharedPickler, obj, out_of_band)
