"""The queue interface in one process (and its threads)."""

import os
import pickle
import queue
import threading
import time

import pytest
from conftest import sigint_latency

import shmq

pytestmark = pytest.mark.usefixtures("no_leftovers")

PLAIN = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**200,
    -(2**100) - 7,
    0.5,
    float("inf"),
    "",
    "héllo ✓",
    b"",
    b"x" * 10_000,
    bytearray(b"ab"),
    bytearray(5000),
    (),
    [],
    {},
    (1, (2, [3, {"a": (4.5, None)}])),
    {1: "one", "two": [2], (3,): b"3"},
]


@pytest.mark.parametrize("obj", PLAIN, ids=repr)
def test_plain_data_round_trips_with_its_type(obj):
    q = shmq.Queue()
    q.put(obj)
    got = q.get()
    assert type(got) is type(obj)
    assert got == obj


def test_other_objects_go_through_pickle():
    q = shmq.Queue()
    for obj in [{1, 2}, frozenset("ab"), "\udc80", complex(1, 2), [{1}]]:
        q.put(obj)
        got = q.get()
        assert type(got) is type(obj)
        assert got == obj
    q.put(ValueError("x"))
    got = q.get()
    assert type(got) is ValueError and got.args == ("x",)


def test_numpy_arrays_round_trip():
    np = pytest.importorskip("numpy")
    q = shmq.Queue(4, max_message_size=1 << 22)
    for a in [
        np.arange(10),
        np.ones((300, 400)),
        np.ones((30, 40), order="F"),
        np.arange(100)[::3],
        np.zeros(0),
    ]:
        q.put(a)
        got = q.get()
        assert got.dtype == a.dtype and got.shape == a.shape
        assert np.array_equal(got, a)


def test_zero_byte_messages():
    q = shmq.Queue(3)
    for obj in [b"", "", bytearray()]:
        q.put(obj)
    assert q.qsize() == 3 and q.full()
    assert [q.get(), q.get(), q.get()] == [b"", "", bytearray()]


def test_many_puts_before_any_get():
    q = shmq.Queue(5000)
    for i in range(5000):
        q.put_nowait(i)
    assert q.full() and q.qsize() == 5000
    with pytest.raises(queue.Full):
        q.put_nowait(-1)
    assert [q.get_nowait() for _ in range(5000)] == list(range(5000))
    assert q.empty()


def test_messages_of_any_size_by_default_and_a_cap_when_asked():
    q = shmq.Queue(4)
    assert q.max_message_size == 2**64 - 1
    big = bytes(range(256)) * (64 * 4096)  # 64 MiB
    q.put(big)
    q.put(b"")
    assert q.get() == big
    assert q.get() == b""
    capped = shmq.Queue(4, max_message_size=10)
    assert capped.max_message_size == 10
    with pytest.raises(ValueError, match="max_message_size"):
        capped.put(b"x" * 100)


def test_unbounded_queue_takes_a_million_puts_before_any_get():
    q = shmq.Queue()
    assert q.maxsize == 0
    q.put_many(range(1_000_000))
    assert q.qsize() == 1_000_000
    assert not q.full()
    assert q.get_many(1_000_000) == list(range(1_000_000))
    assert q.empty()


