"""shmq.Manager(): shared list, dict and Namespace against Python's own list and dict, across
processes, under contention, and with a writer killed by SIGKILL."""

import multiprocessing
import os
import random
import signal
import threading
import time

import pytest
from conftest import shmq_segments

import shmq
from shmq._manager import DictProxy, ListProxy


@pytest.fixture
def manager(no_leftovers):
    with shmq.Manager() as m:
        yield m


# -- one process: the same results and errors as list and dict --------------------------------


def _outcome(f, *args):
    try:
        return ("ok", f(*args))
    except Exception as e:  # noqa: BLE001 - the exception is the outcome compared
        return ("raised", type(e), str(e))


def test_list_matches_a_python_list_op_for_op(manager):
    rng = random.Random(7)
    shared = manager.list()
    model = []
    for step in range(3000):
        ops = _list_ops(rng, step)
        op = ops[step % len(ops)] if step < 2 * len(ops) else rng.choice(ops)
        state = rng.getstate()
        want = _outcome(op, model)
        rng.setstate(state)  # the same random numbers inside the op for both
        got = _outcome(op, shared)
        assert got == want, f"step {step}: {got} != {want} (list {model})"
        assert shared[:] == model, f"step {step}"
        if len(model) > 40:
            del model[20:]
            del shared[20:]
    assert list(shared) == model
    assert str(shared) == str(model)
    shared.clear()
    assert len(shared) == 0 and shared[:] == []


def _list_ops(rng, step):
    """Every list operation, as functions of the list, with random arguments."""
    v = rng.choice([0, 1, 2, 3, "a", "b", (1, 2), None, 2.5, [1, 2]])
    i = rng.randint(-12, 12)
    j = rng.randint(-12, 12)
    k = rng.choice([None, 1, 2, -1, -2, 3])
    s = slice(rng.choice([None, i]), rng.choice([None, j]), k)
    return [
        lambda lst: lst.append(v),
        lambda lst: lst.extend([v, step]),
        lambda lst: lst.insert(i, v),
        lambda lst: lst.pop(),
        lambda lst: lst.pop(i),
        lambda lst: lst.remove(v),
        lambda lst: lst.index(v),
        lambda lst: lst.index(v, i),
        lambda lst: lst.count(v),
        lambda lst: lst.reverse(),
        lambda lst: lst.sort(key=repr),
        lambda lst: lst.sort(key=str, reverse=True),
        lambda lst: lst[i],
        lambda lst: lst[s],
        lambda lst: lst.__setitem__(i, v),
        lambda lst: lst.__setitem__(s, [v] * rng.randint(0, 3)),
        lambda lst: lst.__delitem__(i),
        lambda lst: lst.__delitem__(s),
        lambda lst: v in lst,
        lambda lst: len(lst),
        lambda lst: [lst.__imul__(rng.randint(0, 2))] and None,
        lambda lst: [lst.__iadd__([v])] and None,
        lambda lst: lst + [v],
        lambda lst: lst * 2,
        lambda lst: list(reversed(lst)),
    ]


def test_dict_matches_a_python_dict_op_for_op(manager):
    rng = random.Random(11)
    shared = manager.dict()
    model = {}
    for step in range(3000):
        ops = _dict_ops(rng, step)
        op = ops[step % len(ops)] if step < 2 * len(ops) else rng.choice(ops)
        want = _outcome(op, model)
        got = _outcome(op, shared)
        assert got == want, f"step {step}: {got} != {want} (dict {model})"
        # Same keys (with the first-inserted key object's type), in the same order.
        assert [(type(k), k) for k in shared.keys()] == [(type(k), k) for k in model]
        if step % 500 == 499:
            shared.clear()
            model.clear()
    assert shared.copy() == model


def _dict_ops(rng, step):
    """Every dict operation, as functions of the dict, with random arguments."""
    keys = [0, 1, 2, "a", "b", (1, "x"), b"k", True, 1.0, 2.5, -0.0, (1.0, True), None]
    key = rng.choice(keys)
    v = rng.choice([0, "v", [1, 2], {"x": 1}, None, step])
    return [
        lambda d: d.__setitem__(key, v),
        lambda d: d[key],
        lambda d: d.__delitem__(key),
        lambda d: key in d,
        lambda d: d.get(key),
        lambda d: d.get(key, "default"),
        lambda d: d.pop(key),
        lambda d: d.pop(key, "default"),
        lambda d: d.setdefault(key, v),
        lambda d: d.update({key: v, "u": step}),
        lambda d: d.update([(key, v)], kw=step),
        lambda d: d.popitem(),
        lambda d: len(d),
        lambda d: list(d.keys()),
        lambda d: list(d.values()),
        lambda d: list(d.items()),
        lambda d: list(d),
        lambda d: d.copy(),
    ]


