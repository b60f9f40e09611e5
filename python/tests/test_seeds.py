"""The seed programs: plain multiprocessing programs, run with only the import changed."""

import os

import pytest
from conftest import SEEDS, run_program, shmq_segments

EXPECTED = {
    "basic.py": "hello from the child\n[42, None, 'x']\n",
    "token_counter.py": "100\n",
    "producer_consumer.py": f"{sum(i * i for i in range(1000))}\n",
    "two_by_two.py": "True 20\n",
    "value_array.py": f"15\n{list(range(1, 16))}\n",
    "manager_list.py": f"{list(range(1, 16))}\n15\n",
}


def _creator_exited(name):
    """Whether the process that made segment ``shmq-py-<pid>-<random>`` is gone (the program's
    processes all are once it returned; another test run's on this machine may not be)."""
    return not os.path.exists(f"/proc/{name.split('-')[2]}")


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("seed", sorted(EXPECTED))
def test_seed_program(seed, start_method, tmp_path):
    with open(os.path.join(SEEDS, seed)) as f:
        original = f.read()
    assert original.startswith("import multiprocessing\n")
    changed = original.replace("import multiprocessing\n", "import shmq as multiprocessing\n", 1)
    path = tmp_path / seed
    path.write_text(changed)
    before = shmq_segments()
    r = run_program(str(path), start_method)
    assert r.returncode == 0, r.stderr
    assert r.stdout == EXPECTED[seed]
    assert r.stderr == ""
    left = {n for n in shmq_segments() - before if _creator_exited(n)}
    assert not left, "the program left segments in /dev/shm"


@pytest.mark.parametrize("seed", sorted(EXPECTED))
def test_seed_program_is_a_multiprocessing_program(seed):
    """The same source, unchanged, gives the same output with multiprocessing itself."""
    r = run_program(os.path.join(SEEDS, seed), "fork")
    assert r.returncode == 0, r.stderr
    assert r.stdout == EXPECTED[seed]
