"""Queues shared between processes: start methods, Pool, signals, kills, cleanup."""

import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import shmq_segments

import shmq

METHODS = ["fork", "spawn", "forkserver"]


def _echo(q_in, q_out):
    while (item := q_in.get()) is not None:
        q_out.put(item * 2)


@pytest.mark.parametrize("method", METHODS)
def test_queues_as_process_arguments(method):
    ctx = multiprocessing.get_context(method)
    q_in, q_out = shmq.Queue(), shmq.Queue()
    p = ctx.Process(target=_echo, args=(q_in, q_out), daemon=True)
    p.start()
    q_in.put_many([1, 2, 3, None])
    assert [q_out.get(timeout=30) for _ in range(3)] == [2, 4, 6]
    p.join(30)
    assert p.exitcode == 0


def _joinable_worker(q):
    while True:
        q.get()
        q.task_done()


@pytest.mark.parametrize("method", METHODS)
def test_joinable_queue_join_across_processes(method):
    ctx = multiprocessing.get_context(method)
    q = shmq.JoinableQueue()
    p = ctx.Process(target=_joinable_worker, args=(q,), daemon=True)
    p.start()
    q.put_many(range(100))
    q.join()
    assert q.unfinished_tasks == 0
    p.terminate()
    p.join()


def _simple_worker(q):
    q.put(os.getpid())


@pytest.mark.parametrize("method", METHODS)
def test_simple_queue_across_processes(method):
    ctx = multiprocessing.get_context(method)
    q = shmq.SimpleQueue()
    p = ctx.Process(target=_simple_worker, args=(q,), daemon=True)
    p.start()
    assert q.get() == p.pid
    p.join(30)


_pool_queue = None


def _pool_init(q):
    global _pool_queue
    _pool_queue = q


def _pool_task(x):
    _pool_queue.put((os.getpid(), x))
    return x


@pytest.mark.parametrize("method", METHODS)
def test_queue_through_a_pool_initializer(method):
    q = shmq.Queue()
    with shmq.get_context(method).Pool(2, initializer=_pool_init, initargs=(q,)) as pool:
        assert sorted(pool.map(_pool_task, range(20))) == list(range(20))
    got = sorted(x for _, x in (q.get(timeout=30) for _ in range(20)))
    assert got == list(range(20))


