"""`codeup serve`'s API beyond the basics: what clients send (logprobs, n, logit_bias,
stream_options, the fields it refuses), llama.cpp's native endpoints (/completion,
/detokenize, /infill with the vocabulary's FIM tokens), CORS only for --cors-origin, the API
key on every endpoint, and requests that abuse it while /health and a completion still
answer. The server runs in this process (one model load for the module) on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.helpers.paths import REPO, fixtures_or_skip
from tests.helpers.model_builders import U32

openai = pytest.importorskip("openai", reason="the `openai` client is a test dependency (pip install -e .[test])")

KEY = "sk-codeup-api-test"
ORIGIN = "http://localhost:5173"
WAIT = 120  # seconds: a bound on a hang only
ANSWER_BOUND = 2.0  # seconds /health and a short completion must answer in while the server is abused


class Served:
    def __init__(self, model, *, api_key=KEY, cors_origins=(ORIGIN,)) -> None:
        from codeup_tui.engine.server import CodeupServer, make_http_server
        from codeup_tui.engine.templates import load_template

        self.app = CodeupServer(model, load_template("alpaca"), api_key=api_key, cors_origins=cors_origins)
        self.httpd = make_http_server(self.app, "127.0.0.1", 0)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def request(self, method: str, path: str, payload=None, *, key: str | None = KEY, headers=None,
                raw: bytes | None = None, timeout: float = WAIT):
        """(status, headers, decoded JSON or the text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        body = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
        sent = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}),
                **(headers or {})}
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        text = data.decode()
        try:
            decoded = json.loads(text) if text else None
        except ValueError:
            decoded = text
        return response.status, response, decoded

    def close(self) -> None:
        self.app.close()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def model(default_model_file):
    from codeup_tui.engine.model import load_model

    loaded = load_model(default_model_file)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def served(model):
    server = Served(model)
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0, timeout=WAIT)


@pytest.fixture(scope="module")
def model_id(client):
    return client.models.list().data[0].id


def sse_events(text: str) -> list:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


# ---- logprobs, n, logit_bias, stream_options ------------------------------------------------------

def test_chat_logprobs_match_the_answer(client, model_id):
    answer = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Say hello."}],
                                            max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    choice = answer.choices[0]
    content = choice.logprobs.content
    assert len(content) == answer.usage.completion_tokens and content
    tokens = "".join(entry.token for entry in content)
    # a stop string's own tokens are counted (and listed) but not part of the answer
    assert tokens == choice.message.content if choice.finish_reason == "length" else tokens.startswith(
        choice.message.content)
    for entry in content:
        assert entry.logprob <= 0 and bytes(entry.bytes).decode() == entry.token
        tops = [top.logprob for top in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        # greedy: the picked token is the most likely one
        assert entry.top_logprobs[0].token == entry.token and entry.top_logprobs[0].logprob == entry.logprob
    # without logprobs: none given
    plain = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Say hello."}],
                                           max_tokens=6, temperature=0)
    assert plain.choices[0].logprobs is None


def test_completion_logprobs_streaming_and_not_agree(client, model_id):
    whole = client.completions.create(model=model_id, prompt="def add(a, b):", max_tokens=5, temperature=0,
                                      logprobs=2)
    lp = whole.choices[0].logprobs
    assert "".join(lp.tokens) == whole.choices[0].text and len(lp.token_logprobs) == 5
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(5)]
    assert all(len(top) <= 2 and max(top.values()) == logprob for top, logprob in zip(lp.top_logprobs, lp.token_logprobs))
    tokens, logprobs = [], []
    for chunk in client.completions.create(model=model_id, prompt="def add(a, b):", max_tokens=5, temperature=0,
                                           logprobs=2, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            tokens += chunk.choices[0].logprobs.tokens
            logprobs += chunk.choices[0].logprobs.token_logprobs
    assert tokens == lp.tokens and logprobs == pytest.approx(lp.token_logprobs)


def test_n_gives_several_answers_with_summed_usage(client, model_id, model):
    # the end-of-generation tokens banned, so that every answer runs to max_tokens whatever
    # it samples and the usage is known: 3 answers of 4 tokens
    no_end = {str(t): -100 for t in model.tokenizer.eog_ids}
    answer = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Name a fruit."}],
                                            max_tokens=4, temperature=1.0, seed=7, n=3, logit_bias=no_end)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert answer.usage.completion_tokens == 12 and all(c.finish_reason == "length" for c in answer.choices)
    again = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Name a fruit."}],
                                           max_tokens=4, temperature=1.0, seed=7, n=3, logit_bias=no_end)
    assert [c.message.content for c in again.choices] == [c.message.content for c in answer.choices]
    # streamed: each answer's pieces under its index, then the usage, then [DONE]
    texts = {0: "", 1: ""}
    finished, usage = set(), None
    for chunk in client.completions.create(model=model_id, prompt="1, 2, 3,", max_tokens=3, temperature=0, n=2,
                                           stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1} and texts[0] == texts[1] and texts[0]  # greedy: the same twice
    assert usage is not None and usage.completion_tokens == 6


