"""CPython's own multiprocessing queue tests (``test._test_multiprocessing._TestQueue``), run with
shmq's ``Queue`` and ``JoinableQueue`` plugged into its ``ProcessesMixin``.

The suite's test methods build their queues with ``self.Queue(...)`` / ``self.JoinableQueue()``,
which the mixin binds (``Queue = staticmethod(multiprocessing.Queue)``); the subclasses below
rebind them to shmq's. Cases that build ``multiprocessing.Queue()`` directly (``test_timeout``,
``test_closed_queue_put_get_exceptions``, ``test_no_import_lock_contention``,
``test_queue_feeder_on_queue_feeder_error``) test the stdlib queue, not shmq's: they run, and
pass or fail on the stdlib's merits (shmq's equivalents are in test_api.py).

Skipped, with the reason:

* ``test_queue_feeder_donot_stop_onexc``: puts an object whose ``__reduce__`` raises and
  expects ``put`` to succeed (multiprocessing pickles in its feeder thread, prints the error and
  drops the item). shmq encodes in ``put`` and raises there, by design (test_api.py's
  ``test_unpicklable_object_raises_at_put_and_the_queue_goes_on``).
"""

import pytest

try:
    import test._test_multiprocessing as tm
except ImportError:  # pragma: no cover - a Python without its test suite
    pytest.skip("CPython's test suite is not installed", allow_module_level=True)

from cpython_suite import suite_classes

import shmq

SKIPS = {
    "test_queue_feeder_donot_stop_onexc": "shmq raises at put for an object that cannot be "
    "pickled; multiprocessing's feeder thread prints and drops it",
}


class ShmqProcessesMixin(tm.ProcessesMixin):
    Queue = staticmethod(shmq.Queue)
    JoinableQueue = staticmethod(shmq.JoinableQueue)


globals().update(
    suite_classes(
        __name__,
        "TestCPython",
        ShmqProcessesMixin,
        [tm._TestQueue],
        ["fork", "spawn", "forkserver"],
        SKIPS,
    )
)