def _wait_for_shutdown(q, out):
    try:
        q.get()
    except shmq.ShutDown:
        out.put("woken")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_shutdown_wakes_waiters_in_other_processes(method):
    ctx = multiprocessing.get_context(method)
    q, out = shmq.Queue(), shmq.Queue()
    procs = [ctx.Process(target=_wait_for_shutdown, args=(q, out), daemon=True) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        _wait_until_blocked(p.pid)
    q.shutdown()
    assert [out.get(timeout=30), out.get(timeout=30)] == ["woken", "woken"]
    for p in procs:
        p.join(30)


def _wait_until_blocked(pid, timeout=30):
    """Waits until the main thread of ``pid`` sleeps in a futex wait (a blocked get)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/syscall") as f:
                # futex or futex_waitv, on x86_64
                if f.read().split()[0] in ("202", "449"):
                    return
        except (OSError, IndexError):
            pass
        time.sleep(0.001)
    raise AssertionError(f"process {pid} never blocked in futex")


def _interruptible_get(q, out):
    try:
        q.get()
    except KeyboardInterrupt:
        out.put(("interrupted", time.monotonic()))


def _interruptible_put(q, out):
    q.put("fills the queue")
    try:
        q.put("blocks")
    except KeyboardInterrupt:
        out.put(("interrupted", time.monotonic()))


@pytest.mark.parametrize("op", [_interruptible_get, _interruptible_put], ids=["get", "put"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_ctrl_c_interrupts_a_blocked_call(method, op):
    if not os.path.exists("/proc/self/syscall"):
        pytest.skip("needs /proc/PID/syscall")
    ctx = multiprocessing.get_context(method)
    q, out = shmq.Queue(1), shmq.Queue()
    p = ctx.Process(target=op, args=(q, out), daemon=True)
    p.start()
    _wait_until_blocked(p.pid)
    sent = time.monotonic()
    os.kill(p.pid, signal.SIGINT)
    what, when = out.get(timeout=10)
    p.join(10)
    assert what == "interrupted"
    assert when - sent < 0.1, f"KeyboardInterrupt {when - sent:.3f} s after SIGINT"


def _flood(q):
    i = 0
    while True:
        q.put(i)
        i += 1


def test_sigkilled_producer_leaves_a_working_queue():
    ctx = multiprocessing.get_context("fork")
    q = shmq.Queue(64)
    p = ctx.Process(target=_flood, args=(q,))
    p.start()
    seen = [q.get(timeout=30) for _ in range(1000)]
    assert seen == list(range(1000))
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    # What it put before dying is there, in order; then the queue is empty, not wedged.
    rest = []
    while True:
        try:
            rest.append(q.get(timeout=0.5))
        except queue.Empty:
            break
    assert rest == list(range(1000, 1000 + len(rest)))
    q.put("after")
    assert q.get(timeout=5) == "after"


def _drain(q, out):
    while True:
        out.put(q.get())


def test_sigkilled_consumer_leaves_a_working_queue():
    ctx = multiprocessing.get_context("fork")
    q, out = shmq.Queue(16), shmq.Queue(100_000)
    p = ctx.Process(target=_drain, args=(q, out))
    p.start()
    q.put_many(range(500))
    got = [out.get(timeout=30) for _ in range(100)]
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert got == list(range(100))
    # A new consumer gets the rest; at most the one item the dead consumer held is lost.
    p2 = ctx.Process(target=_drain, args=(q, out))
    p2.start()
    q.put("end")
    rest = []
    while (item := out.get(timeout=30)) != "end":
        rest.append(item)
    p2.kill()
    p2.join()
    taken = got + rest
    assert taken == sorted(taken)
    assert len(set(range(500)) - set(taken)) <= 2


KILLED_PROGRAM = textwrap.dedent(
    """
    import os, signal, sys
    import shmq as multiprocessing

    def child(q, hello):
        hello.put(os.getpid())
        q.get()  # blocks until killed

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[1])
        q, hello = multiprocessing.Queue(), multiprocessing.Queue()
        p = multiprocessing.Process(target=child, args=(q, hello))
        p.start()
        pid = hello.get()
        print(q._native.name, hello._native.name, flush=True)
        os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_nothing_left_in_dev_shm_after_every_process_is_sigkilled(method, tmp_path):
    prog = tmp_path / "killed.py"
    prog.write_text(KILLED_PROGRAM)
    r = subprocess.run(
        [sys.executable, str(prog), method], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == -signal.SIGKILL
    names = set(r.stdout.split())
    assert len(names) == 2
    # The program's resource tracker outlives it and removes the names when it sees every
    # process of the program gone.
    deadline = time.monotonic() + 30
    while names & shmq_segments() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not names & shmq_segments()


ORPHAN_PROGRAM = textwrap.dedent(
    """
    import os, select, signal, sys
    import shmq as multiprocessing

    def child(q, parent):
        q.get()  # released by the parent, which is SIGKILLed right after
        # Exit only once the parent is dead, so that this process is the last user (exiting
        # first would leave the name to the resource tracker, which warns as it removes it).
        try:
            fd = os.pidfd_open(parent)
        except ProcessLookupError:
            return
        select.select([fd], [], [])

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[1])
        q = multiprocessing.Queue()
        p = multiprocessing.Process(target=child, args=(q, os.getpid()))
        p.start()
        print(q._native.name, p.pid, flush=True)
        q.put("go")
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_last_process_to_exit_removes_the_name_after_its_creator_was_killed(method, tmp_path):
    prog = tmp_path / "orphan.py"
    prog.write_text(ORPHAN_PROGRAM)
    r = subprocess.run(
        [sys.executable, str(prog), method], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == -signal.SIGKILL
    name, pid = r.stdout.split()
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)
    # The orphaned child got its message and exited normally: its exit hook removed the name
    # (the resource tracker, alive until then, had nothing left to clean up and said nothing).
    while name in shmq_segments() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert name not in shmq_segments()
    assert "leaked" not in r.stderr


def test_reclaim_stale_removes_unmapped_segments_only():
    live = shmq.Queue(2)  # (a process's first queue sweeps once itself: done before the leaver)
    # A process that made a segment and vanished without any cleanup (os._exit: no finalizer,
    # no destructor, no resource tracker) leaves its name behind, unmapped.
    leaver = (
        "import os; from shmq import _shmq\n"
        "ch = _shmq.Channel.create('shmq-py-0-reclaimtest', 4, 64, False)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", leaver], check=True, timeout=60)
    assert "shmq-py-0-reclaimtest" in shmq_segments()
    removed = shmq.reclaim_stale()
    assert "shmq-py-0-reclaimtest" in removed
    assert "shmq-py-0-reclaimtest" not in shmq_segments()
    assert live._native.name not in removed
    assert live._native.name in shmq_segments()
    live.put("still works")
    assert live.get() == "still works"
