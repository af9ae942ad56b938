#!/usr/bin/env python3
"""Python multiprocessing baselines for ipc-bench.

Usage: python3 mp_bench.py SCENARIO [--quick]
       python3 mp_bench.py --list

Runs one repeat of one scenario and prints one JSON object on stdout:
    {"scenario": NAME, "value": FIGURE, "unit": UNIT, "verified": COUNT,
     "python": VERSION, "start_method": METHOD}
A scenario checks what it moved (sums, counts, exit codes) and exits with status 1 and a
message on stderr when something is wrong.

Each scenario uses the platform's default start method for its helper processes (fork on Linux
before Python 3.14, forkserver from 3.14), except the start_* scenarios, which name theirs.
"""

import json
import multiprocessing as mp
import platform
import sys
import time
from multiprocessing import shared_memory

QUICK = False


def pick(full, quick):
    return quick if QUICK else full


def fail(msg):
    print(f"mp_bench: {msg}", file=sys.stderr)
    sys.exit(1)


# ----- helpers run in child processes (top level, so spawn and forkserver can find them) -----


def _square(x):
    return x * x


def _noop():
    pass


def _produce(q, n, ready):
    ready.set()
    for i in range(n):
        q.put(i)


def _echo(conn):
    count = 0
    while True:
        v = conn.recv()
        if v is None:
            conn.send(count)
            return
        conn.send(v + 1)
        count += 1


def _incr(value, n, go):
    go.wait()
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def _event_echo(ping, pong, n, done):
    for _ in range(n):
        ping.wait()
        ping.clear()
        pong.set()
    done.put(n)


# ----- scenarios: each returns (figure, unit, verified count) -----


def queue_small():
    """A child puts n small ints on an mp.Queue; the parent gets them all. msgs/s."""
    n = pick(200_000, 20_000)
    q = mp.Queue()
    ready = mp.Event()
    p = mp.Process(target=_produce, args=(q, n, ready))
    p.start()
    ready.wait()
    t0 = time.perf_counter()
    total = 0
    for _ in range(n):
        total += q.get()
    dt = time.perf_counter() - t0
    p.join()
    if total != n * (n - 1) // 2 or p.exitcode != 0:
        fail(f"queue_small: sum {total}, exit code {p.exitcode}")
    return n / dt, "msgs/s", n


def pipe_rtt():
    """Round trip of an int through mp.Pipe() to a child that sends back v + 1. µs."""
    n = pick(20_000, 2_000)
    a, b = mp.Pipe()
    p = mp.Process(target=_echo, args=(b,))
    p.start()
    for i in range(100):
        a.send(i)
        a.recv()
    t0 = time.perf_counter()
    for i in range(n):
        a.send(i)
        if a.recv() != i + 1:
            fail("pipe_rtt: wrong reply")
    dt = time.perf_counter() - t0
    a.send(None)
    count = a.recv()
    p.join()
    if count != n + 100 or p.exitcode != 0:
        fail(f"pipe_rtt: child answered {count}, exit code {p.exitcode}")
    return dt / n * 1e6, "µs", n


def _pool_map(chunksize):
    n = pick(1_000_000, 100_000) if chunksize is None else pick(20_000, 2_000)
    with mp.Pool(2) as pool:
        pool.map(_square, range(100))  # the workers are up and warm
        t0 = time.perf_counter()
        if chunksize is None:
            out = pool.map(_square, range(n))
        else:
            out = pool.map(_square, range(n), chunksize=chunksize)
        dt = time.perf_counter() - t0
    if sum(out) != sum(i * i for i in range(n)):
        fail("pool_map: wrong results")
    return n / dt, "tasks/s", n


def pool_map():
    """Pool(2).map of a trivial function with the default chunksize. tasks/s."""
    return _pool_map(None)


def pool_map_chunk1():
    """Pool(2).map with chunksize=1: one IPC round per task. tasks/s."""
    return _pool_map(1)


def pool_apply_rtt():
    """Pool(2).apply, one call after another. µs per call."""
    n = pick(5_000, 500)
    with mp.Pool(2) as pool:
        for i in range(50):
            pool.apply(_square, (i,))
        t0 = time.perf_counter()
        for i in range(n):
            if pool.apply(_square, (i,)) != i * i:
                fail("pool_apply_rtt: wrong result")
        dt = time.perf_counter() - t0
    return dt / n * 1e6, "µs", n


