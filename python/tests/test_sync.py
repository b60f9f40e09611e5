"""shmq's locks, semaphores, conditions, events, barriers and shared values beyond CPython's
own tests (test_cpython_sync_suite.py): robustness against killed holders, Ctrl-C, atomic
operations, pickling rules, cleanup."""

import ctypes
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import warnings

import pytest
from conftest import sigint_latency, wait_until_in_futex

import shmq

METHODS = ["fork", "spawn"]


def _hold_until_killed(lock, holding):
    with lock:
        holding.set()
        threading.Event().wait()


def _lock_of(kind):
    if kind == "value":
        return shmq.Value("i", 0).get_lock()
    return getattr(shmq, kind)()


@pytest.mark.parametrize("kind", ["Lock", "RLock", "value"])
@pytest.mark.parametrize("method", METHODS)
def test_a_lock_whose_holder_was_sigkilled_is_taken_over_with_a_warning(method, kind):
    ctx = multiprocessing.get_context(method)
    lock, holding = _lock_of(kind), shmq.Event()
    p = ctx.Process(target=_hold_until_killed, args=(lock, holding), daemon=True)
    p.start()
    assert holding.wait(30)
    # A live holder is waited for, never taken over from.
    assert lock.acquire(timeout=0.2) is False
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    with pytest.warns(shmq.OwnerDeadWarning, match="died holding the lock"):
        assert lock.acquire(timeout=30) is True
    lock.release()
    # Released clean: the next holder is not warned.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire(timeout=30) is True
    lock.release()


def test_a_contender_already_waiting_gets_the_lock_when_the_holder_is_killed():
    ctx = multiprocessing.get_context("fork")
    lock, holding = shmq.Lock(), shmq.Event()
    p = ctx.Process(target=_hold_until_killed, args=(lock, holding), daemon=True)
    p.start()
    assert holding.wait(30)
    got = []

    def contend():
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            got.append(lock.acquire(timeout=60))
            got.append([type(x.message) for x in w])

    t = threading.Thread(target=contend)
    t.start()
    os.kill(p.pid, signal.SIGKILL)
    t.join(90)
    assert got == [True, [shmq.OwnerDeadWarning]]


def _blocked_rlock():
    r, release = shmq.RLock(), threading.Event()
    held = threading.Event()

    def hold():
        with r:
            held.set()
            release.wait()

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    return r, release, t


def _sem_zero():
    return shmq.Semaphore(0).acquire


def _lock_held_here():
    lock = shmq.Lock()
    lock.acquire()
    return lock.acquire


def _event_unset():
    return shmq.Event().wait


def _condition_wait():
    c = shmq.Condition()

    def wait():
        with c:
            c.wait()

    return wait


def _barrier_of_two():
    return shmq.Barrier(2).wait


@pytest.mark.parametrize(
    "make",
    [_lock_held_here, _sem_zero, _event_unset, _condition_wait, _barrier_of_two],
    ids=["lock", "semaphore", "event", "condition", "barrier"],
)
def test_ctrl_c_interrupts_a_blocked_wait_within_100_ms(make):
    if not os.path.exists("/proc/self/syscall"):
        pytest.skip("needs /proc")
    assert sigint_latency(make()) < 0.1


def test_ctrl_c_interrupts_a_wait_for_an_rlock_another_thread_holds():
    if not os.path.exists("/proc/self/syscall"):
        pytest.skip("needs /proc")
    r, release, t = _blocked_rlock()
    try:
        assert sigint_latency(r.acquire) < 0.1
    finally:
        release.set()
        t.join()


def test_a_lock_may_be_released_by_another_thread_and_an_rlock_only_by_its_owner():
    lock = shmq.Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join()
    assert not lock.locked()
    with pytest.raises(ValueError):
        lock.release()
    with pytest.raises(RuntimeError):  # threading's exception type too
        lock.release()

    r, release, t = _blocked_rlock()
    with pytest.raises(AssertionError):
        r.release()
    with pytest.raises(RuntimeError):
        r.release()
    assert r.locked()
    release.set()
    t.join()
    assert not r.locked()


def test_bounded_semaphore_refuses_a_release_past_its_bound():
    s = shmq.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        s.release()
    assert s.acquire(False)
    s.release()
    assert s.get_value() == 1
    with pytest.raises(ValueError):
        shmq.Semaphore(-1)


