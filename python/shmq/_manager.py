"""``Manager()`` without a server process: shared ``list``, ``dict`` and ``Namespace`` objects
that every process reads and writes directly in shared memory.

``multiprocessing.Manager()`` starts a server process that owns the objects and answers each
proxy method call over a socket. ``shmq.Manager()`` starts no process: each ``list()``,
``dict()`` or ``Namespace()`` it makes is one shared-memory segment (a crash-safe list or hash
map in the segment's heap, and a lock), and its proxy works on it in place::

    import shmq as multiprocessing

    def work(shared, k):
        shared.extend(range(5 * k + 1, 5 * k + 6))

    if __name__ == "__main__":
        with multiprocessing.Manager() as manager:
            shared = manager.list()
            ps = [multiprocessing.Process(target=work, args=(shared, k)) for k in range(3)]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
            shared.sort()
            print(shared)  # [1, 2, ..., 15]

* **Values**: whatever a :class:`shmq.Queue` carries (plain data natively, anything else pickled).
  A managed list, dict or namespace, or a shmq queue, stored inside another is stored *by
  reference*: reading it back, in any process, gives a proxy of the same shared object.
* **Atomicity**: each method call (``sort``, ``l[a:b] = ...``, ``update``, ``setdefault``,
  ``popitem``, ``+=``, ...) holds the object's lock, so it is one step for every other process,
  as one call is in a manager's server. A process killed while holding it does not wedge the
  others: the next caller takes the lock over, and finds every item or entry whole (old or new).
* **Lifetime**: the objects a manager makes live until ``manager.shutdown()`` (also at the end
  of a ``with`` block), or the exit of the process that made the manager, as a manager's server
  does. Proxies pickle by name at any time (as process arguments, or inside other containers).
"""

from __future__ import annotations

import multiprocessing as _mp
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Callable

from . import _lifecycle, _shmq

__all__ = ["Manager", "SyncManager", "ListProxy", "DictProxy", "Namespace"]

# Every container this process maps, by segment name: rebuilding a reference (unpickling) to an
# object this process already maps gives the same proxy.
_opened: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_opened_lock = threading.Lock()


def _rebuild(kind: str, name: str) -> Any:
    """The proxy of the shared ``kind`` ("list", "dict", "ns") in segment ``name``."""
    with _opened_lock:
        obj = _opened.get(name)
        if obj is None:
            cls = _KINDS[kind]
            native = cls(name, False) if kind != "ns" else _shmq.SharedDict(name, False)
            _lifecycle.opened(native)
            obj = native if kind != "ns" else Namespace._over(native)
            _opened[name] = obj
        return obj


def _sort_order(vals: list[Any], key: Callable[[Any], Any] | None, reverse: bool) -> list[int]:
    """The positions of ``vals`` in the order ``vals.sort(key=key, reverse=reverse)`` puts them
    (stable, as ``list.sort``)."""
    get = vals.__getitem__
    sort_key: Callable[[int], Any] = get if key is None else (lambda i: key(get(i)))
    return sorted(range(len(vals)), key=sort_key, reverse=reverse)


class ListProxy(_shmq.SharedList):
    """A list in shared memory, made by :meth:`SyncManager.list`, with the methods of
    ``multiprocessing``'s ``ListProxy`` (indexing and slicing, ``append``, ``extend``, ``insert``,
    ``pop``, ``remove``, ``index``, ``count``, ``sort``, ``reverse``, ``+=``, ``*=``, ``+``,
    ``*``, ``in``, ``len``, iteration) and ``copy``/``clear``.

    Reading returns copies (``l[0]`` of a list of lists is a plain list), except for shared
    objects stored in it, which come back as proxies of the same objects. Iteration reads one
    item per step, so it sees changes made meanwhile (as iterating a list does).
    """

    def __iter__(self) -> Iterator[Any]:
        i = 0
        while True:
            try:
                item = self[i]
            except IndexError:
                return
            yield item
            i += 1

    def __reversed__(self) -> Iterator[Any]:
        items: list[Any] = self.copy()
        return iter(items[::-1])

    def __iadd__(self, other: Iterable[Any]) -> ListProxy:
        self.extend(other)
        return self

    def __imul__(self, n: int) -> ListProxy:
        self._imul(n.__index__())
        return self

    def __add__(self, other: list[Any]) -> list[Any]:
        return self.copy() + other

    def __mul__(self, n: int) -> list[Any]:
        return self.copy() * n

    def __rmul__(self, n: int) -> list[Any]:
        return self.copy() * n

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("list", self.name))

    def __str__(self) -> str:
        return str(self.copy())

    def __repr__(self) -> str:
        return f"<shmq.ListProxy {self.name}>"