def test_logit_bias_changes_the_choice(served, client, model_id):
    tokenizer = served.app.model.tokenizer
    first = client.completions.create(model=model_id, prompt="The capital of France is", max_tokens=1, temperature=0)
    token = tokenizer.encode(first.choices[0].text, add_bos=False)[0]
    banned = client.completions.create(model=model_id, prompt="The capital of France is", max_tokens=1, temperature=0,
                                       logit_bias={str(token): -100})
    assert banned.choices[0].text != first.choices[0].text
    forced_id = tokenizer.encode(" banana", add_bos=False)[0]
    forced = client.completions.create(model=model_id, prompt="The capital of France is", max_tokens=2,
                                       temperature=0, logit_bias={str(forced_id): 100})
    piece = tokenizer.token_to_piece(forced_id).decode()
    assert forced.choices[0].text == piece * 2
    # llama.cpp's list form, with false = never
    status, _, answer = served.request("POST", "/v1/completions", {
        "prompt": "The capital of France is", "max_tokens": 1, "temperature": 0, "logit_bias": [[token, False]]})
    assert status == 200 and answer["choices"][0]["text"] != first.choices[0].text
    for bad in ({"abc": 1}, {"5": 1000}, {str(10 ** 9): 1}, "x"):
        status, _, answer = served.request("POST", "/v1/completions", {"prompt": "x", "logit_bias": bad})
        assert status == 400 and "logit_bias" in answer["error"]["message"]