def test_empty_and_full_raise_where_multiprocessing_does():
    q = shmq.Queue(1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert 0.19 <= time.monotonic() - t0 < 2
    q.put(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.2)
    assert 0.19 <= time.monotonic() - t0 < 2
    with pytest.raises(queue.Full):
        q.put(2, True, -1)


def test_qsize_is_exact():
    q = shmq.Queue()
    for i in range(10):
        assert q.qsize() == i
        q.put(i)
    for i in range(10, 0, -1):
        assert q.qsize() == i
        q.get()
    assert q.qsize() == 0 and q.empty() and not q.full()


def test_closed_handle_raises_value_error():
    for q in shmq.Queue(), shmq.JoinableQueue():
        q.close()
        with pytest.raises(ValueError, match="is closed"):
            q.put("foo")
        with pytest.raises(ValueError, match="is closed"):
            q.get()
        q.join_thread()
        q.cancel_join_thread()


def test_join_thread_before_close_asserts():
    q = shmq.Queue()
    with pytest.raises(AssertionError):
        q.join_thread()


def test_unpicklable_object_raises_at_put_and_the_queue_goes_on():
    q = shmq.Queue()

    class NotSerializable:
        def __reduce__(self):
            raise AttributeError("no")

    with pytest.raises(AttributeError):
        q.put(NotSerializable())
    with pytest.raises((pickle.PicklingError, AttributeError)):
        q.put(lambda: 1)
    assert q.qsize() == 0
    q.put(True)
    assert q.get() is True


def test_too_large_message_is_a_value_error():
    q = shmq.Queue(max_message_size=100)
    with pytest.raises(ValueError, match="max_message_size"):
        q.put(b"x" * 200)
    q.put(b"x" * 50)
    assert q.get() == b"x" * 50


def test_put_many_and_get_many():
    q = shmq.Queue(100)
    assert q.put_many(iter(range(50))) == 50
    assert q.get_many(10) == list(range(10))
    assert q.get_many(100) == list(range(10, 50))
    with pytest.raises(queue.Empty):
        q.get_many(5, timeout=0.05)
    assert q.get_many(0) == []


def test_queues_pickle_only_to_start_processes():
    with pytest.raises(RuntimeError):
        pickle.dumps(shmq.Queue())
    with pytest.raises(RuntimeError):
        pickle.dumps(shmq.SimpleQueue())


def test_threads_share_a_queue():
    q = shmq.Queue(8)
    out = []

    def consume():
        while (item := q.get()) is not None:
            out.append(item)

    threads = [threading.Thread(target=consume) for _ in range(3)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for i in range(3000):
        q.put(i)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join()
    assert sorted(out) == list(range(3000))
    # About 0.1 s. A getter that takes the GIL back while it holds a claim stalls a putter
    # of its own process (which waits for that slot holding the GIL) 50 ms at a time: 17 s.
    assert time.monotonic() - t0 < 5


def test_blocked_get_releases_the_gil():
    q = shmq.Queue()
    started = threading.Event()
    result = []

    def blocked():
        started.set()
        result.append(q.get(timeout=5))

    t = threading.Thread(target=blocked)
    t.start()
    started.wait()
    # This thread keeps running Python code while the other waits.
    n = sum(range(200_000))
    q.put(n)
    t.join()
    assert result == [n]


def test_shutdown_wakes_blocked_getters_and_putters():
    q = shmq.Queue(1)
    q.put("last")
    errors = []

    def put():
        try:
            q.put("blocked")
        except shmq.ShutDown:
            errors.append("put")

    t = threading.Thread(target=put)
    t.start()
    while not q.full():
        pass
    q.shutdown()
    t.join(5)
    assert not t.is_alive() and errors == ["put"]
    assert q.is_shutdown
    assert q.get() == "last"
    with pytest.raises(shmq.ShutDown):
        q.get()
    with pytest.raises(shmq.ShutDown):
        q.put(1)
    if hasattr(queue, "ShutDown"):
        assert issubclass(shmq.ShutDown, queue.ShutDown)


def test_immediate_shutdown_discards_and_finishes_tasks():
    q = shmq.JoinableQueue()
    q.put_many([1, 2, 3])
    q.shutdown(immediate=True)
    with pytest.raises(shmq.ShutDown):
        q.get()
    assert q.unfinished_tasks == 0
    q.join()


def test_joinable_queue_counts_tasks():
    q = shmq.JoinableQueue()
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()
    q.put_many(range(5))
    assert q.unfinished_tasks == 5
    assert q.join(timeout=0.05) is False
    done = []

    def worker():
        for _ in range(5):
            done.append(q.get())
            q.task_done()

    t = threading.Thread(target=worker)
    t.start()
    q.join()
    assert done == list(range(5))
    t.join()
    with pytest.raises(ValueError):
        q.task_done()


def test_full_joinable_put_does_not_count_a_task():
    q = shmq.JoinableQueue(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    assert q.unfinished_tasks == 1


def test_simple_queue():
    q = shmq.SimpleQueue()
    assert q.empty()
    q.put({"a": 1})
    assert not q.empty()
    assert q.get() == {"a": 1}
    q.close()
    with pytest.raises(OSError):
        q.get()


def test_release_removes_the_name():
    import os

    q = shmq.Queue()
    name = q._native.name
    assert os.path.exists(f"/dev/shm/{name}")
    q.release()
    assert not os.path.exists(f"/dev/shm/{name}")
    with pytest.raises(ValueError, match="released"):
        q.put(1)


def test_module_stands_in_for_multiprocessing():
    import multiprocessing

    for name in [
        "Process",
        "Pool",
        "current_process",
        "cpu_count",
        "set_start_method",
        "active_children",
        "TimeoutError",
    ]:
        assert getattr(shmq, name) is getattr(multiprocessing, name), name
    assert shmq.Manager is not multiprocessing.Manager  # shmq's own (no server process)
    ctx = shmq.get_context("spawn")
    assert ctx.get_start_method() == "spawn"
    assert isinstance(ctx.Queue(), shmq.Queue)
    assert isinstance(ctx.JoinableQueue(), shmq.JoinableQueue)
    # shmq's own, in place of multiprocessing's.
    for name in ["Lock", "RLock", "Semaphore", "Condition", "Event", "Barrier", "Value"]:
        assert getattr(shmq, name) is not getattr(multiprocessing, name), name
        assert getattr(shmq, name).__module__.startswith("shmq."), name


def _square(x):
    return x * x


def test_context_works_where_multiprocessing_takes_one():
    import concurrent.futures
    import multiprocessing.pool

    ctx = shmq.get_context("fork")
    with multiprocessing.pool.Pool(2, context=ctx) as pool:
        assert pool.map(_square, range(10)) == [x * x for x in range(10)]
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        assert list(ex.map(_square, range(10))) == [x * x for x in range(10)]
    assert "Queue" in shmq.__all__
    assert "Put *obj* into the queue" in shmq.Queue.put.__doc__
    import multiprocessing.pool

    assert shmq.pool is multiprocessing.pool
    assert shmq.shared_memory.SharedMemory is multiprocessing.shared_memory.SharedMemory
    assert shmq.queues.Queue is shmq.Queue
    with pytest.raises(AttributeError):
        shmq.no_such_thing  # noqa: B018


@pytest.mark.parametrize("call", ["get", "put", "join"])
def test_ctrl_c_interrupts_blocked_calls_in_this_process(call):
    if not os.path.exists("/proc/self/syscall"):
        pytest.skip("needs /proc")
    q = shmq.JoinableQueue(1)
    if call != "get":
        q.put("fills it")
    blocked = {"get": q.get, "put": lambda: q.put("blocks"), "join": q.join}[call]
    assert sigint_latency(blocked) < 0.1
