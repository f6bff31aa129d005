"""DBOS, the second peer: the same trees as aetr's bench, in one DBOS Transact process whose
system database is on the bench's PostgreSQL, each step POSTing to the bench's service.

The bench runs it once per scenario; it launches DBOS, runs a small warm-up of the scenario,
times the real one and prints one JSON line:

    python bench_dbos.py wide N SERVICE           # a workflow that enqueues N steps on a queue,
                                                  # waits for their results and counts them
    python bench_dbos.py deep N SERVICE           # a workflow that calls a step N times, each
                                                  # POSTing to SERVICE/sync and adding one
    python bench_dbos.py deep-callback N SERVICE  # the same chain, each step POSTing to
                                                  # SERVICE/cb?aetr=<an endpoint of this process>;
                                                  # the endpoint DBOS.sends the callback's body
                                                  # to the workflow, which DBOS.recvs it
    python bench_dbos.py mixed M SERVICE          # M workflows at once, each running a child
                                                  # workflow of two steps (a, b) beside a step
                                                  # (c), then adding the branches

SERVICE is the service's base URL (http://127.0.0.1:<port>). BENCH_DBOS_URL names the system
database (a SQLAlchemy URL). For trying other settings: BENCH_DBOS_CONCURRENCY sets wide's
queue's worker_concurrency (32), BENCH_DBOS_POLL its polling interval (0.01 s) and
BENCH_DBOS_POOL the system database's pool size (DBOS's default, 20).
"""

import json
import os
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from dbos import DBOS, DBOSConfig

# wide's steps that run at once. Without a limit, a queue starts every enqueued workflow at
# once, each on a thread of its own (10,000), all sharing the pool of 20 connections.
CONCURRENCY = int(os.environ.get("BENCH_DBOS_CONCURRENCY", "32"))
# How often a queue looks for work (DBOS's default is 1 s; a slot freed waits for the next
# poll, so with 1 s a queue would start at most CONCURRENCY workflows a second).
POLL = float(os.environ.get("BENCH_DBOS_POLL", "0.01"))
# How often wide's workflow polls for an enqueued step's result (DBOS's default is 1 s): as
# often as the bench polls aetr for a run's end in wide.
WAIT_POLL = 0.005
# What the bench gives a scenario before it calls it stuck.
DEADLINE_S = 1800

# wide's queue (3.x keeps queues in the system database: registered once DBOS is launched).
tasks = None
# The callback endpoint's base URL (deep-callback).
ENDPOINT = None


def note(line):
    """A line for the log (the bench keeps this process's stderr in target/bench-logs)."""
    print(f"bench_dbos: {line}", file=sys.stderr, flush=True)


# One keep-alive session per thread (DBOS runs each workflow on a thread of its executor).
_local = threading.local()


def session():
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


def post(url, data):
    answer = session().post(url, data=str(data), timeout=30)
    answer.raise_for_status()
    return answer


@DBOS.step()
def action(data, url):
    """An action: POST the input to the service, whose answer is the result."""
    return post(url, data).text


@DBOS.workflow()
def wide(n, url):
    """The documented fan-out: enqueue every task, then wait for each result in turn."""
    started = time.perf_counter()
    handles = [tasks.enqueue(action, "x", url) for _ in range(n)]
    enqueued = time.perf_counter()
    results = [h.get_result(polling_interval_sec=WAIT_POLL) for h in handles]
    waited = time.perf_counter() - enqueued
    note(f"wide {n}: enqueued in {enqueued - started:.2f} s, then waited {waited:.2f} s")
    return str(len(results))


@DBOS.step()
def plus(data, add, url):
    """A chain's action with aetr's mapper: the service's answer plus `add`."""
    return str(int(post(url, data).text) + add)


@DBOS.workflow()
def deep(n, url):
    data = "0"
    for _ in range(n):
        data = plus(data, 1, url)
    return data


@DBOS.step()
def ask(data, url, callback):
    """An action whose answer comes later: the service answers 202, then POSTs the body to
    `callback`."""
    answer = session().post(url, params={"aetr": callback}, data=str(data), timeout=30)
    if answer.status_code != 202:
        raise RuntimeError(f"the service answered {answer.status_code}, not 202")


