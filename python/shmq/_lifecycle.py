"""Segment names: creation, tracking, and removal once no process maps them.

Every queue is one shmq segment, a file ``/dev/shm/shmq-py-<pid>-<random>``. Each process that
maps it holds a shared ``flock`` on it for as long as it does (the kernel drops the lock when the
process exits, however it exits). The name is removed by whichever process finds the segment
unused, under an exclusive lock:

* when a process drops its last handle of the queue (garbage collection, or ``release()``);
* when a process exits normally: a ``multiprocessing`` finalizer releases every handle still
  alive, after the process's children were joined;
* after a SIGKILL of every process: ``multiprocessing``'s resource tracker (one process per
  program, alive until every process of the program has exited) has the name registered as a
  shared-memory object, and unlinks it at its own exit;
* and, for names of programs whose tracker died too, :func:`reclaim_stale` (run by the first
  queue a process creates) removes every ``shmq-py-*`` segment nobody maps.

A queue is only ever needed while some process maps it: it pickles only for process start-up
(as ``multiprocessing.Queue``), and the parent's pickled handle stays mapped by the starting
process's ``Popen`` object until the child has exited.
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from multiprocessing import resource_tracker, util

from . import _shmq

PREFIX = "shmq-py-"
SHM_DIR = "/dev/shm"

_live: weakref.WeakSet[_shmq.Channel] = weakref.WeakSet()
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


def create(capacity: int, max_len: int, joinable: bool) -> _shmq.Channel:
    """Creates a new queue segment, tracked for removal."""
    _sweep_once()
    # Start the tracker (a fork and exec) before the segment's file is open here: a child
    # forked while it is open holds its lock until it execs.
    resource_tracker.ensure_running()
    _retry_pending()
    name = _new_name()
    ch = _shmq.Channel.create(name, capacity, max_len, joinable)
    resource_tracker.register("/" + name, "shared_memory")
    _live.add(ch)
    return ch


def open_channel(name: str, joinable: bool) -> _shmq.Channel:
    """Maps an existing queue segment (a handle received at process start)."""
    ch = _shmq.Channel.open(name, joinable)
    _live.add(ch)
    return ch


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
            gone = _shmq.Channel.unlink_if_unused(name)
        except Exception:  # noqa: BLE001 - best effort
            gone = False
        if gone:
            _unlinked(name)
        if gone or not os.path.exists(os.path.join(SHM_DIR, name)):
            with _lock:
                _pending.discard(name)


def release(ch: _shmq.Channel) -> None:
    """Drops this process's mapping of ``ch`` and removes the name if nobody maps it."""
    if ch.release():
        _unlinked(ch.name)
    elif os.path.exists(os.path.join(SHM_DIR, ch.name)):
        _still_mapped(ch.name)


def _release_all() -> None:
    for ch in list(_live):
        try:
            release(ch)
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
                if _shmq.Channel.unlink_if_unused(name):
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
