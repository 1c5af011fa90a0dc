"""`codeup serve` with the default model, driven by the official `openai` client (a real
client nobody here wrote), streaming and not; the llama.cpp extras (/tokenize, /health,
/props); the API key; 8 clients at once; a client that leaves mid-stream; binding; and
`codeup run --endpoint` against it. One server process for the module (one model load);
answers are kept short."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers.paths import REPO
from tests.helpers.serve_process import ServeProcess, env_with

openai = pytest.importorskip("openai", reason="the `openai` client is a test dependency (pip install -e .[test])")

KEY = "sk-codeup-test"
SLOTS = 4  # codeup serve's default -np (the slots share the context: a request may use all 4096)
WAIT = 120  # seconds: a bound on a hang only


@pytest.fixture(scope="module")
def served(default_model_file):
    server = ServeProcess(default_model_file, "--api-key", KEY)
    yield server
    status = server.stop()  # SIGTERM: a clean stop
    stderr = server.stderr_text()
    assert status == 0, stderr
    assert "Warning" not in stderr, stderr  # e.g. numpy's overflow warnings: numbers reached the engine unchecked


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0, timeout=WAIT)


@pytest.fixture(scope="module")
def model_id(client):
    return client.models.list().data[0].id


def post(served, path: str, payload: dict, key: str | None = KEY) -> tuple[int, dict]:
    request = urllib.request.Request(served.url + path, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(predicate, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


# ---- the API through the openai client ----------------------------------------------------------

def test_listens_on_loopback_by_default(served):
    assert served.host == "127.0.0.1" and "API key required" in served.first_line


def test_models_health_and_props(served, client, model_id, default_model_file):
    models = client.models.list().data
    assert [m.id for m in models] == [default_model_file.name]
    assert models[0].model_extra["meta"]["n_ctx"] == 4096
    health = served.health()  # no key needed: a load balancer's probe
    assert health["status"] == "ok" and health["model"] == model_id
    status, props = post(served, "/props", {})
    assert status == 405  # GET only
    request = urllib.request.Request(served.url + "/props", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        props = json.loads(response.read())
    assert props["default_generation_settings"]["n_ctx"] == 4096 and props["chat_template"] == "model"
    assert props["total_slots"] == SLOTS


def test_tokenize_matches_the_models_tokenizer(served, default_model_file):
    from codeup_tui.engine.formats import open_model_file
    from codeup_tui.engine.tokenizer import build_tokenizer

    text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n<|im_end|>"
    with open_model_file(default_model_file) as mf:
        tokenizer = build_tokenizer(mf.tokenizer)
    status, answer = post(served, "/tokenize", {"content": text, "parse_special": False})
    assert status == 200 and answer["tokens"] == tokenizer.encode(text, add_bos=False, parse_special=False)
    status, answer = post(served, "/tokenize", {"content": text})  # llama.cpp's default: special parsed
    assert answer["tokens"] == tokenizer.encode(text, add_bos=False, parse_special=True)
    assert answer["tokens"][-1] == tokenizer.encode("<|im_end|>", parse_special=True)[0]


def test_apply_template_renders_the_models_own_chat_template(served):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Name a colour."}]
    status, answer = post(served, "/apply-template", {"messages": messages})
    assert status == 200
    assert answer["prompt"] == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                                "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello."
                                "<|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n")
    status, answer = post(served, "/apply-template", {"messages": []})
    assert status == 400


def test_chat_template_file_and_a_template_that_raises(default_model_file, tmp_path):
    from tests.helpers.paths import fixtures_or_skip

    gemma = fixtures_or_skip("chat-templates", "google-gemma-2-2b-it.jinja")
    server = ServeProcess(default_model_file, "--chat-template-file", str(gemma))
    try:
        status, answer = post(server, "/apply-template", {"messages": [{"role": "user", "content": "Hi"}]}, key=None)
        assert status == 200
        assert answer["prompt"] == "<|im_start|><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
        status, answer = post(server, "/v1/chat/completions",
                              {"messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hi"}]}, key=None)
        assert status == 400
        assert answer["error"]["message"].endswith("the chat template says: System role not supported")
    finally:
        assert server.stop() == 0, server.stderr_text()


def test_completion_streaming_and_not_give_the_same_greedy_text(client, model_id):
    prompt = "The three primary colours are"
    whole = client.completions.create(model=model_id, prompt=prompt, max_tokens=10, temperature=0)
    choice = whole.choices[0]
    assert choice.text and choice.finish_reason == "length"
    assert whole.usage.completion_tokens == 10 and whole.usage.prompt_tokens == 5
    chunks = list(client.completions.create(model=model_id, prompt=prompt, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == choice.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 10  # the usage-only last chunk


def test_a_prompt_of_token_ids_is_the_same_as_its_text(served, client, model_id):
    _status, tokenized = post(served, "/tokenize", {"content": "def fib(n):"})
    by_ids = client.completions.create(model=model_id, prompt=tokenized["tokens"], max_tokens=6, temperature=0)
    by_text = client.completions.create(model=model_id, prompt="def fib(n):", max_tokens=6, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == len(tokenized["tokens"])


def test_prompt_cache_is_reused_across_requests(client, model_id):
    prompt = "Here is a list of fruits: apple, banana,"
    client.completions.create(model=model_id, prompt=prompt, max_tokens=2, temperature=0)
    again = client.completions.create(model=model_id, prompt=prompt + " cherry,", max_tokens=2, temperature=0)
    timings = again.model_extra["timings"]
    # only what is new is evaluated (at least the last token: its logits start the answer)
    assert timings["cache_n"] >= again.usage.prompt_tokens - 3 and timings["prompt_n"] <= 3


def test_chat_uses_the_template_and_streams(client, model_id):
    # (not "Name a colour.": its greedy answer differs once the prompt comes from the cache, the
    # last prompt token evaluated alone instead of in the batch: two near-equal logits)
    messages = [{"role": "user", "content": "What is 2+2?"}]
    whole = client.chat.completions.create(model=model_id, messages=messages, max_tokens=8, temperature=0)
    answer = whole.choices[0].message
    assert answer.role == "assistant" and answer.content
    # the model's ChatML: its system line + the user turn (the prompt is longer than the message)
    assert whole.usage.prompt_tokens > 20
    stream = client.chat.completions.create(model=model_id, messages=messages, max_tokens=8, temperature=0,
                                            stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer.content


def test_chat_with_earlier_turns_and_a_system_message(client, model_id):
    messages = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": [{"type": "text", "text": "Name another."}]},
    ]
    whole = client.chat.completions.create(model=model_id, messages=messages, max_tokens=4, temperature=0)
    assert whole.choices[0].message.content is not None and whole.usage.prompt_tokens > 20


def test_bad_requests_are_400_with_a_message(client, model_id, served):
    with pytest.raises(openai.BadRequestError, match="'top_p' must be between 0 and 1, got 5"):
        client.completions.create(model=model_id, prompt="x", top_p=5.0)
    with pytest.raises(openai.BadRequestError, match="more than the context of 4096"):
        client.completions.create(model=model_id, prompt="word " * 5000, max_tokens=1)
    with pytest.raises(openai.BadRequestError, match="the last message must be the user's"):
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "x"},
                                                                 {"role": "assistant", "content": "y"}])
    status, answer = post(served, "/v1/completions", {"prompt": "x", "n": 99})
    assert status == 400 and "'n' must be between 1 and 16" in answer["error"]["message"]
    status, answer = post(served, "/v1/nothing", {})
    assert status == 404 and answer["error"]["type"] == "not_found_error"
    assert served.health()["status"] == "ok"


def test_api_key_is_enforced(served, model_id):
    for key in (None, "sk-wrong"):
        status, answer = post(served, "/v1/completions", {"prompt": "x", "max_tokens": 1}, key=key)
        assert status == 401 and "API key" in answer["error"]["message"]
    wrong = openai.OpenAI(base_url=served.url + "/v1", api_key="sk-wrong", max_retries=0, timeout=WAIT)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


# ---- hostile requests cost bounded work ------------------------------------------------------------

def raw_post(served, path: str, body: bytes, conn: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
    own = conn is None
    conn = conn or http.client.HTTPConnection(served.host, served.port, timeout=WAIT)
    try:
        conn.request("POST", path, body=body,
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        if own:
            conn.close()


def test_deeply_nested_json_is_a_400(served):
    status, answer = raw_post(served, "/v1/completions", b"[" * 100_000)
    assert status == 400 and "nests arrays and objects more than" in answer["error"]["message"]
    deep_stop = "[" * 200 + '"x"' + "]" * 200  # valid JSON, under the parser's own limit
    status, answer = raw_post(served, "/v1/completions", f'{{"prompt": "x", "stop": {deep_stop}}}'.encode())
    assert status == 400 and "nests" in answer["error"]["message"]
    assert served.health()["status"] == "ok"


TEN_MB = 10_000_000
# Tokenizing 10 MB takes seconds (four at once took a completion beside them from 0.08 to
# 30 s); the bounds sit far below that and far above a quiet refusal (~0.1 s), since a shared
# two-core host runs everything several times slower in bursts.
REFUSE_SECONDS = 2.0
BESIDE_SECONDS = 5.0


def test_a_ten_megabyte_prompt_is_refused_before_tokenizing(served):
    bodies = {
        "/v1/completions": json.dumps({"prompt": "word " * (TEN_MB // 5), "max_tokens": 1}).encode(),
        "/v1/chat/completions": json.dumps({"messages": [{"role": "user", "content": "word " * (TEN_MB // 5)}]}).encode(),
    }
    for path, body in bodies.items():
        best = float("inf")
        for _ in range(3):  # the best of three: a busy machine may stall one try, never all
            started = time.monotonic()
            status, answer = raw_post(served, path, body)
            best = min(best, time.monotonic() - started)
            assert status == 400, answer
            message = answer["error"]["message"]
            assert f"{TEN_MB} bytes" in message and "131072 bytes" in message, message  # 4096 tokens x 32
            if best < REFUSE_SECONDS:
                break
        assert best < REFUSE_SECONDS, f"{path}: refusing a 10 MB prompt took {best:.2f} s"


def test_four_oversized_prompts_at_once_leave_a_normal_completion_fast(served, client, model_id):
    body = json.dumps({"prompt": "word " * (TEN_MB // 5), "max_tokens": 1}).encode()
    normal = {"model": model_id, "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}
    client.completions.create(**normal)  # compiled and cached: what is timed below is the contention

    def one_round() -> float:
        statuses: list[int] = []
        started = threading.Barrier(5)

        def oversized() -> None:
            started.wait(WAIT)
            statuses.append(raw_post(served, "/v1/completions", body)[0])

        threads = [threading.Thread(target=oversized) for _ in range(4)]
        for t in threads:
            t.start()
        started.wait(WAIT)
        time.sleep(0.02)  # the four are sending
        t0 = time.monotonic()
        answer = client.completions.create(**normal)
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(WAIT)
        assert statuses == [400] * 4 and answer.choices[0].text
        return elapsed

    # The best of three rounds: a busy machine may stall one, never all (before, tokenizing
    # the four took the completion from 0.08 s to 30 s).
    best = one_round()
    for _ in range(2):
        if best < BESIDE_SECONDS:
            break
        best = min(best, one_round())
    assert best < BESIDE_SECONDS, f"a 4-token completion took {best:.2f} s beside four 10 MB prompts"


def test_a_kept_alive_connection_costs_what_a_new_one_costs(served):
    body = json.dumps({"content": "hello world"}).encode()

    def timed(conn=None) -> float:
        t0 = time.perf_counter()
        status, _ = raw_post(served, "/tokenize", body, conn)
        assert status == 200
        return time.perf_counter() - t0

    kept = http.client.HTTPConnection(served.host, served.port, timeout=WAIT)
    try:
        timed(kept)
        kept_alive = statistics.median(timed(kept) for _ in range(50))
    finally:
        kept.close()
    fresh = statistics.median(timed() for _ in range(50))
    # Before, each kept-alive request waited ~40 ms: Nagle's algorithm held the body back
    # until the client's delayed ACK of the headers.
    assert kept_alive < fresh + 0.002, f"kept alive {kept_alive * 1000:.1f} ms, new connection {fresh * 1000:.1f} ms"


def test_extreme_sampling_numbers_are_400_not_overflow(served):
    for field in ("frequency_penalty", "presence_penalty", "repeat_penalty", "temperature"):
        status, answer = post(served, "/v1/completions", {"prompt": "x", "max_tokens": 1, field: 1e308})
        assert status == 400 and f"'{field}' must be between" in answer["error"]["message"], answer
    for word in ("NaN", "Infinity", "-Infinity"):
        status, answer = raw_post(served, "/v1/completions",
                                  f'{{"prompt": "x", "max_tokens": 1, "top_p": {word}}}'.encode())
        assert status == 400 and "'top_p' must be a finite number" in answer["error"]["message"], answer
    # The served fixture checks, at the end, that nothing reached stderr as a numpy warning.


# ---- more clients than slots: queued clients, a client that leaves ------------------------------

PROMPTS = [
    "The capital of France is", "def add(a, b):", "Water boils at", "My favourite animal is",
    "import numpy as", "Once upon a time", "The largest planet is", "SELECT name FROM",
]


def test_eight_clients_at_once_all_get_their_whole_answer(client, model_id, served):
    def ask(prompt: str, stream: bool) -> str:
        if stream:
            chunks = client.completions.create(model=model_id, prompt=prompt, max_tokens=8, temperature=0,
                                               stream=True)
            return "".join(c.choices[0].text for c in chunks)
        return client.completions.create(model=model_id, prompt=prompt, max_tokens=8, temperature=0).choices[0].text

    expected = {prompt: ask(prompt, False) for prompt in PROMPTS}  # one at a time first
    before = served.health()["generations"]
    barrier = threading.Barrier(len(PROMPTS))
    answers: dict[str, str] = {}
    errors: list[BaseException] = []

    def one(i: int, prompt: str) -> None:
        try:
            barrier.wait(WAIT)
            answers[prompt] = ask(prompt, stream=i % 2 == 0)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(PROMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert not errors, errors
    assert answers == expected
    # The last answer reaches its client just before the server frees the engine: let it settle.
    deadline = time.monotonic() + 5
    while (health := served.health())["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health["status"] == "ok" and not health["busy"] and health["queued"] == 0
    assert health["generations"] == before + len(PROMPTS)
    assert health["most_queued"] >= 1  # they did wait their turn


def open_stream(served, payload: dict) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection(served.host, served.port, timeout=WAIT)
    conn.request("POST", "/v1/completions", body=json.dumps(dict(payload, stream=True)),
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    response = conn.getresponse()
    assert response.status == 200
    return conn, response


def test_a_client_that_disconnects_mid_stream_frees_the_engine_within_one_token(served, client, model_id):
    conn, response = open_stream(served, {"prompt": "1, 2, 3, 4, 5, 6, 7,", "max_tokens": 1000, "temperature": 0})
    events = 0
    while events < 3:
        line = response.readline()
        events += line.startswith(b"data: ")
    assert served.health()["busy"]
    conn.sock.shutdown(2)
    conn.close()
    last = wait_for(lambda: (h := served.health())["last_generation"]["client_left"] and not h["busy"] and h,
                    "the server noticed the client left")["last_generation"]
    assert last["stop_reason"] == "cancelled"
    assert last["tokens_after_client_left"] <= 1  # the engine stopped within one token of noticing
    assert last["generated_tokens"] < 1000
    # and it serves the next client at once
    assert client.completions.create(model=model_id, prompt="Hi", max_tokens=2, temperature=0).choices[0].text


def test_a_queued_client_that_leaves_gives_up_its_place(served, client, model_id):
    # counting goes on and on: every slot is still busy while the next request waits
    busy = [open_stream(served, {"prompt": f"{i}, 2, 3, 4, 5, 6, 7,", "max_tokens": 1000, "temperature": 0})
            for i in range(SLOTS)]
    for _conn, response in busy:
        response.readline()
    waiting = http.client.HTTPConnection(served.host, served.port, timeout=WAIT)
    waiting.request("POST", "/v1/completions", body=json.dumps({"prompt": "x", "max_tokens": 50}),
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    wait_for(lambda: served.health()["queued"] == 1, "the next request queued")
    before = served.health()["generations"]
    waiting.sock.shutdown(2)
    waiting.close()
    wait_for(lambda: served.health()["queued"] == 0, "the queued request left")
    for conn, _response in busy:
        conn.close()
    wait_for(lambda: not served.health()["busy"], "the engine is free")
    assert served.health()["generations"] == before + SLOTS  # the one that left never ran


# ---- binding, and the command line -----------------------------------------------------------------

def test_binding_elsewhere_needs_a_flag(default_model_file):
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "serve", "-m", str(default_model_file),
                           "--host", "0.0.0.0"], capture_output=True, text=True, cwd=REPO, timeout=WAIT)
    assert proc.returncode == 2 and "add --allow-external" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_one_line(served, default_model_file):
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "serve", "-m", str(default_model_file),
                           "--port", str(served.port)], capture_output=True, text=True, cwd=REPO, timeout=WAIT)
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{served.port}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_binding_elsewhere_with_the_flag_warns(default_model_file):
    server = ServeProcess(default_model_file, "--host", "0.0.0.0", "--allow-external")
    try:
        assert "http://0.0.0.0:" in server.first_line
    finally:
        server.stop()
    warning = server.stderr_text()
    assert "warning: listening on 0.0.0.0" in warning and "no API key" in warning


def test_codeup_run_endpoint_against_serve(served, client, model_id):
    from codeup_tui.engine.templates import load_template

    template = load_template("alpaca")
    prompt = template.render("Write a Python function that adds two numbers.")
    expected = client.completions.create(model=model_id, prompt=prompt, max_tokens=12, temperature=0,
                                         stop=list(template.stop)).choices[0].text
    proc = subprocess.run(
        [sys.executable, "-m", "codeup_tui.engine.cli", "run", "--endpoint", served.url, "--template", "alpaca", "-p",
         "Write a Python function that adds two numbers.", "-n", "12", "--temp", "0", "--no-display-prompt"],
        capture_output=True, text=True, cwd=REPO, timeout=WAIT, stdin=subprocess.DEVNULL,
        env=env_with(CODEUP_API_KEY=KEY),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected + "\n"
    assert f"remote: {model_id} on {served.url}" in proc.stderr and "generation: " in proc.stderr


def test_codeup_run_endpoint_without_the_key_says_so(served):
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "run", "--endpoint", served.url, "-p", "x"],
                          capture_output=True, text=True, cwd=REPO, timeout=WAIT, stdin=subprocess.DEVNULL,
                          env=env_with(CODEUP_API_KEY="", OPENAI_API_KEY=""))
    assert proc.returncode == 2 and "401" in proc.stderr and "CODEUP_API_KEY" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("slots", ["4", "1"])  # the batched slots (default) and one sequence
def test_speculative_drafts_are_reported_in_timings_and_health(default_model_file, slots):
    served = ServeProcess(default_model_file, "--api-key", KEY, "-np", slots)
    try:
        # Text that repeats itself: the continuation can be guessed from the prompt.
        prompt = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(12))
        payload = {"prompt": prompt, "max_tokens": 40, "temperature": 0}
        status, answer = post(served, "/v1/completions", payload)
        assert status == 200
        timings = answer["timings"]
        assert 0 < timings["draft_n_accepted"] <= timings["draft_n"]
        last = served.health()["last_generation"]
        assert (last["drafted_tokens"], last["accepted_tokens"]) == (timings["draft_n"], timings["draft_n_accepted"])
    finally:
        served.stop()
