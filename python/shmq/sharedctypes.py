"""``Value``, ``Array``, ``RawValue`` and ``RawArray`` as in ``multiprocessing.sharedctypes``:
ctypes objects laid over shared memory, with the same typecodes and ctypes types.

Each object is one shmq segment holding the memory (and, for ``lock=True``, the
:class:`~shmq.RLock` that guards it). The ctypes object is an instance of a subclass of the
requested type (``isinstance(RawValue('i'), ctypes.c_int)`` holds) that pickles as a reference
to the segment while a process is being started. The synchronized wrappers are
``multiprocessing.sharedctypes``' own classes (``Synchronized``, ``SynchronizedArray``,
``SynchronizedString``), extended with atomic read-modify-write calls on integer values and
cells (``fetch_add``, ``compare_exchange``, ...): ``v.value += 1`` reads and writes in two steps
(a race between processes, as in ``multiprocessing``); ``v.fetch_add(1)`` is one atomic step.
"""

from __future__ import annotations

import ctypes
from multiprocessing import context
from multiprocessing import sharedctypes as _mp_sharedctypes
from typing import Any

from . import _lifecycle, _shmq
from .synchronize import _REENTRANT, RLock, _Segment, _Shared

__all__ = ["RawValue", "RawArray", "Value", "Array", "synchronized"]

typecode_to_type: dict[str, Any] = getattr(_mp_sharedctypes, "typecode_to_type")  # noqa: B009

# ctypes' own codes of the integer types: lower case signed, upper case unsigned.
_INTEGER_CODES = "bBhHiIlLqQ"

# The subclass with a __reduce__ of each ctypes type laid over shared memory, made once.
_shared_types: dict[type, type] = {}
_shared_classes: set[type] = set()


def _ctype(typecode_or_type: Any) -> Any:
    if isinstance(typecode_or_type, str):
        try:
            return typecode_to_type[typecode_or_type]
        except KeyError:
            raise TypeError(f"bad typecode {typecode_or_type!r}") from None
    return typecode_or_type


def _rebuild(native: _Shared, base: type, length: int | None) -> Any:
    return _lay(native, base, length)


def _reduce_shared(obj: Any) -> Any:
    """How a shared container stores a shmq value, array or wrapper: by reference to its
    segment (``NotImplemented`` for anything else)."""
    if isinstance(obj, _Atomics):
        return synchronized, (obj._obj, obj._lock)
    if type(obj) in _shared_classes:
        return _rebuild, (obj._shmq_native, obj._shmq_base, obj._shmq_length)
    return NotImplemented


def _shared_type(full: Any) -> Any:
    cls: Any = _shared_types.get(full)
    if cls is None:

        def __reduce__(self: Any) -> Any:  # noqa: N807
            context.assert_spawning(self)
            return _rebuild, (self._shmq_native, self._shmq_base, self._shmq_length)

        cls = type(full.__name__, (full,), {"__reduce__": __reduce__, "__module__": __name__})
        _shared_types[full] = cls
        _shared_classes.add(cls)
    return cls


def _lay(native: _Shared, base: Any, length: int | None) -> Any:
    """The ctypes object of `base` (or an array of `length` of them) over `native`'s memory."""
    full: Any = base if length is None else base * length
    obj = _shared_type(full).from_buffer(native.memory())
    # The memoryview does not keep the mapping: the object keeps a pin of it (good after the
    # handle is unmapped, at exit for instance), and the handle for its atomics and lock.
    obj._shmq_pin = _lifecycle.pinned(native.pin())
    obj._shmq_native = native
    obj._shmq_base = base
    obj._shmq_length = length
    return obj