def test_keys_equal_in_python_are_one_key_and_keep_the_first_form(manager):
    d = manager.dict()
    d[1] = "int"
    d[True] = "bool"
    d[1.0] = "float"
    assert len(d) == 1 and d[1] == "float"
    assert type(d.keys()[0]) is int
    d[(2.0, False)] = "t"
    assert d[(2, 0)] == "t" and d.keys()[1] == (2.0, False)
    d[-0.0] = "zero"
    assert d[0] == "zero" and d[False] == "zero"
    assert 2**70 not in d
    d[float(2**70)] = "big"
    assert d[2**70] == "big"
    with pytest.raises(TypeError, match="unhashable"):
        d[[1]] = 2
    with pytest.raises(KeyError) as e:
        d["missing"]
    assert e.value.args == ("missing",)


def test_errors_are_lists_and_dicts_own(manager):
    lst = manager.list([1, 2])
    with pytest.raises(IndexError, match="^list index out of range$"):
        lst[5]
    with pytest.raises(IndexError, match="^list assignment index out of range$"):
        lst[-3] = 0
    with pytest.raises(IndexError, match="^pop index out of range$"):
        lst.pop(7)
    with pytest.raises(ValueError, match=r"^list.remove\(x\): x not in list$"):
        lst.remove(9)
    with pytest.raises(ValueError, match="^9 is not in list$"):
        lst.index(9)
    with pytest.raises(ValueError, match="attempt to assign sequence of size 3"):
        lst[::2] = [1, 2, 3]
    with pytest.raises(TypeError, match="must be integers or slices, not str"):
        lst["x"]
    lst.clear()
    with pytest.raises(IndexError, match="^pop from empty list$"):
        lst.pop()
    d = manager.dict()
    with pytest.raises(KeyError, match="dictionary is empty"):
        d.popitem()


def test_any_value_a_queue_carries(manager):
    import fractions

    np = pytest.importorskip("numpy")
    lst = manager.list()
    big = bytes(range(256)) * 4096
    lst.extend([big, fractions.Fraction(1, 3), np.arange(10), {"a": [1, (2, 3)]}, "é" * 1000])
    assert lst[0] == big
    assert lst[1] == fractions.Fraction(1, 3)
    assert (lst[2] == np.arange(10)).all()
    assert lst[3] == {"a": [1, (2, 3)]}
    assert lst[4] == "é" * 1000


def test_released_after_shutdown_and_nothing_left(no_leftovers):
    before = shmq_segments()
    m = shmq.Manager()
    lst, d, ns, q = m.list([1]), m.dict(a=1), m.Namespace(x=1), m.Queue()
    d["l"] = lst
    assert m._number_of_objects() == 4
    assert len(shmq_segments() - before) == 4
    m.shutdown()
    m.join()
    assert m._number_of_objects() == 0
    with pytest.raises(ValueError, match="released"):
        lst.append(2)
    with pytest.raises(ValueError, match="released"):
        d["a"]
    del lst, d, ns, q
    assert not (shmq_segments() - before)


def test_a_proxy_keeps_its_manager_and_nested_objects_alive(no_leftovers):
    outer = shmq.Manager().list()  # the manager is referenced only by its proxies
    outer.append(outer._manager.dict(x=1))
    import gc

    gc.collect()
    assert outer[0]["x"] == 1


# -- across processes --------------------------------------------------------------------------


def _nested_child(d, done):
    d["inner"]["from_child"] = os.getpid()
    d["lists"][1].append("child")
    d["made_by_parent_only_by_name"].extend([1, 2, 3])
    d["ns"].seen = True
    done.put("ok")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_nesting_is_by_reference_in_every_process(manager, method):
    ctx = multiprocessing.get_context(method)
    d = manager.dict()
    inner = manager.dict(a=1)
    d["inner"] = inner
    d["lists"] = [manager.list(), manager.list()]  # a plain list of proxies
    d["made_by_parent_only_by_name"] = manager.list()  # no other reference in any process
    d["ns"] = manager.Namespace(seen=False)
    done = shmq.Queue()
    p = ctx.Process(target=_nested_child, args=(d, done))
    p.start()
    assert done.get(timeout=60) == "ok"
    p.join(60)
    assert p.exitcode == 0
    assert inner["from_child"] == p.pid
    assert d["lists"][1][:] == ["child"] and d["lists"][0][:] == []
    assert d["made_by_parent_only_by_name"][:] == [1, 2, 3]
    assert d["ns"].seen is True
    assert d["inner"] is inner  # the same proxy object in the process that maps it


