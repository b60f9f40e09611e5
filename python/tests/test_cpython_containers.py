"""CPython's own tests of the manager's shared containers
(``test._test_multiprocessing._TestContainers``: ``list``, ``dict``, ``Namespace``, nesting, a
queue inside a list and a dict), run with ``shmq.Manager()`` plugged into its ``ManagerMixin``,
under fork and spawn.

The mixin's ``setUpClass`` makes ``multiprocessing.Manager()``; the subclasses below make
``shmq.Manager()`` instead. Its ``tearDownClass`` (wait for children, ``_number_of_objects()``,
``_debug_info()``, ``shutdown()``, ``join()``) runs as written. Nothing is skipped: every test of
the class applies.
"""

import os
import unittest

import pytest

try:
    import test._test_multiprocessing as tm
except ImportError:  # pragma: no cover - a Python without its test suite
    pytest.skip("CPython's test suite is not installed", allow_module_level=True)

import multiprocessing

from conftest import shmq_segments

import shmq


class ShmqManagerMixin(tm.ManagerMixin):
    @classmethod
    def setUpClass(cls):
        # BaseMixin.setUpClass records the dangling processes and threads; then our manager.
        tm.BaseMixin.setUpClass.__func__(cls)
        cls.manager = shmq.Manager()


def _suite_class(method):
    class Case(ShmqManagerMixin, tm._TestContainers, unittest.TestCase):
        start_method = method

        @classmethod
        def setUpClass(cls):
            cls._old_method = multiprocessing.get_start_method(allow_none=True)
            multiprocessing.set_start_method(method, force=True)
            cls._segments_before = shmq_segments()
            super().setUpClass()

        @classmethod
        def tearDownClass(cls):
            super().tearDownClass()
            multiprocessing.set_start_method(cls._old_method, force=True)
            mine = f"shmq-py-{os.getpid()}-"
            left = {n for n in shmq_segments() - cls._segments_before if n.startswith(mine)}
            assert not left, f"the manager's shutdown left segments: {sorted(left)}"

        def test_manager_is_shmqs(self):
            self.assertIsInstance(self.manager, shmq._manager.SyncManager)
            self.assertIsInstance(self.list(), shmq._manager.ListProxy)

    Case.__name__ = Case.__qualname__ = f"TestCPythonContainers_{method}"
    return Case


TestCPythonContainers_fork = _suite_class("fork")
TestCPythonContainers_spawn = _suite_class("spawn")