def _new(base: type, length: int | None, lock: bool) -> Any:
    size = ctypes.sizeof(base) * (1 if length is None else length)
    cells = max(1, (size + 7) // 8)
    # With a lock, the segment is an RLock's (get_lock() returns it), holding the memory too.
    native = RLock._make(lock=_REENTRANT, cells=cells) if lock else _Segment._make(cells=cells)
    return _lay(native, base, length)


def RawValue(typecode_or_type: Any, *args: Any) -> Any:  # noqa: N802
    """A ctypes object of the given type (a typecode such as ``'i'`` or a ctypes type) in
    shared memory, initialised with *args* (zeroed without)."""
    obj = _new(_ctype(typecode_or_type), None, False)
    if args:
        obj.__init__(*args)
    return obj


def _raw_array(typecode_or_type: Any, size_or_initializer: Any, lock: bool) -> Any:
    base = _ctype(typecode_or_type)
    if isinstance(size_or_initializer, int):
        if size_or_initializer < 0:
            raise ValueError("array size must be >= 0")
        return _new(base, size_or_initializer, lock)
    items = list(size_or_initializer)
    obj = _new(base, len(items), lock)
    obj.__init__(*items)
    return obj


def RawArray(typecode_or_type: Any, size_or_initializer: Any) -> Any:  # noqa: N802
    """A ctypes array in shared memory: of *size* zeroed elements, or of the elements of the
    sequence *initializer*."""
    return _raw_array(typecode_or_type, size_or_initializer, False)


def _lock_for(obj: Any, lock: Any) -> Any:
    if lock in (True, None):
        return obj._shmq_native
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire'")
    return lock


def Value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Any = None) -> Any:  # noqa: N802
    """A ctypes object in shared memory, as :func:`RawValue`, wrapped with a lock (unless
    *lock* is false): a new :class:`~shmq.RLock` if *lock* is true or ``None``, else the lock
    given. The wrapper has ``value``, ``get_obj()``, ``get_lock()``, ``acquire``/``release``,
    ``with``, and, for integers, atomic ``fetch_add``, ``fetch_sub``, ``swap``, ``load``,
    ``store`` and ``compare_exchange``."""
    own = lock in (True, None)
    obj = _new(_ctype(typecode_or_type), None, own)
    if args:
        obj.__init__(*args)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(obj, lock))


def Array(  # noqa: N802
    typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True, ctx: Any = None
) -> Any:
    """A ctypes array in shared memory, as :func:`RawArray`, wrapped with a lock (unless *lock*
    is false) as :func:`Value` is; the wrapper supports ``len``, indexing, slicing, iteration,
    ``value``/``raw`` for ``c_char`` arrays, and atomic ``fetch_add(index, delta)`` & co. for
    integer elements."""
    own = lock in (True, None)
    obj = _raw_array(typecode_or_type, size_or_initializer, own)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(obj, lock))


class _Atomics:
    """Atomic read-modify-write calls on integer values (``index=None``) and array cells."""

    _obj: Any
    _lock: Any

    def __reduce__(self) -> Any:
        context.assert_spawning(self)
        return synchronized, (self._obj, self._lock)

    def _shape(self) -> tuple[_shmq.Sync, int, bool, int | None]:
        """The segment, element width, signedness and length (``None``: a single value) of
        the integer object wrapped; worked out once, then kept."""
        shape: tuple[_shmq.Sync, int, bool, int | None] | None = self.__dict__.get("_shmq_shape")
        if shape is not None:
            return shape
        obj = self._obj
        if type(obj) not in _shared_classes:
            raise TypeError("atomic operations need a shmq shared object")
        base = obj._shmq_base
        code = getattr(base, "_type_", None)
        if not isinstance(code, str) or code not in _INTEGER_CODES:
            raise TypeError(f"atomic operations need an integer type, not {base.__name__}")
        shape = (obj._shmq_native, ctypes.sizeof(base), code.islower(), obj._shmq_length)
        self.__dict__["_shmq_shape"] = shape
        return shape

    def _where(self, index: int | None) -> tuple[_shmq.Sync, int, int, bool]:
        native, width, signed, n = self._shape()
        if n is None:
            if index is not None:
                raise TypeError("a single value takes no index")
            return native, 0, width, signed
        if index is None:
            raise TypeError("an array's atomic operations take the element's index")
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("invalid index")
        return native, i * width, width, signed

    def load(self, index: int | None = None) -> int:
        """Read the integer atomically."""
        native, off, width, signed = self._where(index)
        return native.atomic_load(off, width, signed)

    def store(self, value: int, index: int | None = None) -> None:
        """Write the integer atomically (:exc:`OverflowError` if it does not fit)."""
        native, off, width, signed = self._where(index)
        native.atomic_store(off, width, signed, value)

    def swap(self, value: int, index: int | None = None) -> int:
        """Replace the integer with *value* atomically; return the old one."""
        native, off, width, signed = self._where(index)
        return native.atomic_swap(off, width, signed, value)

    def fetch_add(self, delta: int = 1, index: int | None = None) -> int:
        """Add *delta* atomically (wrapping around at the type's width, as C does); return the
        old value."""
        native, off, width, signed = self._where(index)
        return native.atomic_add(off, width, signed, delta)

    def fetch_sub(self, delta: int = 1, index: int | None = None) -> int:
        """Subtract *delta* atomically; return the old value."""
        return self.fetch_add(-delta, index)

    def compare_exchange(self, expected: int, new: int, index: int | None = None) -> bool:
        """Replace the integer with *new* if it equals *expected*, atomically; return whether it
        did."""
        native, off, width, signed = self._where(index)
        done, _ = native.atomic_compare_exchange(off, width, signed, expected, new)
        return done