class DictProxy(_shmq.SharedDict):
    """A dict in shared memory, made by :meth:`SyncManager.dict`, with the methods of
    ``multiprocessing``'s ``DictProxy``: ``d[k]``, ``d[k] = v``, ``del d[k]``, ``in``, ``len``,
    iteration (in insertion order), ``get``, ``pop``, ``popitem``, ``setdefault``, ``update``,
    ``keys``/``values``/``items`` (lists, snapshots), ``clear``, ``copy`` (a plain dict).

    Keys are any hashable value a queue can carry; see the design notes in docs/design.md for how
    keys are compared (``True``, ``1`` and ``1.0`` are one key, as in a dict).
    """

    def __iter__(self) -> Iterator[Any]:
        return _DictIterator(self)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Sets every entry of *other* (a mapping, or an iterable of pairs) and of *kwargs*, in
        one step for other processes."""
        if isinstance(other, _shmq.SharedDict):
            pairs = list(other.items())
        else:
            tmp: dict[Any, Any] = {}
            tmp.update(other)
            pairs = list(tmp.items())
        pairs.extend(kwargs.items())
        self._set_many(pairs)

    def copy(self) -> dict[Any, Any]:
        """A plain dict with the entries (a snapshot)."""
        return dict(self.items())

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("dict", self.name))

    def __str__(self) -> str:
        return str(self.copy())

    def __repr__(self) -> str:
        return f"<shmq.DictProxy {self.name}>"


class _DictIterator:
    """Iterates over a snapshot of a dict's keys; raises ``RuntimeError`` once the dict's size
    changed since (as iterating a dict does)."""

    def __init__(self, d: DictProxy) -> None:
        self._d = d
        self._keys = iter(d.keys())
        self._len = len(d)
        self._done = False

    def __iter__(self) -> _DictIterator:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        if len(self._d) != self._len:
            self._done = True
            raise RuntimeError("dictionary changed size during iteration")
        try:
            return next(self._keys)
        except StopIteration:
            self._done = True
            raise


class Namespace:
    """An object whose attributes are shared (made by :meth:`SyncManager.Namespace`), as
    ``multiprocessing``'s ``NamespaceProxy``: ``ns.x = 1`` in one process is ``ns.x`` in every
    other. Attributes whose names start with ``_`` stay local to the proxy, as there."""

    _native: _shmq.SharedDict

    @classmethod
    def _over(cls, native: _shmq.SharedDict) -> Namespace:
        ns = cls.__new__(cls)
        object.__setattr__(ns, "_native", native)
        return ns

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._native[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._native[name] = value

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            object.__delattr__(self, name)
            return
        try:
            del self._native[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, ("ns", self._native.name))

    def __repr__(self) -> str:
        items = sorted(f"{k}={v!r}" for k, v in self._native.items() if not str(k).startswith("_"))
        return f"Namespace({', '.join(items)})"


_KINDS: dict[str, Any] = {"list": ListProxy, "dict": DictProxy, "ns": Namespace}


def _shmq_attr(name: str) -> Any:
    """``shmq.<name>`` at call time (shmq's own once it has one, else ``multiprocessing``'s)."""
    import shmq

    return getattr(shmq, name, None) or getattr(_mp, name)


class SyncManager:
    """What :func:`Manager` returns: makes shared objects, and owns them until
    :meth:`shutdown`. There is no server process; :meth:`start` and :meth:`join` are there for
    programs written for ``multiprocessing.managers.SyncManager``.

    ``list()``, ``dict()`` and ``Namespace()`` are shmq's shared-memory objects; ``Queue()`` and
    ``JoinableQueue()`` are :class:`shmq.Queue` / :class:`shmq.JoinableQueue`; ``Value``,
    ``Array``, ``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Condition``,
    ``Event``, ``Barrier`` and ``Pool`` are the ``shmq`` package's (process-shared objects, not
    proxies: pass them to processes as arguments).
    """

    def __init__(self, address: Any = None, authkey: Any = None, *, ctx: Any = None) -> None:
        self._objects: list[Any] = []
        self._lock = threading.Lock()
        self._started = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self, initializer: Any = None, initargs: Iterable[Any] = ()) -> None:
        """Marks the manager started (no process is started). Calls ``initializer(*initargs)``
        in this process if given."""
        self._started = True
        if initializer is not None:
            initializer(*initargs)

    def shutdown(self) -> None:
        """Releases every object this manager made: this process unmaps them and each one's
        segment is removed once no process maps it. Proxies of them raise ``ValueError`` here
        afterwards."""
        with self._lock:
            objs, self._objects = self._objects, []
            self._started = False
        for obj in objs:
            native = _native_of(obj)
            if native is not None:
                try:
                    _lifecycle.release(native)
                except Exception:  # noqa: BLE001 - best effort, as a server's shutdown
                    pass

    def join(self, timeout: float | None = None) -> None:
        """Returns at once: there is no manager process to wait for."""

    def __enter__(self) -> SyncManager:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def address(self) -> None:
        """``None``: a shmq manager has no server address."""
        return None

    def _number_of_objects(self) -> int:
        """How many objects this manager owns."""
        with self._lock:
            return len(self._objects)

    def _debug_info(self) -> str:
        """One line per object owned."""
        with self._lock:
            return "\n".join(f"  {o!r}" for o in self._objects)

    def _own(self, obj: Any) -> Any:
        with self._lock:
            self._objects.append(obj)
        return obj

    def _make(self, kind: str) -> Any:
        if kind == "ns":
            native = _lifecycle.create(lambda name: _shmq.SharedDict(name, True))
            obj: Any = Namespace._over(native)
            name = native.name
        else:
            cls = _KINDS[kind]
            obj = _lifecycle.create(lambda name: cls(name, True))
            name = obj.name
        # The proxy keeps its manager (and so the objects stored in it by reference) alive in
        # this process, as a multiprocessing proxy does.
        obj._manager = self
        with _opened_lock:
            _opened[name] = obj
        return self._own(obj)

    # -- shared containers ------------------------------------------------------------------

    def list(self, sequence: Iterable[Any] = (), /) -> ListProxy:
        """A new shared list, holding the items of *sequence*."""
        obj: ListProxy = self._make("list")
        items = list(sequence)
        if items:
            obj.extend(items)
        return obj

    def dict(self, *args: Any, **kwargs: Any) -> DictProxy:
        """A new shared dict, made as ``dict(*args, **kwargs)``."""
        obj: DictProxy = self._make("dict")
        if args or kwargs:
            obj.update(*args, **kwargs)
        return obj

    def Namespace(self, **kwargs: Any) -> Namespace:  # noqa: N802
        """A new shared namespace with the attributes *kwargs*."""
        ns: Namespace = self._make("ns")
        for k, v in kwargs.items():
            setattr(ns, k, v)
        return ns

    # -- the rest, from the shmq package ------------------------------------------------------

    def Queue(self, maxsize: int = 0) -> Any:  # noqa: N802
        """A :class:`shmq.Queue`, alive until :meth:`shutdown`."""
        return self._own(_shmq_attr("Queue")(maxsize))

    def JoinableQueue(self, maxsize: int = 0) -> Any:  # noqa: N802
        """A :class:`shmq.JoinableQueue`, alive until :meth:`shutdown`."""
        return self._own(_shmq_attr("JoinableQueue")(maxsize))

    def Value(self, typecode: Any, value: Any, lock: bool = True) -> Any:  # noqa: N802
        """``shmq.Value(typecode, value, lock=lock)``."""
        return self._own(_shmq_attr("Value")(typecode, value, lock=lock))

    def Array(self, typecode: Any, sequence: Any, lock: bool = True) -> Any:  # noqa: N802
        """``shmq.Array(typecode, sequence, lock=lock)``."""
        return self._own(_shmq_attr("Array")(typecode, sequence, lock=lock))

    def Lock(self) -> Any:  # noqa: N802
        """``shmq.Lock()``."""
        return self._own(_shmq_attr("Lock")())

    def RLock(self) -> Any:  # noqa: N802
        """``shmq.RLock()``."""
        return self._own(_shmq_attr("RLock")())

    def Semaphore(self, value: int = 1) -> Any:  # noqa: N802
        """``shmq.Semaphore(value)``."""
        return self._own(_shmq_attr("Semaphore")(value))

    def BoundedSemaphore(self, value: int = 1) -> Any:  # noqa: N802
        """``shmq.BoundedSemaphore(value)``."""
        return self._own(_shmq_attr("BoundedSemaphore")(value))

    def Condition(self, lock: Any = None) -> Any:  # noqa: N802
        """``shmq.Condition(lock)``."""
        return self._own(_shmq_attr("Condition")(lock))

    def Event(self) -> Any:  # noqa: N802
        """``shmq.Event()``."""
        return self._own(_shmq_attr("Event")())

    def Barrier(self, parties: int, action: Any = None, timeout: float | None = None) -> Any:  # noqa: N802
        """``shmq.Barrier(parties, action, timeout)``."""
        return self._own(_shmq_attr("Barrier")(parties, action, timeout))

    def Pool(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        """``shmq.Pool(*args, **kwargs)`` (not owned: close or terminate it yourself)."""
        return _shmq_attr("Pool")(*args, **kwargs)


def _native_of(obj: Any) -> Any:
    """The native handle to unmap for an object a manager owns (``None``: nothing to do)."""
    from . import queues

    if isinstance(obj, (_shmq.SharedList, _shmq.SharedDict, _shmq.Sync)):
        # Containers, locks, semaphores, events: their calls raise once unmapped. (Shared
        # values are not unmapped here: ctypes objects over them could still be read.)
        return obj
    if isinstance(obj, Namespace):
        return obj._native
    if isinstance(obj, (queues.Queue, queues.SimpleQueue)):
        return obj._native
    return None


def Manager(*, ctx: Any = None) -> SyncManager:  # noqa: N802
    """A started :class:`SyncManager` (``multiprocessing.Manager()`` without a server process).

    Use it as ``with shmq.Manager() as m: ...``, or ``m = shmq.Manager(); ...;
    m.shutdown()``.
    """
    m = SyncManager(ctx=ctx)
    m.start()
    return m