@DBOS.workflow()
def deep_callback(n, url, endpoint):
    me = DBOS.workflow_id
    data = "0"
    asking = waiting = 0.0
    for i in range(n):
        started = time.perf_counter()
        ask(data, url, f"{endpoint}/callback/{me}/{i}")
        asked = time.perf_counter()
        body = DBOS.recv(topic=str(i), timeout_seconds=60)
        if body is None:
            raise RuntimeError(f"step {i}: no callback within 60 s")
        data = str(int(body) + 1)
        asking += asked - started
        waiting += time.perf_counter() - asked
    note(f"deep-callback {n}: {asking:.2f} s in the steps, {waiting:.2f} s in recv")
    return data


@DBOS.workflow()
def branch_ab(i, url):
    return plus(plus(i, 1, url), 1, url)


@DBOS.workflow()
def mixed_run(i, url):
    """Parallel[Sequential[a, b], c]: the branch a, b as a child workflow, c beside it."""
    ab = DBOS.start_workflow(branch_ab, i, url)
    c = plus(i, 10, url)
    return str(int(ab.get_result()) + int(c))


class Callbacks(BaseHTTPRequestHandler):
    """POST /callback/<workflow id>/<step>: the service's callback, sent on to the workflow."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1] != "callback":
            return self.answer(404)
        try:
            DBOS.send(parts[2], body, topic=parts[3])
        except Exception as e:  # the service sends it again on a 5xx
            note(f"DBOS.send failed: {e!r}")
            return self.answer(500)
        self.answer(200)

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve_callbacks():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Callbacks)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def run(scenario, n, service):
    """Runs the scenario at size `n`; returns (what it gave, what it should give)."""
    if scenario == "wide":
        return wide(n, f"{service}/sync"), str(n)
    if scenario == "deep":
        return deep(n, f"{service}/sync"), str(n)
    if scenario == "deep-callback":
        return deep_callback(n, f"{service}/cb", ENDPOINT), str(n)
    if scenario == "mixed":
        url = f"{service}/sync"
        # Started at once, each on a thread of its own (DBOS's executor has no limit).
        handles = [DBOS.start_workflow(mixed_run, i, url) for i in range(n)]
        got = [h.get_result() for h in handles]
        return got, [str(2 * i + 12) for i in range(n)]
    raise SystemExit(f"unknown scenario {scenario!r}")



def main():
    global ENDPOINT, tasks
    scenario, n, service = sys.argv[1], int(sys.argv[2]), sys.argv[3].rstrip("/")
    # Ends a stuck run: the bench must end by itself.
    watchdog = threading.Timer(DEADLINE_S, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    config: DBOSConfig = {
        "name": "aetr-bench-dbos",
        "system_database_url": os.environ["BENCH_DBOS_URL"],
        "log_level": "WARNING",
    }
    if os.environ.get("BENCH_DBOS_POOL"):
        config["sys_db_pool_size"] = int(os.environ["BENCH_DBOS_POOL"])
    DBOS(config=config)
    DBOS.launch()
    tasks = DBOS.register_queue(
        "bench_tasks",
        worker_concurrency=CONCURRENCY,
        polling_interval_sec=POLL,
        on_conflict="always_update",
    )
    if scenario == "deep-callback":
        ENDPOINT = serve_callbacks()
    # Warms up the process (connections, threads, the service's connections) on a small run.
    warm, want = run(scenario, 4, service)
    assert warm == want, f"DBOS's warm-up {scenario} gave {warm!r}, not {want!r}"
    started = time.perf_counter()
    got, want = run(scenario, n, service)
    seconds = time.perf_counter() - started
    if got != want:
        if isinstance(got, list):
            bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
            raise SystemExit(f"dbos {scenario}: {len(bad)} wrong (run, got, expected): {bad[:5]}")
        raise SystemExit(f"dbos {scenario}: got {got!r}, expected {want!r}")
    figures = {"scenario": scenario, "n": n, "seconds": seconds}
    print(json.dumps(figures | {"concurrency": CONCURRENCY, "poll": POLL}), flush=True)
    DBOS.destroy()
    # Threads that DBOS or the callback server may still hold do not keep the process up.
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        # DBOS's threads must not keep a failed run up.
        os._exit(1)
