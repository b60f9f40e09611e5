"""CPython's own tests of multiprocessing's locks, semaphores, conditions, events, barriers and
shared values (``test._test_multiprocessing``: ``_TestLock``, ``_TestSemaphore``,
``_TestCondition``, ``_TestEvent``, ``_TestBarrier``, ``_TestValue``, ``_TestArray``), run with
shmq's classes plugged into its ``ProcessesMixin``, under fork and spawn.

Nothing is skipped.
"""

import pytest

try:
    import test._test_multiprocessing as tm
except ImportError:  # pragma: no cover - a Python without its test suite
    pytest.skip("CPython's test suite is not installed", allow_module_level=True)

from cpython_suite import suite_classes

import shmq


class ShmqProcessesMixin(tm.ProcessesMixin):
    Queue = staticmethod(shmq.Queue)
    JoinableQueue = staticmethod(shmq.JoinableQueue)
    Lock = staticmethod(shmq.Lock)
    RLock = staticmethod(shmq.RLock)
    Semaphore = staticmethod(shmq.Semaphore)
    BoundedSemaphore = staticmethod(shmq.BoundedSemaphore)
    Condition = staticmethod(shmq.Condition)
    Event = staticmethod(shmq.Event)
    Barrier = staticmethod(shmq.Barrier)
    Value = staticmethod(shmq.Value)
    Array = staticmethod(shmq.Array)
    RawValue = staticmethod(shmq.RawValue)
    RawArray = staticmethod(shmq.RawArray)


BASES = [
    tm._TestLock,
    tm._TestSemaphore,
    tm._TestCondition,
    tm._TestEvent,
    tm._TestBarrier,
    tm._TestValue,
    tm._TestArray,
]

globals().update(
    suite_classes(__name__, "TestCPython", ShmqProcessesMixin, BASES, ["fork", "spawn"], {})
)