def value_locked_incr():
    """Two processes each increment an mp.Value('q') n times under its lock. ops/s."""
    n = pick(200_000, 20_000)
    value = mp.Value("q", 0)
    go = mp.Event()
    procs = [mp.Process(target=_incr, args=(value, n, go)) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(0.05)  # both are waiting on the event
    t0 = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    dt = time.perf_counter() - t0
    if value.value != 2 * n or any(p.exitcode != 0 for p in procs):
        fail(f"value_locked_incr: value {value.value}, expected {2 * n}")
    return 2 * n / dt, "ops/s", 2 * n


def event_rtt():
    """The parent sets one mp.Event, the child clears it and sets another. µs per round."""
    n = pick(10_000, 1_000)
    warm = 50
    ping, pong, done = mp.Event(), mp.Event(), mp.Queue()
    p = mp.Process(target=_event_echo, args=(ping, pong, n + warm, done))
    p.start()
    for i in range(n + warm):
        if i == warm:
            t0 = time.perf_counter()
        ping.set()
        pong.wait()
        pong.clear()
    dt = time.perf_counter() - t0
    count = done.get()
    p.join()
    if count != n + warm or p.exitcode != 0:
        fail(f"event_rtt: child did {count} rounds, exit code {p.exitcode}")
    return dt / n * 1e6, "µs", n


def _start(method, full, quick):
    n = pick(full, quick)
    ctx = mp.get_context(method)
    p = ctx.Process(target=_noop)  # the first start may start a server: not timed
    p.start()
    p.join()
    t0 = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=_noop)
        p.start()
        p.join()
        if p.exitcode != 0:
            fail(f"start_{method}: exit code {p.exitcode}")
    dt = time.perf_counter() - t0
    return dt / n * 1e3, "ms", n


def start_fork():
    """Process(target=noop).start() + join() with the fork start method. ms."""
    return _start("fork", 100, 20)


def start_forkserver():
    """The same with forkserver (the server's own start is not timed). ms."""
    return _start("forkserver", 50, 10)


def start_spawn():
    """The same with spawn (a fresh interpreter per process). ms."""
    return _start("spawn", 20, 4)


def shm_create_attach():
    """SharedMemory(create=True, size=4096), attach by name, check a byte, close, unlink. µs."""
    n = pick(5_000, 500)
    for i in range(n + 20):
        if i == 20:
            t0 = time.perf_counter()
        s = shared_memory.SharedMemory(create=True, size=4096)
        s.buf[0] = i & 0xFF
        t = shared_memory.SharedMemory(name=s.name)
        ok = t.buf[0] == i & 0xFF
        t.close()
        s.close()
        s.unlink()
        if not ok:
            fail("shm_create_attach: the attached segment shows other bytes")
    dt = time.perf_counter() - t0
    return dt / n * 1e6, "µs", n


def manager_dict_set_rtt():
    """d[k] = v on a Manager().dict() proxy, one after another. µs per call."""
    n = pick(20_000, 2_000)
    with mp.Manager() as manager:
        d = manager.dict()
        for i in range(100):
            d[i % 10] = i
        t0 = time.perf_counter()
        for i in range(n):
            d[i % 100] = i
        dt = time.perf_counter() - t0
        if d[(n - 1) % 100] != n - 1 or len(d) != 100:
            fail("manager_dict_set_rtt: wrong contents")
    return dt / n * 1e6, "µs", n


SCENARIOS = {
    f.__name__: f
    for f in [
        queue_small,
        pipe_rtt,
        pool_map,
        pool_map_chunk1,
        pool_apply_rtt,
        value_locked_incr,
        event_rtt,
        start_fork,
        start_forkserver,
        start_spawn,
        shm_create_attach,
        manager_dict_set_rtt,
    ]
}


def main(argv):
    global QUICK
    if argv[1:] == ["--list"]:
        print("\n".join(SCENARIOS))
        return 0
    args = [a for a in argv[1:] if a != "--quick"]
    QUICK = "--quick" in argv[1:]
    if len(args) != 1 or args[0] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    value, unit, verified = SCENARIOS[args[0]]()
    print(
        json.dumps(
            {
                "scenario": args[0],
                "value": value,
                "unit": unit,
                "verified": verified,
                "python": platform.python_version(),
                "start_method": mp.get_start_method(),
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