def test_include_usage_only_when_asked(client, model_id):
    chunks = list(client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=2, temperature=0, stream=True))
    assert all(c.usage is None for c in chunks)
    chunks = list(client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=2, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2


@pytest.mark.parametrize("field, value", [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
    ("tool_choice", "auto"),
    ("functions", [{"name": "f"}]),
    ("function_call", "auto"),
    ("response_format", {"type": "json_object"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
])
def test_unsupported_fields_are_refused_by_name(served, field, value):
    status, _, answer = served.request("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, field: value})
    assert status == 400 and f"'{field}'" in answer["error"]["message"]
    assert set(answer["error"]) == {"message", "type", "code"} and answer["error"]["code"] == 400


def test_harmless_values_of_those_fields_are_accepted(client, model_id):
    answer = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}],
                                            max_tokens=1, tool_choice="none", response_format={"type": "text"})
    assert answer.choices[0].finish_reason == "length"


# ---- llama.cpp's native endpoints ---------------------------------------------------------------

def test_native_completion_and_detokenize(served, client, model_id):
    expected = client.completions.create(model=model_id, prompt="def add(a, b):", max_tokens=4,
                                         temperature=0).choices[0].text
    status, _, answer = served.request("POST", "/completion", {"prompt": "def add(a, b):", "n_predict": 4,
                                                                "temperature": 0, "n_probs": 2})
    assert status == 200 and answer["content"] == expected and answer["stop"] is True
    assert answer["stop_type"] == "limit" and answer["tokens_predicted"] == 4
    probs = answer["completion_probabilities"]
    assert "".join(p["token"] for p in probs) == expected and all(len(p["top_logprobs"]) == 2 for p in probs)
    status, _, text = served.request("POST", "/completion", {"prompt": "def add(a, b):", "n_predict": 4,
                                                              "temperature": 0, "stream": True})
    events = [json.loads(e) for e in sse_events(text)]
    assert "".join(e["content"] for e in events) == expected
    assert [e["stop"] for e in events] == [False] * (len(events) - 1) + [True]
    status, _, tokens = served.request("POST", "/tokenize", {"content": "def add(a, b):"})
    status, _, back = served.request("POST", "/detokenize", tokens)
    assert status == 200 and back == {"content": "def add(a, b):"}
    status, _, answer = served.request("POST", "/detokenize", {"tokens": [10 ** 9]})
    assert status == 400 and "outside the vocabulary" in answer["error"]["message"]


def test_infill_without_fim_tokens_is_400(served):
    status, _, answer = served.request("POST", "/infill", {"input_prefix": "def f(", "input_suffix": "\n"})
    assert status == 400 and "fill-in-the-middle" in answer["error"]["message"]
    status, _, answer = served.request("POST", "/v1/completions", {"prompt": "def f(", "suffix": "\n"})
    assert status == 400 and "'suffix'" in answer["error"]["message"]


@pytest.mark.parametrize("vocab, tokens", [
    ("ggml-vocab-starcoder.gguf", ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>")),
    ("ggml-vocab-deepseek-coder.gguf", ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", None)),
])
def test_fim_tokens_are_found_in_code_vocabularies(vocab, tokens):
    from codeup_tui.engine import open_model_file
    from codeup_tui.engine.fim import find_fim_tokens, infill_tokens
    from codeup_tui.engine.tokenizer import build_tokenizer

    mf = open_model_file(fixtures_or_skip("vocab", vocab))
    tok = build_tokenizer(mf.tokenizer)
    fim = find_fim_tokens(tok, mf.metadata)
    ids = [None if t is None else tok.token_id(t) for t in tokens]
    assert (fim.prefix, fim.suffix, fim.middle, fim.separator) == tuple(ids)
    built = infill_tokens(tok, fim, "def f(x):\n    return ", "\n\nprint(f(2))\n", extra=[("util.py", "X = 1\n")])
    text = tok.decode(built, skip_special=False)
    before, after = text.split(tokens[0])[1].split(tokens[1])
    assert before == "def f(x):\n    return " and after.startswith("\n\nprint(f(2))\n")
    head = text.split(tokens[0])[0]  # the other file, before the code around the cursor
    assert text.endswith(tokens[2]) and "util.py" in head and "X = 1" in head
    if tokens[3] is not None:
        assert tokens[3] + "util.py\nX = 1" in head


def test_vocabularies_without_fim_tokens_have_none(default_model_file):
    from codeup_tui.engine import open_model_file
    from codeup_tui.engine.fim import find_fim_tokens
    from codeup_tui.engine.tokenizer import build_tokenizer

    for path in (default_model_file, fixtures_or_skip("vocab", "ggml-vocab-llama-spm.gguf")):
        mf = open_model_file(path)
        assert find_fim_tokens(build_tokenizer(mf.tokenizer), mf.metadata) is None


def fim_model_file(tmp_path):
    """A tiny llama whose vocabulary has FIM tokens named by the GGUF keys (CodeLlama's
    spelling: ▁<PRE> ...)."""
    from tests.helpers.model_builders import small_llama_gguf

    g = small_llama_gguf(n_vocab=64)
    names = {3: "▁<PRE>", 4: "▁<SUF>", 5: "▁<MID>", 6: "▁<EOT>"}
    kv = []
    for key, vtype, value, elem in g.kv:
        if key == "tokenizer.ggml.tokens":
            value = [names.get(i, t) for i, t in enumerate(value)]
        elif key == "tokenizer.ggml.token_type":
            value = [3 if i in names else t for i, t in enumerate(value)]
        kv.append((key, vtype, value, elem))
    g.kv = kv
    rng = np.random.default_rng(0)  # the builder's weights are random bytes: make them sane numbers
    g.tensors = [(name, kind, shape, (rng.standard_normal(int(np.prod(shape))) * 0.1 + ("norm" in name))
                  .astype(np.float32).tobytes()) for name, kind, shape, _ in g.tensors]
    g.add("tokenizer.ggml.prefix_token_id", U32, 3).add("tokenizer.ggml.suffix_token_id", U32, 4)
    g.add("tokenizer.ggml.middle_token_id", U32, 5).add("tokenizer.ggml.eot_token_id", U32, 6)
    path = tmp_path / "fim-llama.gguf"
    path.write_bytes(g.build())
    return path


def test_infill_with_a_fim_model(tmp_path):
    from codeup_tui.engine.fim import infill_tokens
    from codeup_tui.engine.model import load_model

    with load_model(fim_model_file(tmp_path)) as small:
        server = Served(small, api_key=None, cors_origins=())
        try:
            fim = server.app.fim
            assert (fim.prefix, fim.suffix, fim.middle) == (3, 4, 5)
            body = {"input_prefix": "tok9tok10", "input_suffix": "tok11", "prompt": "tok12", "n_predict": 3,
                    "temperature": 0, "input_extra": [{"filename": "a.py", "text": "tok13"}]}
            status, _, answer = server.request("POST", "/infill", body, key=None)
            assert status == 200 and answer["tokens_predicted"] <= 3 and answer["stop"] is True
            expected = infill_tokens(small.tokenizer, fim, "tok9tok10", "tok11", "tok12", [("a.py", "tok13")])
            assert answer["tokens_evaluated"] == len(expected)
            assert expected[:1] == [small.tokenizer.bos_id] and 3 in expected and expected.index(3) < \
                expected.index(4) < expected.index(5)
            # OpenAI's `suffix` is the same fill-in-the-middle
            status, _, answer = server.request("POST", "/v1/completions", {
                "prompt": "tok9tok10", "suffix": "tok11", "max_tokens": 2, "temperature": 0}, key=None)
            assert status == 200 and answer["usage"]["prompt_tokens"] == len(
                infill_tokens(small.tokenizer, fim, "tok9tok10", "tok11"))
            # an editor's whole (large) file: only what could fit is tokenized, and it answers
            status, _, answer = server.request("POST", "/infill", {
                "input_prefix": "tok9" * 250_000, "input_suffix": "tok11" * 200_000, "n_predict": 1,
                "input_extra": [{"filename": "big.py", "text": "tok13" * 200_000}]}, key=None)
            assert status == 200 and answer["tokens_evaluated"] <= small.n_ctx
            status, _, answer = server.request("POST", "/infill", {"input_prefix": 5}, key=None)
            assert status == 400 and "'input_prefix' must be a string" in answer["error"]["message"]
        finally:
            server.close()


# ---- CORS, the API key, binding ----------------------------------------------------------------------

def test_cors_only_for_the_origins_given(served, model):
    status, response, _ = served.request("GET", "/v1/models", headers={"Origin": ORIGIN})
    assert status == 200 and response.getheader("Access-Control-Allow-Origin") == ORIGIN
    status, response, _ = served.request("OPTIONS", "/v1/chat/completions", key=None,
                                         headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert status == 204 and response.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert "POST" in response.getheader("Access-Control-Allow-Methods")
    assert "Authorization" in response.getheader("Access-Control-Allow-Headers")
    for method in ("GET", "OPTIONS"):
        status, response, answer = served.request(method, "/v1/models", headers={"Origin": "https://evil.example"})
        assert status == 403 and response.getheader("Access-Control-Allow-Origin") is None
        assert "--cors-origin" in answer["error"]["message"]
    status, response, _ = served.request("GET", "/v1/models")  # not a browser: no CORS headers
    assert status == 200 and response.getheader("Access-Control-Allow-Origin") is None
    # by default no origin at all
    default = Served(model, cors_origins=())
    try:
        status, response, _ = default.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1},
                                              headers={"Origin": ORIGIN})
        assert status == 403 and response.getheader("Access-Control-Allow-Origin") is None
    finally:
        default.close()


def test_the_api_key_is_checked_on_every_endpoint_but_health(served):
    gets = ["/v1/models", "/models", "/props"]
    posts = ["/tokenize", "/detokenize", "/v1/completions", "/completions", "/v1/chat/completions",
             "/chat/completions", "/completion", "/infill"]
    for key in (None, "sk-wrong"):
        for path in gets:
            assert served.request("GET", path, key=key)[0] == 401, path
        for path in posts:
            status, response, answer = served.request("POST", path, {"prompt": "x"}, key=key)
            assert status == 401 and answer["error"]["type"] == "authentication_error", path
            assert response.getheader("WWW-Authenticate") == "Bearer"
    assert served.request("GET", "/health", key=None)[0] == 200


def test_bad_cors_origin_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "serve", "--cors-origin", "localhost"],
                          capture_output=True, text=True, cwd=REPO, timeout=WAIT)
    assert proc.returncode == 2 and "--cors-origin" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# ---- abuse: each refused or timed out while the server keeps answering -------------------------------

