"""Runs CPython's own multiprocessing test classes (``test._test_multiprocessing``) against
shmq's classes: a test class of the suite combined with a mixin whose factories are shmq's.

Under spawn and forkserver the children unpickle bound methods of these classes by module and
name, so each combined class must be a module-level name of the test module that made it:
:func:`suite_classes` returns them for the caller to assign (``globals().update(...)``).
"""

import multiprocessing
import unittest


def suite_classes(module, prefix, mixin, bases, methods, skips):
    """One ``unittest.TestCase`` per (base, start method): ``{name: class}``.

    ``skips`` maps test method names to the reason they are skipped.
    """
    out = {}
    for base in bases:
        for method in methods:
            case = _combine(mixin, base, method, skips)
            name = f"{prefix}{base.__name__.lstrip('_')}_{method}"
            case.__name__ = case.__qualname__ = name
            case.__module__ = module
            out[name] = case
    return out


def _combine(mixin, base, method, skips):
    class Case(mixin, base, unittest.TestCase):
        start_method = method

        @classmethod
        def setUpClass(cls):
            cls._old_method = multiprocessing.get_start_method(allow_none=True)
            multiprocessing.set_start_method(method, force=True)
            super().setUpClass()

        @classmethod
        def tearDownClass(cls):
            super().tearDownClass()
            multiprocessing.set_start_method(cls._old_method, force=True)

        def setUp(self):
            name = self._testMethodName
            if name in skips:
                self.skipTest(skips[name])
            super().setUp()

    return Case
