"""Celery, the peer: the same trees as aetr's bench, each task POSTing to the bench's service.

The worker runs this module (`celery -A bench_celery worker ...`); the bench then runs it as a
script to time one scenario, and it prints one JSON line:

    python bench_celery.py wide N URL   # a chord over a group of N tasks, a task that counts
    python bench_celery.py deep N URL   # a chain of N tasks, each adding one (aetr's mapper)

BENCH_REDIS_URL names the Redis database used as broker and result backend.
"""

import json
import os
import sys
import time

import requests
from celery import Celery, chain, chord, group

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

app = Celery("bench_celery", broker=REDIS, backend=REDIS)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=600,
    worker_prefetch_multiplier=16,
    broker_connection_retry_on_startup=True,
)

# One keep-alive session per worker process (prefork) or shared by threads (requests' pool is
# thread-safe enough for POSTs).
_session = None


def session():
    global _session
    if _session is None:
        _session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        _session.mount("http://", adapter)
    return _session


@app.task
def post(data, url):
    """An action: POST the input to the service, whose answer is the result."""
    answer = session().post(url, data=str(data), timeout=30)
    answer.raise_for_status()
    return answer.text


@app.task
def step(data, url):
    """A chain's action with aetr's mapper: the answer plus one."""
    answer = session().post(url, data=str(data), timeout=30)
    answer.raise_for_status()
    return str(int(answer.text) + 1)


@app.task
def count(results):
    """The reducer: how many results."""
    return str(len(results))


def main():
    scenario, n, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # Waits for the worker: a small chord must go through first.
    warm = chord(group(post.s("x", url) for _ in range(4)), count.s()).apply_async()
    assert warm.get(timeout=120) == "4", "the Celery worker did not run the warm-up chord"
    started = time.perf_counter()
    if scenario == "wide":
        result = chord(group(post.s("x", url) for _ in range(n)), count.s()).apply_async()
        got = result.get(timeout=1800)
        want = str(n)
    elif scenario == "deep":
        result = chain([step.s(0, url)] + [step.s(url) for _ in range(n - 1)]).apply_async()
        got = result.get(timeout=1800)
        want = str(n)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    seconds = time.perf_counter() - started
    if got != want:
        raise SystemExit(f"celery {scenario}: got {got!r}, expected {want!r}")
    print(json.dumps({"scenario": scenario, "n": n, "seconds": seconds}))


if __name__ == "__main__":
    main()
