import gc
import os
import subprocess
import sys

import pytest

SEEDS = os.path.join(os.path.dirname(__file__), "seeds")


def shmq_segments():
    return {n for n in os.listdir("/dev/shm") if n.startswith("shmq-py-")}


@pytest.fixture
def no_leftovers():
    """Fails the test if it leaves shmq segments of this process behind once collected."""
    before = shmq_segments()
    yield
    gc.collect()
    mine = f"shmq-py-{os.getpid()}-"
    left = {n for n in shmq_segments() - before if n.startswith(mine)}
    assert not left, f"segments left in /dev/shm: {sorted(left)}"


def run_program(source, start_method, timeout=120, **kwargs):
    """Runs a program's source in a fresh interpreter under ``start_method``; returns the
    completed process (output captured as text)."""
    wrapper = (
        "import multiprocessing, runpy, sys\n"
        f"multiprocessing.set_start_method({start_method!r})\n"
        "runpy.run_path(sys.argv[1], run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", wrapper, source],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