def answers_promptly(served, bound: float) -> None:
    """/health and a one-token completion both answer within `bound` seconds."""
    start = time.monotonic()
    assert served.request("GET", "/health", key=None, timeout=bound * 5)[0] == 200
    status, _, answer = served.request("POST", "/v1/completions", {"prompt": "Hello", "max_tokens": 1,
                                                                    "temperature": 0}, timeout=bound * 5)
    took = time.monotonic() - start
    assert status == 200 and answer["usage"]["completion_tokens"] == 1
    assert took < bound, f"/health and a completion took {took:.2f} s while the server was abused"


@pytest.fixture(scope="module")
def bound(served):
    """ANSWER_BOUND, or more when this machine is so loaded that even the unabused server is slow."""
    start = time.monotonic()
    answers_promptly(served, WAIT)
    return max(ANSWER_BOUND, 3 * (time.monotonic() - start))


def test_malformed_requests_get_4xx(served, bound):
    cases = [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (json.dumps({"prompt": 5}).encode(), 400, "'prompt'"),
        (json.dumps({"prompt": "x", "max_tokens": "ten"}).encode(), 400, "'max_tokens'"),
        (json.dumps({"prompt": "x", "temperature": [1]}).encode(), 400, "'temperature'"),
        (json.dumps({"prompt": "x", "stream": "yes"}).encode(), 400, "'stream'"),
        (json.dumps({"prompt": "x", "stream_options": 3}).encode(), 400, "'stream_options'"),
        (json.dumps({"prompt": "x", "n": 10 ** 6}).encode(), 400, "'n'"),
        (json.dumps({"prompt": "x", "logprobs": 10 ** 6}).encode(), 400, "'logprobs'"),
        (json.dumps({"prompt": "x", "stop": ["s"] * 100_000}).encode(), 400, "'stop'"),
    ]
    for raw, status_wanted, words in cases:
        status, _, answer = served.request("POST", "/v1/completions", raw=raw)
        assert status == status_wanted and words in answer["error"]["message"], (raw[:40], answer)
    answers_promptly(served, bound)