def test_condition_needs_a_shmq_lock_and_its_owner():
    with pytest.raises(TypeError):
        shmq.Condition(multiprocessing.Lock())
    c = shmq.Condition(shmq.Lock())
    with pytest.raises(RuntimeError):
        c.wait(0)
    with pytest.raises(AssertionError):
        c.notify()
    with c:
        assert c.wait(0) is False
        c.notify_all()


def _bump(counter, cells, n):
    for _ in range(n):
        counter.fetch_add(1)
        cells.fetch_add(3, 1)
        cells.fetch_sub(1, 2)


@pytest.mark.parametrize("method", METHODS)
def test_atomic_fetch_add_loses_no_update_across_processes(method):
    ctx = multiprocessing.get_context(method)
    counter, cells = shmq.Value("i", 0), shmq.Array("q", 4)
    n = 20_000
    ps = [ctx.Process(target=_bump, args=(counter, cells, n)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert counter.value == 4 * n
    assert cells[:] == [0, -8 * n, 0, 4 * n]


def test_atomic_operations_follow_the_type():
    v = shmq.Value("b", 127)
    assert v.fetch_add(1) == 127
    assert v.value == -128  # wraps at the type's width, as C does
    u = shmq.Value(ctypes.c_uint16, 5)
    assert u.swap(65535) == 5
    with pytest.raises(OverflowError):
        u.store(65536)
    assert u.compare_exchange(65535, 7) is True
    assert u.compare_exchange(65535, 8) is False
    assert u.load() == 7
    a = shmq.Array("i", [1, 2, 3])
    assert a.fetch_add(-1, 10) == 3
    assert a[2] == 13
    with pytest.raises(IndexError):
        a.fetch_add(3)
    with pytest.raises(TypeError):
        shmq.Value("d", 1.0).fetch_add(1)
    with pytest.raises(TypeError):
        shmq.Value("c", b"x").fetch_add(1)


def test_values_and_arrays_are_ctypes_objects_of_the_types_asked():
    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]

    p = shmq.RawValue(Point, 3, 1.5)
    assert isinstance(p, Point)
    assert (p.x, p.y) == (3, 1.5)
    v = shmq.Value(Point, 1, 2.0)
    v.x = 4
    assert (v.x, v.y) == (4, 2.0)
    raw = shmq.RawArray(ctypes.c_double, [0.5, 1.5])
    assert isinstance(raw, ctypes.Array)
    assert list(raw) == [0.5, 1.5]
    s = shmq.Array("c", b"hello")
    s.value = b"hi"
    assert s.value == b"hi"
    assert s.raw == b"hi\x00lo"
    assert len(shmq.Array("d", 0)) == 0
    with pytest.raises(TypeError):
        shmq.Value("z")


@pytest.mark.parametrize(
    "make",
    [
        shmq.Lock,
        shmq.RLock,
        shmq.Semaphore,
        shmq.Event,
        shmq.Condition,
        lambda: shmq.Barrier(2),
        lambda: shmq.Value("i"),
        lambda: shmq.RawArray("i", 3),
    ],
)
def test_objects_pickle_only_while_a_process_starts(make):
    with pytest.raises(RuntimeError, match="inherit"):
        pickle.dumps(make())


@pytest.mark.usefixtures("no_leftovers")
def test_collected_objects_leave_nothing_in_dev_shm():
    objs = [
        shmq.Lock(),
        shmq.RLock(),
        shmq.BoundedSemaphore(3),
        shmq.Event(),
        shmq.Condition(shmq.RLock()),
        shmq.Barrier(3),
        shmq.Value("d", 1.0),
        shmq.Array("i", 100),
        shmq.RawValue("i"),
        shmq.RawArray("c", 10),
    ]
    assert all(o is not None for o in objs)
    del objs


def _use_stored(d):
    with d["lock"]:
        d["value"].fetch_add(5)
        d["cells"][1] = 7
    d["done"].set()


@pytest.mark.parametrize("method", METHODS)
def test_locks_values_and_events_stored_in_a_managed_dict_are_the_same_objects(method):
    ctx = multiprocessing.get_context(method)
    with shmq.Manager() as m:
        d = m.dict()
        d["lock"], d["value"], d["cells"] = m.Lock(), m.Value("i", 1), m.Array("i", 3)
        d["done"] = m.Event()
        assert d["value"].get() == 1
        p = ctx.Process(target=_use_stored, args=(d,))
        p.start()
        assert d["done"].wait(60)
        p.join(60)
        assert p.exitcode == 0
        assert d["value"].value == 6
        assert d["cells"][:] == [0, 7, 0]
        assert d["lock"].acquire(False) is True


def test_bounded_semaphore_of_zero_is_bounded():
    s = shmq.BoundedSemaphore(0)
    with pytest.raises(ValueError):
        s.release()
    assert s.get_value() == 0


def test_a_set_and_clear_wakes_every_waiter():
    if not os.path.exists("/proc/self/syscall"):
        pytest.skip("needs /proc")
    e = shmq.Event()
    woke, tids = [], []
    entering = threading.Barrier(4)

    def wait():
        tids.append(threading.get_native_id())
        entering.wait()
        woke.append(e.wait(30))

    ts = [threading.Thread(target=wait) for _ in range(3)]
    for t in ts:
        t.start()
    entering.wait()
    for tid in tids:
        wait_until_in_futex(tid, e.name)  # asleep on the event's word
    e.set()
    e.clear()
    for t in ts:
        t.join(60)
    assert woke == [True, True, True]
    assert not e.is_set()


def test_values_stay_readable_after_their_segment_is_unmapped():
    v = shmq.Value("i", 5)
    obj = v.get_obj()
    v.get_lock().unmap()
    obj.value = 7  # still mapped here, through the object's pin
    assert obj.value == 7
    with pytest.raises(ValueError, match="released"):
        v.get_lock().acquire()


def test_an_unmapped_object_leaves_nothing_for_the_resource_tracker(tmp_path):
    program = tmp_path / "unmap.py"
    program.write_text(
        "import shmq\n"
        "lock = shmq.Lock()\n"
        "assert lock.unmap()\n"
        "v = shmq.RawValue('i', 1)\n"
        "v._shmq_native.unmap()\n"
        "v.value = 2\n"
        "print(v.value, v._shmq_native.name)\n"
    )
    r = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    value, name = r.stdout.split()
    assert value == "2"
    assert r.stderr == ""  # no resource tracker warning: the names were removed by the program
    assert not os.path.exists(f"/dev/shm/{name}")


def test_a_daemon_thread_writing_a_value_at_exit_does_not_crash(tmp_path):
    program = tmp_path / "daemon.py"
    program.write_text(
        "import threading, shmq\n"
        "v = shmq.RawValue('q', 0)\n"
        "started = threading.Event()\n"
        "def spin():\n"
        "    started.set()\n"
        "    while True:\n"
        "        v.value += 1\n"
        "threading.Thread(target=spin, daemon=True).start()\n"
        "started.wait()\n"
    )
    for _ in range(3):
        r = subprocess.run(
            [sys.executable, str(program)], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert r.stderr == ""


def _wait_on(cond, about_to_wait):
    with cond:
        about_to_wait.set()
        cond.wait()


@pytest.mark.parametrize("method", METHODS)
def test_notify_does_not_wait_for_a_waiter_killed_asleep(method):
    ctx = multiprocessing.get_context(method)
    cond, about_to_wait = shmq.Condition(), shmq.Event()
    p = ctx.Process(target=_wait_on, args=(cond, about_to_wait), daemon=True)
    p.start()
    assert about_to_wait.wait(60)
    with cond:  # taken once the child released it inside wait: it sleeps, announced
        pass
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    done = threading.Event()

    def notify():
        with cond:
            cond.notify_all()
        done.set()

    t = threading.Thread(target=notify, daemon=True)
    t.start()
    assert done.wait(60), "notify waited for a waiter that was killed asleep"
    # The bookkeeping is whole again: a live waiter is woken by the next notify.
    woke, waiting = [], threading.Event()
    t2 = threading.Thread(target=lambda: woke.append(_wait_and_report(cond, waiting)))
    t2.start()
    assert waiting.wait(60)
    with cond:  # t2 released it inside wait
        cond.notify()
    t2.join(60)
    assert woke == [True]


def _wait_and_report(cond, waiting):
    with cond:
        waiting.set()
        return cond.wait(60)


def test_a_lock_whose_acquiring_thread_exited_stays_held_for_another_thread_to_release():
    lock = shmq.Lock()
    t = threading.Thread(target=lock.acquire)
    t.start()
    t.join()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no takeover, no OwnerDeadWarning
        assert lock.acquire(timeout=0.3) is False  # its process (this one) lives on: held
        lock.release()  # the hand-off: another thread releases it
        assert lock.acquire(timeout=30) is True
    lock.release()