class Synchronized(_Atomics, _mp_sharedctypes.Synchronized):  # type: ignore[type-arg]
    """``multiprocessing``'s synchronized value wrapper, with atomic integer operations, and
    ``get()``/``set()`` as a manager's ``ValueProxy`` has."""

    def get(self) -> Any:
        """The value (under the lock), as ``ValueProxy.get``."""
        return self.value

    def set(self, value: Any) -> None:
        """Set the value (under the lock), as ``ValueProxy.set``."""
        self.value = value


class _ArrayAtomics(_Atomics):
    """Array cells' atomics take the index first."""

    def fetch_add(self, index: int | None = None, delta: int = 1) -> int:  # type: ignore[override]
        """Add *delta* to element *index* atomically; return its old value."""
        return super().fetch_add(delta, index)

    def fetch_sub(self, index: int | None = None, delta: int = 1) -> int:  # type: ignore[override]
        """Subtract *delta* from element *index* atomically; return its old value."""
        return super().fetch_add(-delta, index)

    def store(self, index: int | None = None, value: int = 0) -> None:  # type: ignore[override]
        """Write element *index* atomically."""
        super().store(value, index)

    def swap(self, index: int | None = None, value: int = 0) -> int:  # type: ignore[override]
        """Replace element *index* with *value* atomically; return the old one."""
        return super().swap(value, index)

    def compare_exchange(  # type: ignore[override]
        self, index: int | None = None, expected: int = 0, new: int = 0
    ) -> bool:
        """Replace element *index* with *new* if it equals *expected*; whether it did."""
        return super().compare_exchange(expected, new, index)


class SynchronizedArray(_ArrayAtomics, _mp_sharedctypes.SynchronizedArray):  # type: ignore[type-arg]
    """``multiprocessing``'s synchronized array wrapper, with atomic integer operations."""


class SynchronizedString(_ArrayAtomics, _mp_sharedctypes.SynchronizedString):
    """``multiprocessing``'s synchronized ``c_char`` array wrapper (``value``, ``raw``)."""


def synchronized(obj: Any, lock: Any = None, ctx: Any = None) -> Any:
    """Wrap the ctypes object *obj* with *lock* (a new :class:`~shmq.RLock` if ``None``), as
    ``multiprocessing.sharedctypes.synchronized`` does."""
    if lock is None:
        lock = RLock()
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock, ctx)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock, ctx)
        return SynchronizedArray(obj, lock, ctx)
    # Structures: multiprocessing's wrapper, with a property per field.
    return _mp_sharedctypes.synchronized(obj, lock, ctx)