def test_a_huge_content_length_without_a_body(served, bound):
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                     + b"\r\nContent-Length: 99999999999\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    # a body announced but never sent: that connection waits (until its timeout), the others go on
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                     + b"\r\nContent-Length: 1000000\r\n\r\n{")
        answers_promptly(served, bound)


def test_a_body_that_never_arrives_times_out_with_408(served, monkeypatch):
    from codeup_tui.engine import server as server_module

    monkeypatch.setattr(server_module, "BODY_SECONDS", 0.5)
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                     + b"\r\nContent-Length: 100\r\n\r\n{\"prompt\":")
        start = time.monotonic()
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 30


def test_slow_headers_are_cut_off_with_408(served, monkeypatch):
    from codeup_tui.engine import server as server_module

    monkeypatch.setattr(server_module, "HEADER_SECONDS", 1.0)
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
        reply = b""
        while chunk := sock.recv(4096):  # a byte now and then does not keep it open
            reply += chunk
            sock.sendall(b"a") if not reply else None
        assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 30


def test_fifty_slowloris_connections(served, bound):
    socks = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=WAIT)
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(sock)
        for sock in socks:
            sock.sendall(b"a")  # a byte now and then: the headers never end
        answers_promptly(served, bound)
        for sock in socks:
            sock.sendall(b"b")
        answers_promptly(served, bound)
    finally:
        for sock in socks:
            sock.close()
    assert served.request("GET", "/health", key=None)[0] == 200
