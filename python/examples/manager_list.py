"""Three processes append to one shared list: ``multiprocessing.Manager().list()`` with only the
import changed, and no manager server process.

    python3 python/examples/manager_list.py

Each worker appends its five numbers; the parent sorts the list and prints
``[1, 2, ..., 15]``. A dict stored in the list is the same shared dict in every process (shared
objects nest by reference).
"""

import shmq as multiprocessing


def worker(shared, k):
    for i in range(5 * k + 1, 5 * k + 6):
        shared.append(i)
    shared[0][k] = "done"  # the dict the parent stored at shared[0]


if __name__ == "__main__":
    with multiprocessing.Manager() as manager:
        shared = manager.list()
        progress = manager.dict()
        shared.append(progress)  # stored by reference: the same dict in every process
        procs = [multiprocessing.Process(target=worker, args=(shared, k)) for k in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        del shared[0]
        shared.sort()
        print(shared)
        print("workers done:", sorted(progress.keys()))