def _update_pairs(d, n, k):
    for i in range(n):
        d.update({"a": (k, i), "b": (k, i)})


def _extend_runs(lst, n, k):
    for _ in range(n):
        lst += [k] * 5


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_composite_operations_are_atomic_against_other_processes(manager, method):
    """Writers update two keys in one call, and extend by runs of five; a reader never sees the
    two keys differ, and the list is made only of whole runs. Non-atomic versions fail both."""
    ctx = multiprocessing.get_context(method)
    d = manager.dict(a=(0, 0), b=(0, 0))
    lst = manager.list()
    ps = [ctx.Process(target=_update_pairs, args=(d, 2000, k)) for k in range(3)]
    ps += [ctx.Process(target=_extend_runs, args=(lst, 200, k)) for k in range(3)]
    for p in ps:
        p.start()
    seen = 0
    while any(p.is_alive() for p in ps):
        snap = d.copy()
        assert snap["a"] == snap["b"], snap
        seen += 1
        items = lst[:]
        for i in range(0, len(items), 5):
            assert items[i : i + 5] == [items[i]] * 5, items
    for p in ps:
        p.join()
        assert p.exitcode == 0
    assert seen > 0
    assert len(lst) == 3 * 200 * 5
    assert sorted(set(lst[:])) == [0, 1, 2]


def _hold_in_sort(lst, started, release):
    def slow_key(x):
        started.set()
        release.wait(60)
        return x

    lst.sort(key=slow_key)


def test_waiting_for_a_container_releases_the_gil_and_sees_signals(manager):
    lst = manager.list([3, 1, 2])
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_in_sort, args=(lst, started, release))
    p.start()
    try:
        assert started.wait(60)
        ticks = []
        t = threading.Thread(target=lambda: ticks.append(1))

        class Interrupted(Exception):
            pass

        def on_alarm(*_):
            raise Interrupted

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            with pytest.raises(Interrupted):
                t.start()  # runs only if the blocked call below releases the GIL
                len(lst)  # blocks: the child holds the list's lock inside sort
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        t.join(10)
        assert ticks == [1]
    finally:
        release.set()
        p.join(60)
    assert p.exitcode == 0
    assert lst[:] == [1, 2, 3]


# -- a writer killed mid-update ------------------------------------------------------------------


def _value(writer, n):
    # Large enough that a kill often lands inside a copy; its content checks itself.
    return (writer, n, bytes([n % 251]) * (2000 + n % 3000))


def _is_written_value(v):
    writer, n, payload = v
    return payload == bytes([n % 251]) * (2000 + n % 3000) and writer in ("killed", "parent")


def _dict_writer(d, keys):
    n = 0
    while True:
        n += 1
        k = keys[n % len(keys)]
        if n % 3 == 0:
            d.update({kk: _value("killed", n) for kk in keys[:4]})
        else:
            d[k] = _value("killed", n)
        d["count"] = n


@pytest.mark.parametrize("round_", range(3))
def test_dict_writer_sigkilled_mid_update_leaves_whole_entries_and_a_usable_dict(manager, round_):
    keys = [f"k{i}" for i in range(16)]
    d = manager.dict({k: _value("parent", 0) for k in keys})
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_dict_writer, args=(d, keys))
    p.start()
    # Wait until the writer is well into its loop (the count it stores moves on).
    deadline = time.monotonic() + 60
    target = 200 + 150 * round_
    while d.get("count", 0) < target:
        assert time.monotonic() < deadline and p.is_alive()
    os.kill(p.pid, signal.SIGKILL)
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    # Usable at once (the dead writer's lock is taken over), every entry whole.
    start = time.monotonic()
    snap = d.copy()
    assert time.monotonic() - start < 10
    assert set(snap) == set(keys) | {"count"}
    for k in keys:
        assert _is_written_value(snap[k]), (k, snap[k][:2])
    d["k0"] = _value("parent", 1)
    d.update({k: _value("parent", 2) for k in keys})
    assert all(d[k] == _value("parent", 2) for k in keys)
    assert len(d) == len(keys) + 1


def test_manager_list_and_dict_types(manager):
    assert isinstance(manager.list(), ListProxy)
    assert isinstance(manager.dict(), DictProxy)
    assert shmq.Manager is shmq._manager.Manager
