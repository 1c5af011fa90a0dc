"""`codeup serve -np N`: several streaming clients at once, each getting exactly the greedy
text it gets alone; a client that leaves frees its slot; a new request reuses the idle slot
whose cache holds its prefix; a long prompt read while others stream does not stop them.
Checked through /slots and /health, not through timings; every wait is bounded."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request

import pytest

from tests.helpers.paths import fixtures_or_skip
from tests.helpers.serve_process import ServeProcess

WAIT = 120  # seconds: a bound on a hang only


def get(server: ServeProcess, path: str):
    with urllib.request.urlopen(server.url + path, timeout=WAIT) as response:
        return json.loads(response.read())


def complete(server: ServeProcess, payload: dict) -> dict:
    request = urllib.request.Request(server.url + "/v1/completions", data=json.dumps(payload).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.loads(response.read())


def open_stream(server: ServeProcess, payload: dict):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
    conn.request("POST", "/v1/completions", body=json.dumps(dict(payload, stream=True)),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    return conn, response


def events(response):
    """The streamed text pieces, one at a time, until [DONE]."""
    while True:
        line = response.readline()
        if not line:
            return
        if not line.startswith(b"data: "):
            continue
        data = line[len(b"data: "):].strip()
        if data == b"[DONE]":
            return
        yield json.loads(data)["choices"][0]["text"]


def stream_text(server: ServeProcess, payload: dict) -> str:
    conn, response = open_stream(server, payload)
    try:
        return "".join(events(response))
    finally:
        conn.close()


def wait_for(predicate, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


# ---- batch invariance, on a model whose kernels give every row the same bits in any batch -------

@pytest.fixture(scope="module")
def kquant_server():
    server = ServeProcess(fixtures_or_skip("tiny-llama", "tiny-llama-Q4_K_M.gguf"), "-np", "4", "-c", "2048")
    yield server
    assert server.stop() == 0, server.stderr_text()


def test_concurrent_streaming_clients_each_get_their_alone_text(kquant_server):
    # token-id prompts of different lengths and answers of different lengths: sequences join
    # and leave the batch while others run; six clients on four slots, so two wait
    prompts = [[1] + [(37 * i + 11 * j) % 4000 + 10 for j in range(n)] for i, n in enumerate((3, 40, 9, 120, 1, 60))]
    lengths = [24, 8, 30, 16, 20, 12]
    requests = [{"prompt": p, "max_tokens": n, "temperature": 0} for p, n in zip(prompts, lengths)]
    alone = [stream_text(kquant_server, r) for r in requests]
    assert all(alone)
    barrier = threading.Barrier(len(requests))
    together: dict[int, str] = {}
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            barrier.wait(WAIT)
            together[i] = stream_text(kquant_server, requests[i])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert not errors, errors
    assert [together[i] for i in range(len(requests))] == alone
    health = kquant_server.health()
    assert health["most_parallel"] >= 2 and health["most_queued"] >= 1  # they did run side by side
    assert health["slots_processing"] == 0 and health["queued"] == 0


# ---- slots, with the default model ---------------------------------------------------------------

@pytest.fixture(scope="module")
def served(default_model_file):
    server = ServeProcess(default_model_file, "-np", "3", "-c", "6144")
    yield server
    assert server.stop() == 0, server.stderr_text()


def test_slots_report_their_state(served):
    slots = get(served, "/slots")
    assert [s["id"] for s in slots] == [0, 1, 2] and all(s["n_ctx"] == 2048 for s in slots)
    health = served.health()
    assert health["slots_idle"] + health["slots_processing"] == 3
    assert get(served, "/props")["total_slots"] == 3


def test_a_client_that_leaves_mid_stream_frees_its_slot(served):
    conn, response = open_stream(served, {"prompt": "1, 2, 3, 4, 5, 6, 7,", "max_tokens": 2000, "temperature": 0})
    pieces = events(response)
    for _ in range(3):
        next(pieces)
    busy = [s for s in get(served, "/slots") if s["is_processing"]]
    assert len(busy) == 1 and busy[0]["generated_tokens"] >= 3
    conn.sock.shutdown(2)
    conn.close()
    wait_for(lambda: not any(s["is_processing"] for s in get(served, "/slots")), "the slot was freed")
    last = served.health()["last_generation"]
    assert last["client_left"] and last["stop_reason"] == "cancelled" and last["tokens_after_client_left"] <= 1


def test_twenty_clients_that_leave_mid_stream_leave_nothing_running(served):
    conns = []
    for i in range(20):  # sent, never read: three take the slots, the rest wait for one
        conn = http.client.HTTPConnection(served.host, served.port, timeout=WAIT)
        conn.request("POST", "/v1/completions", headers={"Content-Type": "application/json"},
                     body=json.dumps({"prompt": f"{i}, 2, 3, 4, 5, 6,", "max_tokens": 4000, "temperature": 0,
                                      "stream": True}))
        conns.append(conn)
    wait_for(lambda: (h := get(served, "/health"))["slots_processing"] == 3 and h["queued"] == 17,
             "three streaming and seventeen waiting")
    for conn in conns:
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    wait_for(lambda: (h := get(served, "/health"))["slots_processing"] == 0 and h["queued"] == 0,
             "every slot freed and the queue empty")
    assert complete(served, {"prompt": "1, 2, 3,", "max_tokens": 3, "temperature": 0})["choices"][0]["text"]


def test_a_request_reuses_the_idle_slot_holding_its_prefix(served, default_model_file):
    # three different prompts, one at a time, fill the three slots; the first prompt's slot
    # is the least recently used, yet a request continuing the second prompt goes to the
    # second's slot and evaluates only what is new
    prompts = [f"Paragraph {name}: " + " ".join(f"{name}{i}" for i in range(25)) for name in ("alpha", "beta", "gamma")]
    for prompt in prompts:
        complete(served, {"prompt": prompt, "max_tokens": 2, "temperature": 0})
    cached = sorted(s["n_past"] for s in get(served, "/slots"))
    assert cached[0] > 25  # all three slots hold a prompt
    again = complete(served, {"prompt": prompts[1] + " and more", "max_tokens": 2, "temperature": 0})
    timings, usage = again["timings"], again["usage"]
    assert timings["cache_n"] >= usage["prompt_tokens"] - 4 and timings["prompt_n"] <= 4
    # the same text as on a slot that held nothing of it: reuse is exact
    fresh = ServeProcess(default_model_file, "-np", "1", "-c", "1024")
    try:
        expected = complete(fresh, {"prompt": prompts[1] + " and more", "max_tokens": 2, "temperature": 0})
    finally:
        fresh.stop()
    assert again["choices"][0]["text"] == expected["choices"][0]["text"]


def test_a_long_prompt_does_not_stop_the_streams(served):
    streams = [open_stream(served, {"prompt": f"{i}, 2, 3, 4, 5,", "max_tokens": 5000, "temperature": 0})
               for i in range(2)]
    readers = [events(response) for _conn, response in streams]
    counts = [0, 0]

    def read(i: int) -> None:
        try:
            for _piece in readers[i]:
                counts[i] += 1
        except (OSError, ValueError, AttributeError):  # the test closed the connection under it
            pass

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: min(counts) >= 2, "both streams flow")
    long_prompt = " ".join(f"word{i}" for i in range(130))  # about 400 tokens: many prompt chunks
    result: list[dict] = []
    asker = threading.Thread(target=lambda: result.append(
        complete(served, {"prompt": long_prompt, "max_tokens": 1, "temperature": 0})), daemon=True)
    asker.start()
    # while the long prompt is being read, the two streams go on getting tokens
    reading = wait_for(lambda: [s for s in get(served, "/slots") if s.get("prompt_tokens", 0) > 300
                                and s["state"] == "prompt"], "the long prompt is being read")
    before = list(counts)
    assert reading[0]["prompt_processed"] < reading[0]["prompt_tokens"]
    wait_for(lambda: all(c >= b + 3 for c, b in zip(counts, before)) or not asker.is_alive(), "streams go on")
    still_reading = [s for s in get(served, "/slots") if s.get("prompt_tokens", 0) > 300 and s["state"] == "prompt"]
    assert all(c >= b + 3 for c, b in zip(counts, before)), (before, counts, still_reading)
    asker.join(WAIT)
    assert result and result[0]["usage"]["prompt_tokens"] > 300
    for conn, _response in streams:
        conn.close()
    wait_for(lambda: not any(s["is_processing"] for s in get(served, "/slots")), "all slots free")
