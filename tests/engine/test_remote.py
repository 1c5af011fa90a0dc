"""engine/remote.py against a misbehaving loopback server (tests/helpers/fault_server.py): every
failure is one line, the partial answer is kept, nothing crashes, and a retry works. Also
the protocol details a real server relies on: fields sent, fallback to chat, stop strings.
No model is loaded here."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO
from tests.helpers.fault_server import FaultServer, endless, error, json_answer, refuse_extra_fields, stall, stream

from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.generate import StopReason
from codeup_tui.engine.remote import Endpoint, RemoteClient, RemoteError, api_key_from_env, request_fields
from codeup_tui.engine.sampling import SamplingParams

GREEDY = SamplingParams(temperature=0, top_k=7)
WAIT = 30  # seconds: only a bound on a hang, never reached when things work


@pytest.fixture
def server():
    s = FaultServer()
    yield s
    s.close()


def finished(handle):
    assert handle.wait(WAIT), "the generation never finished"
    handle.thread.join(WAIT)
    return handle.result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- a good server: what is sent, what comes back -----------------------------------------------

def test_streams_the_answer_and_sends_the_sampling_fields(server):
    client = RemoteClient(server.url, "sk-test")
    info = client.probe()
    assert info.model == "fault-model" and not info.n_ctx_known  # no /props, no meta: assumed
    handle = client.start("### Instruction:\nhi\n\n### Response:\n", GREEDY, max_tokens=12,
                          stop=["### Instruction:"])
    assert "".join(handle) == "Hello world"
    assert handle.result.stop_reason is StopReason.EOS and handle.result.error is None
    body = server.bodies("/v1/completions")[0]
    assert body["prompt"].startswith("### Instruction:") and body["stream"] is True
    assert body["model"] == "fault-model" and body["max_tokens"] == 12 and body["temperature"] == 0
    assert body["stop"] == ["### Instruction:"] and body["top_k"] == 7 and body["min_p"] == 0.05
    headers = server.requests[-1][3]
    assert headers["Authorization"] == "Bearer sk-test"


def test_without_max_tokens_nothing_limits_the_answer():
    standard, _extra = request_fields(SamplingParams(), -1, [])
    assert "max_tokens" not in standard  # OpenAI's default would cut the answer at 16 tokens


def test_fields_a_server_refuses_are_dropped_and_not_sent_again(server):
    server.on("/v1/completions", refuse_extra_fields(stream(["ok"])))
    client = RemoteClient(server.url)
    assert client.start("p", GREEDY).text() == "ok"
    assert client.start("p", GREEDY).text() == "ok"
    sent = server.bodies("/v1/completions")
    assert "top_k" in sent[0] and all("top_k" not in body and "min_p" not in body for body in sent[1:])
    assert len(sent) == 3 and sent[1]["temperature"] == 0  # the standard fields stay


def test_falls_back_to_chat_completions_when_completions_are_missing(server):
    server.on("/v1/completions", error(404, "Not Found"))
    server.on("/v1/chat/completions", stream(["Hi", " there"], chat=True))
    client = RemoteClient(server.url)
    prompt = "### Instruction:\nhello\n\n### Response:\n"
    assert client.start(prompt, GREEDY, max_tokens=5).text() == "Hi there"
    assert client.start(prompt, GREEDY, max_tokens=5).text() == "Hi there"
    chat = server.bodies("/v1/chat/completions")
    assert len(server.bodies("/v1/completions")) == 1  # learnt once
    assert len(chat) == 2 and chat[0]["messages"] == [{"role": "user", "content": prompt}]


def test_stop_strings_apply_even_when_the_server_ignores_them(server):
    server.on("/v1/completions", stream(["def f():", " pass\n\n### Ins", "truction:\nmore"], end="done"))
    handle = RemoteClient(server.url).start("p", GREEDY, stop=["### Instruction:"])
    assert handle.text() == "def f(): pass\n\n"
    assert handle.result.stop_reason is StopReason.STOP_STRING


def test_an_answer_that_is_not_streamed_is_taken_whole(server):
    server.on("/v1/completions", json_answer(200, {
        "choices": [{"index": 0, "text": "whole answer", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2}}))
    handle = RemoteClient(server.url).start("p")
    assert handle.text() == "whole answer" and handle.result.stop_reason is StopReason.LIMIT
    assert handle.timings().prompt_tokens == 9 and handle.timings().generated_tokens == 2


def test_timings_come_from_the_servers_usage_and_prompt_cache_report(server):
    def answer(handler, body):
        handler.raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for event in ({"choices": [{"text": "a", "finish_reason": None}]},
                      {"choices": [{"text": "b", "finish_reason": "length"}],
                       "timings": {"prompt_n": 2, "cache_n": 30}},
                      {"choices": [], "usage": {"prompt_tokens": 32, "completion_tokens": 2}}):
            handler.raw(b"data: " + json.dumps(event).encode() + b"\n\n")
        handler.raw(b"data: [DONE]\n\n")

    server.on("/v1/completions", answer)
    handle = RemoteClient(server.url).start("p", max_tokens=2)
    assert handle.text() == "ab" and handle.result.stop_reason is StopReason.LIMIT
    t = handle.timings()
    assert (t.prompt_tokens, t.prompt_evaluated, t.generated_tokens) == (32, 2, 2)
    assert "(30 reused from the cache)" in t.summary()


def test_token_counts_are_estimates_without_a_tokenize_endpoint(server):
    client = RemoteClient(server.url)
    count, estimated = client.count_tokens("x" * 40, add_bos=True)
    assert estimated and count == 11
    server.on("/tokenize", json_answer(200, {"tokens": [1, 2, 3]}))
    client = RemoteClient(server.url)
    assert client.count_tokens("whatever") == (3, False)
    assert server.bodies("/tokenize")[-1] == {"content": "whatever", "add_special": False, "parse_special": False}


def test_context_size_comes_from_llama_cpp_props(server):
    server.on("/props", json_answer(200, {"default_generation_settings": {"n_ctx": 2048}}))
    info = RemoteClient(server.url).probe()
    assert info.n_ctx == 2048 and info.n_ctx_known


def test_api_key_comes_from_the_environment():
    assert api_key_from_env({"CODEUP_API_KEY": "a", "OPENAI_API_KEY": "b"}) == "a"
    assert api_key_from_env({"OPENAI_API_KEY": "b"}) == "b"
    assert api_key_from_env({"CODEUP_API_KEY": " "}) is None


@pytest.mark.parametrize("url,problem", [
    ("ftp://host", "http:// or https://"),
    ("http://", "no host name"),
    ("http://host:99999", "not a URL"),
    ("http://host/v1?x=1", "without ? or #"),
])
def test_bad_endpoint_urls_are_one_line_errors(url, problem):
    with pytest.raises(UsageError, match=problem.replace("?", r"\?")):
        Endpoint.parse(url)


def test_endpoint_url_forms():
    assert Endpoint.parse("localhost:8080").url == "http://localhost:8080"
    assert Endpoint.parse("http://h:1/v1/").prefix == ""
    assert Endpoint.parse("https://h/api/v1").prefix == "/api" and Endpoint.parse("https://h").port == 443


# ---- failures: one line, partial answer kept, retry works -----------------------------------------

def test_refused_connection():
    client = RemoteClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RemoteError, match="refused the connection: is the server running"):
        client.probe()
    handle = client.start("p")
    result = finished(handle)
    assert result.stop_reason is StopReason.ERROR and "refused the connection" in str(result.error)


def test_unknown_host():
    with pytest.raises(RemoteError, match="cannot find the server 'no-such-host.invalid'"):
        RemoteClient("http://no-such-host.invalid:8080").probe()


@pytest.mark.parametrize("status,message", [
    (401, "refused the request (401: bad key): set the API key in $CODEUP_API_KEY"),
    (500, "server error 500 from http://127.0.0.1"),
    (500, ": boom; try again"),
])
def test_error_answers_are_one_line_and_a_retry_works(server, status, message):
    server.on("/v1/completions", error(status, "bad key" if status == 401 else "boom"), stream(["fine"]))
    client = RemoteClient(server.url)
    result = finished(client.start("p"))
    assert result.stop_reason is StopReason.ERROR and result.text == ""
    assert isinstance(result.error, RemoteError)
    assert len(str(result.error).splitlines()) == 1 and message in str(result.error)
    assert client.start("p").text() == "fine"


def test_401_on_connect_names_the_environment_variable(server):
    server.on("/v1/models", error(401, "Invalid API Key"))
    with pytest.raises(RemoteError, match=r"401: Invalid API Key.*CODEUP_API_KEY"):
        RemoteClient(server.url).probe()


@pytest.mark.parametrize("end,message", [
    ("drop", "closed the stream before the answer was complete"),
    ("garbage", "the server sent a malformed event"),
])
def test_a_stream_cut_or_broken_midway_keeps_the_partial_answer(server, end, message):
    server.on("/v1/completions", stream(["The answer", " is"], end=end), stream(["Retried", "."]))
    client = RemoteClient(server.url)
    handle = client.start("p", GREEDY)
    pieces = []
    with pytest.raises(RemoteError, match=message):
        for text in handle:  # iterating raises the error at the end, after every piece
            pieces.append(text)
    assert "".join(pieces) == "The answer is" == handle.result.text
    assert handle.result.stop_reason is StopReason.ERROR
    assert client.start("p", GREEDY).text() == "Retried."


def test_a_server_that_stops_mid_answer_times_out_with_the_text_kept(server):
    server.on("/v1/completions", stream(["partial"], end="stall"), stream(["again"]))
    client = RemoteClient(server.url, read_timeout=1.5)
    result = finished(client.start("p"))
    assert result.stop_reason is StopReason.ERROR and result.text == "partial"
    assert "sent nothing for 1.5 s" in str(result.error)
    assert client.start("p").text() == "again"


def test_a_server_that_never_answers_times_out(server):
    server.on("/v1/models", stall())
    client = RemoteClient(server.url, connect_timeout=1.5)
    with pytest.raises(RemoteError, match="sent nothing for 1.5 s"):
        client.probe()


def test_cancel_closes_the_stream(server):
    server.on("/v1/completions", endless("tick "))
    handle = RemoteClient(server.url).start("p")
    first = handle.next_piece(timeout=WAIT)
    assert first == "tick "
    handle.cancel()
    result = finished(handle)
    assert result.stop_reason is StopReason.CANCELLED and result.error is None
    assert result.text.startswith("tick ")
    assert server.client_closed.wait(WAIT)  # the server saw the connection go


def test_an_error_event_in_the_stream_is_reported(server):
    def answer(handler, body):
        handler.raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                    b'data: {"choices": [{"text": "so far", "finish_reason": null}]}\n\n'
                    b'data: {"error": {"message": "out of memory"}}\n\n')

    server.on("/v1/completions", answer)
    result = finished(RemoteClient(server.url).start("p"))
    assert result.text == "so far" and "the server failed mid-answer: out of memory" in str(result.error)


# ---- codeup run --endpoint against the faults ---------------------------------------------------

def codeup_run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "run", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, stdin=subprocess.DEVNULL, env=env)


def test_codeup_run_keeps_the_partial_answer_and_says_what_failed(server):
    server.on("/v1/completions", stream(["partial", " answer"], end="drop"))
    proc = codeup_run("--endpoint", server.url, "-p", "hello", "--no-display-prompt")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("partial answer")
    assert "codeup: error:" in proc.stderr and "closed the stream before the answer was complete" in proc.stderr


def test_codeup_run_unreachable_server_is_one_line():
    proc = codeup_run("--endpoint", f"http://127.0.0.1:{free_port()}", "-p", "hello")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "refused the connection" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["-m", "x.gguf"], "-m and --endpoint"),
    (["-t", "2"], "-t applies to a model run here"),
    (["--timeout", "0"], "--timeout 0"),
])
def test_codeup_run_endpoint_bad_flags(server, args, message):
    proc = codeup_run("--endpoint", server.url, "-p", "x", *args)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
