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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(f"/proc/self/task/{main_tid}/syscall") as f:
                # futex or futex_waitv, on x86_64
                if f.read().split()[0] in ("202", "449"):
                    break
            time.sleep(0.001)
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
