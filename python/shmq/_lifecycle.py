"""Segment names: creation, tracking, and removal once no process maps them.

Every shared object (a queue, a lock, a shared value, ...) is one shmq segment, a file
``/dev/shm/shmq-py-<pid>-<random>``. Each process that maps it holds a shared ``flock`` on it
for as long as it does (the kernel drops the lock when the process exits, however it exits).
The name is removed by whichever process finds the segment unused, under an exclusive lock:

* when a process drops its last handle of the object (garbage collection, or ``release()``);
* when a process exits normally: a ``multiprocessing`` finalizer releases every handle still
  alive, after the process's children were joined;
* after a SIGKILL of every process: ``multiprocessing``'s resource tracker (one process per
  program, alive until every process of the program has exited) has the name registered as a
  shared-memory object, and unlinks it at its own exit;
* and, for names of programs whose tracker died too, :func:`reclaim_stale` (run by the first
  queue a process creates) removes every ``shmq-py-*`` segment nobody maps.

An object is only ever needed while some process maps it: it pickles only for process start-up
(as ``multiprocessing.Queue``), and the parent's pickled handle stays mapped by the starting
process's ``Popen`` object until the child has exited.

The native handles (``_shmq.Channel`` and the others) all have ``name`` and ``unmap()``, and
call ``_unlinked`` / ``_still_mapped`` below when they are unmapped or collected.
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from collections.abc import Callable
from multiprocessing import context, resource_tracker, util
from typing import Protocol, TypeVar

from . import _shmq

PREFIX = "shmq-py-"
SHM_DIR = "/dev/shm"


class Native(Protocol):
    """What every native handle has."""

    @property
    def name(self) -> str: ...

    def unmap(self) -> bool: ...


N = TypeVar("N", bound=Native)

_live: weakref.WeakSet[Native] = weakref.WeakSet()
_pins: weakref.WeakSet[_shmq.Pin] = weakref.WeakSet()
_lock = threading.RLock()
_swept = False
# Names this process let go of while another holder still mapped them.
_pending: set[str] = set()


def _reinit_lock() -> None:
    # A child forked while another thread held the lock would wait for it for ever.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_reinit_lock)


def _new_name() -> str:
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(8)}"


def create(make: Callable[[str], N]) -> N:
    """Creates a new segment with ``make(name)``, tracked for removal."""
    _sweep_once()
    # Start the tracker (a fork and exec) before the segment's file is open here: a child
    # forked while it is open holds its lock until it execs.
    resource_tracker.ensure_running()
    _retry_pending()
    name = _new_name()
    obj = make(name)
    resource_tracker.register("/" + name, "shared_memory")
    _live.add(obj)
    return obj


def opened(obj: N) -> N:
    """Tracks a handle of an existing segment (one received at process start)."""
    _live.add(obj)
    return obj


def _unlinked(name: str) -> None:
    """Called once this process removed ``name``: the resource tracker may forget it."""
    try:
        resource_tracker.unregister("/" + name, "shared_memory")
    except Exception:  # noqa: BLE001 - at interpreter exit the tracker may be gone
        pass


def _still_mapped(name: str) -> None:
    """Called when this process let go of ``name`` while another process (or a child between
    fork and exec) still held it: try again later (next create, and at exit)."""
    with _lock:
        _pending.add(name)


def _retry_pending() -> None:
    with _lock:
        names = list(_pending)
    for name in names:
        try:
            gone = _shmq.unlink_if_unused(name)
        except Exception:  # noqa: BLE001 - best effort
            gone = False
        if gone:
            _unlinked(name)
        if gone or not os.path.exists(os.path.join(SHM_DIR, name)):
            with _lock:
                _pending.discard(name)


def release(obj: Native) -> None:
    """Drops this process's mapping of ``obj`` and removes the name if nobody maps it (the
    native ``unmap`` calls ``_unlinked`` or ``_still_mapped``)."""
    obj.unmap()


def pinned(pin: _shmq.Pin) -> _shmq.Pin:
    """Tracks a pin (the mapping under a ctypes object) so that the exit hook can give up this
    process's claim on its segment while the memory stays mapped."""
    _pins.add(pin)
    return pin


def _release_all() -> None:
    # Memory that ctypes objects point into stays mapped (a daemon thread may still touch it
    # while the interpreter exits), but this process's claim on it goes first, so that the
    # unmaps below (or the retries) can remove the names. At exit, ``multiprocessing`` has
    # joined or terminated this process's children, which could otherwise share the claim.
    claims: list[_shmq.Pin | _shmq.Sync] = [*_pins]
    claims += [o for o in _live if isinstance(o, _shmq.Sync)]
    for claim in claims:
        try:
            claim.release_claim()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    for obj in list(_live):
        try:
            release(obj)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    _retry_pending()


def reclaim_stale() -> list[str]:
    """Removes every ``shmq-py-*`` segment in /dev/shm that no process maps any more.

    Returns the names removed. Segments in use (mapped by any process) are never touched.
    """
    removed: list[str] = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return removed
    for name in names:
        if name.startswith(PREFIX) and "~" not in name:
            try:
                if _shmq.unlink_if_unused(name):
                    removed.append(name)
            except Exception:  # noqa: BLE001 - another user's file, a race: leave it
                pass
    return removed


def _sweep_once() -> None:
    global _swept
    with _lock:
        if _swept:
            return
        _swept = True
    reclaim_stale()


def pin_for_child(obj: object, native: Native) -> str:
    """The state an object pickles to: its segment's name. Only while starting a process.

    The parent's handle stays mapped (so the name stays) until the process being started has
    exited: its ``Popen`` object, which lives that long, keeps a reference.
    """
    context.assert_spawning(obj)
    popen = context.get_spawning_popen()
    keep = getattr(popen, "_shmq_keepalive", None)
    if keep is None:
        keep = []
        try:
            popen._shmq_keepalive = keep  # type: ignore[union-attr]
        except AttributeError:
            pass
    keep.append(native)
    return str(native.name)


class _Anchor:
    """A weak-referenceable object for ``util.register_after_fork``."""


_anchor = _Anchor()


def _register_exit(_: object = None) -> None:
    # Priority -100: after multiprocessing has joined (or terminated) this process's children.
    util.Finalize(None, _release_all, exitpriority=-100)


_register_exit()
# A child's bootstrap clears the finalizers it inherited or registered while unpickling its
# arguments, then runs the after-fork hooks: register the exit hook again there.
util.register_after_fork(_anchor, _register_exit)
