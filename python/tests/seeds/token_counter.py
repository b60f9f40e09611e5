import multiprocessing


def player(inbox, outbox, rounds):
    for _ in range(rounds):
        token = inbox.get()
        outbox.put(token + 1)


if __name__ == "__main__":
    to_child, to_parent = multiprocessing.Queue(), multiprocessing.Queue()
    p = multiprocessing.Process(target=player, args=(to_child, to_parent, 50))
    p.start()
    token = 0
    for _ in range(50):
        to_child.put(token)
        token = to_parent.get() + 1
    p.join()
    print(token)
