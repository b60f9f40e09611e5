import gc
import os
import signal
import subprocess
import sys
import threading
import time

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


def _ranges_of(segment):
    """Address ranges at which this process maps /dev/shm/``segment`` (a creator's mapping is
    of the file under its build name, ``segment~init~...``, since removed)."""
    path = f"/dev/shm/{segment}"
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and (fields[5].rstrip() + " ").startswith((path + " ", path + "~")):
                lo, hi = fields[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def wait_until_in_futex(tid, segment=None, timeout=30):
    """Returns once thread ``tid`` of this process sleeps in a futex wait (``futex`` or
    ``futex_waitv``, read from /proc), on a word of shmq segment ``segment`` if given (for
    ``futex``: its first argument is the word's address); fails after ``timeout`` seconds."""
    ranges = _ranges_of(segment) if segment is not None else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/self/task/{tid}/syscall") as f:
            call = f.read().split()
        # futex or futex_waitv, on x86_64
        if call and call[0] in ("202", "449"):
            if ranges is None:
                return
            addr = int(call[1], 16)
            if call[0] == "202" and any(lo <= addr < hi for lo, hi in ranges):
                return
        time.sleep(0.001)
    raise AssertionError(f"thread {tid} never slept in a futex wait")


def sigint_latency(call):
    """Runs ``call()`` in this (the main) thread; once that thread sleeps in a futex wait, a
    helper thread sends SIGINT to the process. Returns the seconds from the signal to the
    ``KeyboardInterrupt`` that ``call`` must raise (fails if it returns instead).

    The helper looks only after the main thread says it is about to make the call: before
    that, the main thread may sleep in a futex for other reasons (``Thread.start`` waits for
    the helper to start), and a SIGINT then would fall outside the call.
    """
    main_tid = threading.get_native_id()
    armed = threading.Event()
    sent = []

    def helper():
        assert armed.wait(30)
        wait_until_in_futex(main_tid)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=helper)
    t.start()
    armed.set()
    try:
        call()
    except KeyboardInterrupt:
        raised = time.monotonic()
    else:
        raise AssertionError("the call returned instead of being interrupted")
    finally:
        t.join()
    return raised - sent[0]
