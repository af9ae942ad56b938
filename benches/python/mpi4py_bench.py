#!/usr/bin/env python3
"""mpi4py.futures baselines for ipc-bench's mpi4py.* scenarios.

Usage: mpirun -n 3 python3 -m mpi4py.futures mpi4py_bench.py SCENARIO [--quick]

Rank 0 runs this script with an MPIPoolExecutor over the other ranks (2 workers with -n 3, as
ipc-bench's mpi.* scenarios have 2 serving ranks) and prints one JSON object on stdout:
    {"scenario": NAME, "value": FIGURE, "unit": UNIT, "verified": COUNT}
Set MPI4PY_FUTURES_BACKOFF=0 in the environment for the no-backoff variant (the default
backoff sleeps up to 1 ms between polls of an idle worker or master).
"""

import json
import sys
import time

from mpi4py.futures import MPIPoolExecutor

QUICK = "--quick" in sys.argv[1:]


def pick(full, quick):
    return quick if QUICK else full


def square(x):
    return x * x


def apply_rtt(ex):
    """submit(...).result(), one call after another. µs per call."""
    for i in range(50):
        ex.submit(square, i).result()
    n = pick(2_000, 200)
    t0 = time.perf_counter()
    for i in range(n):
        if ex.submit(square, i).result() != i * i:
            sys.exit("apply_rtt: wrong result")
    dt = time.perf_counter() - t0
    return dt / n * 1e6, "µs", n


def map_chunk1(ex):
    """ex.map(square, range(n)) with chunksize 1: one message per task. tasks/s."""
    n = pick(20_000, 2_000)
    list(ex.map(square, range(n // 10)))
    t0 = time.perf_counter()
    out = list(ex.map(square, range(n), chunksize=1))
    dt = time.perf_counter() - t0
    if out != [i * i for i in range(n)]:
        sys.exit("map_chunk1: wrong results")
    return n / dt, "tasks/s", n


SCENARIOS = {"apply_rtt": apply_rtt, "map_chunk1": map_chunk1}


def main():
    args = [a for a in sys.argv[1:] if a != "--quick"]
    if len(args) != 1 or args[0] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    with MPIPoolExecutor() as ex:
        value, unit, verified = SCENARIOS[args[0]](ex)
    print(json.dumps({"scenario": args[0], "value": value, "unit": unit, "verified": verified}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
