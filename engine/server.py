"""`codeup serve`: one loaded model behind an OpenAI-compatible HTTP API.

    GET  /health                 {"status": "ok", "busy", "queued", "slots_idle", "tokens_per_second", ...}
                                 (no key needed)
    GET  /slots                  llama.cpp's: each slot's state, n_past and prompt
    GET  /v1/models              the model, with its context size (a slot's) in `meta`
    GET  /props                  llama.cpp's: the context size, the slots, the chat template's name
    POST /tokenize               llama.cpp's: {"content", "add_special", "parse_special"} -> {"tokens"}
    POST /v1/completions         a prompt (text or token ids); `stream` for server-sent events
    POST /v1/chat/completions    messages, rendered with a template from templates/

Standard library only (http.server.ThreadingHTTPServer): a thread per connection. The
engine generates for up to `n_parallel` requests at once (engine/batching.py: one batched
forward pass per step, each request in its own slot of the KV cache, -c split over the
slots); the others wait their turn in a FIFO queue (503 when more than `max_queue` wait).
A client that goes away (closes its connection while waiting, while its answer is computed
or streamed) gives its place up: the generation is cancelled as soon as the server
notices, which it checks after every generated token and every 0.1 s, and its slot is free
at the next step. Each slot keeps its KV cache, and a request takes the idle slot whose
cache begins like its prompt, so a chat's next turn evaluates only what is new.

Sampling fields: OpenAI's (temperature, top_p, max_tokens, stop, seed, frequency_penalty,
presence_penalty) and llama.cpp's (top_k, min_p, repeat_penalty, repeat_last_n, n_predict,
n_keep, parse_special); a field not given takes the engine's default (`codeup run`'s).
`max_tokens` absent: until the model stops, as llama.cpp's server does. Errors answer with
OpenAI's shape, {"error": {"message", "type", "code"}}.
"""

from __future__ import annotations

import hmac
import http.server
import ipaddress
import json
import select
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .batching import DEFAULT_SLOTS, BatchScheduler, QueueFull
from .errors import CodeupError, UsageError
from .generate import GenerationHandle, Generator, StopReason
from .model import Model
from .sampling import SamplingParams
from .templates import PromptTemplate, Turn

MAX_BODY = 16 << 20  # bytes of a request body
POLL_SECONDS = 0.1  # how often a waiting or computing request looks for its client
KEEPALIVE_SECONDS = 10.0  # an SSE comment after this long without a token (a long prompt)
MAX_STOP_STRINGS = 16


class HTTPError(Exception):
    """An answer other than 200, with OpenAI's error shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def is_loopback(host: str) -> bool:
    """True when `host` only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def client_gone(sock: socket.socket) -> bool:
    """True when the peer has closed the connection (readable, and a peek reads nothing)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


@dataclass
class GenerationRequest:
    """A completion or chat request, checked and tokenized."""

    chat: bool
    tokens: list[int]
    params: SamplingParams
    max_tokens: int = -1
    stop: list[str] = field(default_factory=list)
    keep: int | None = None
    stream: bool = False
    include_usage: bool = False


@dataclass
class Stats:
    """What /health reports beyond ok: for clients, and for tests that a client leaving frees
    the engine (tokens generated after the server noticed it left)."""

    generations: int = 0
    disconnects: int = 0
    last: dict = field(default_factory=dict)


class CodeupServer:
    """The engine side: the model, its scheduler (n_parallel slots generating together, each
    with its own prompt cache; the others wait in a queue), the chat template and the
    optional API key."""

    def __init__(
        self,
        model: Model,
        template: PromptTemplate,
        *,
        model_id: str | None = None,
        api_key: str | None = None,
        max_queue: int = 64,
        log: Callable[[str], None] | None = None,
        n_parallel: int = DEFAULT_SLOTS,
        kv_unified: bool = False,
    ) -> None:
        self.model = model
        self.generator = Generator(model)  # its tokenizer; generations run on the scheduler
        self.scheduler = BatchScheduler(model, n_parallel, max_queue, unified=kv_unified)
        self.template = template
        self.model_id = model_id or model.info.path.name
        self.api_key = api_key or None
        self.stats = Stats()
        self.created = int(time.time())
        self.log = log
        self._stats_lock = threading.Lock()
        self._closing = threading.Event()

    # ---- requests into generation requests --------------------------------------------------
    def completion_request(self, body: dict) -> GenerationRequest:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]  # one prompt in a batch of one
        parse_special = _get(body, "parse_special", bool, True)
        if isinstance(prompt, str):
            if not prompt:
                raise HTTPError(400, "'prompt' is empty")
            tokens = self.generator.tokenize(prompt, None, parse_special)
        elif isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):  # not bools
            tokens = [int(t) for t in prompt]
            bad = [t for t in tokens if not 0 <= t < self.model.info.n_vocab]
            if bad:
                raise HTTPError(400, f"token id {bad[0]} is outside the vocabulary of {self.model.info.n_vocab}")
        else:
            raise HTTPError(400, "'prompt' must be a non-empty string or list of token ids (one prompt)")
        for name in ("echo", "logprobs", "suffix"):
            if body.get(name) not in (None, False, 0, ""):
                raise HTTPError(400, f"'{name}' is not supported by this server")
        if _get(body, "best_of", int, 1) != 1:
            raise HTTPError(400, "'best_of' must be 1 on this server")
        return self._generation_request(body, tokens, [], chat=False)

    def chat_request(self, body: dict) -> GenerationRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPError(400, "'messages' must be a non-empty list")
        system, turns, instruction = _conversation(messages)
        template = self.template
        text = template.render_conversation(turns, instruction, system=system)
        tokens = self.generator.tokenize(text, template.wants_bos(self.model.tokenizer.add_bos),
                                         template.parse_special)
        return self._generation_request(body, tokens, list(template.stop), chat=True)

    def _generation_request(self, body: dict, tokens: list[int], stops: list[str], chat: bool) -> GenerationRequest:
        if _get(body, "n", int, 1) != 1:
            raise HTTPError(400, "'n' must be 1 on this server (one answer per request)")
        max_tokens = -1
        for name in ("max_tokens", "max_completion_tokens", "n_predict"):
            value = _get(body, name, int, None)
            if value is not None:
                if value < -1:
                    raise HTTPError(400, f"'{name}' must be -1 (until the end) or a count of tokens")
                max_tokens = value
                break
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        elif stop is None:
            stop = []
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > MAX_STOP_STRINGS:
            raise HTTPError(400, f"'stop' must be a string or a list of at most {MAX_STOP_STRINGS} strings")
        defaults = SamplingParams()
        values: dict[str, Any] = {}
        for name, kind, key in (
            ("temperature", float, "temperature"), ("top_p", float, "top_p"), ("top_k", int, "top_k"),
            ("min_p", float, "min_p"), ("repeat_penalty", float, "repeat_penalty"),
            ("repeat_last_n", int, "repeat_last_n"), ("frequency_penalty", float, "frequency_penalty"),
            ("presence_penalty", float, "presence_penalty"),
        ):
            values[key] = _get(body, name, kind, getattr(defaults, key))
        seed = _get(body, "seed", int, None)
        values["seed"] = None if seed is None or seed < 0 else seed
        try:
            params = SamplingParams(**values)
        except UsageError as e:
            raise HTTPError(400, str(e)) from None
        keep = _get(body, "n_keep", int, None)
        if keep is not None and keep < 0:
            keep = None  # llama.cpp's -1 (keep all): no shift, stop when full
        n_ctx = self.scheduler.n_ctx_slot  # a request's context: its slot's share of -c
        if len(tokens) > n_ctx:
            raise HTTPError(400, f"the prompt has {len(tokens)} tokens, more than the context of {n_ctx}",
                            "exceed_context_size_error")
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return GenerationRequest(chat, tokens, params, max_tokens, stops + [s for s in stop if s], keep,
                                 stream=_get(body, "stream", bool, False), include_usage=include_usage)

    # ---- running one --------------------------------------------------------------------------
    def run(self, request: GenerationRequest, gone: Callable[[], bool],
            consume: Callable[[GenerationHandle, Callable[[], None]], None]) -> GenerationHandle | None:
        """Queue the generation for a slot and hand it to `consume(handle, left)` (which reads
        it, waiting while it waits for a slot; it calls `left()` when it finds the client
        gone). None if the client left before it got a slot. The slot is free again when
        this returns."""
        handle: GenerationHandle | None = None
        noticed: list[int] = []

        def left() -> None:
            if handle is not None and not noticed:
                noticed.append(handle.timings().generated_tokens)
                handle.cancel()

        def on_piece(_text: str) -> None:  # on the engine's thread, right after each token's text
            if gone():
                left()

        if self._closing.is_set():
            raise HTTPError(503, "the server is shutting down", "server_busy")
        try:
            handle = self.scheduler.submit(request.tokens, request.params, max_tokens=request.max_tokens,
                                           stop=request.stop, keep=request.keep, on_piece=on_piece)
        except QueueFull as e:
            raise HTTPError(503, f"the server is busy: {e}; try again", "server_busy") from None
        except UsageError as e:
            raise HTTPError(400, str(e)) from None
        try:
            consume(handle, left)
        finally:
            if not handle.done:
                left()  # the reader failed: never leave a slot running for no one
            handle.wait()
            if handle.started:
                self._record(handle, noticed)
        return handle if handle.started else None

    def _record(self, handle: GenerationHandle, noticed: list[int]) -> None:
        result = handle.result
        last = {
            "stop_reason": result.stop_reason.value if result.stop_reason else None,
            "prompt_tokens": result.timings.prompt_tokens,
            "generated_tokens": result.timings.generated_tokens,
            "client_left": bool(noticed),
            "tokens_after_client_left": result.timings.generated_tokens - noticed[0] if noticed else None,
        }
        with self._stats_lock:
            self.stats.generations += 1
            self.stats.disconnects += bool(noticed)
            self.stats.last = last

    def health(self) -> dict:
        with self._stats_lock:
            stats = {"generations": self.stats.generations, "client_disconnects": self.stats.disconnects,
                     "last_generation": dict(self.stats.last) or None}
        scheduler = self.scheduler
        slots = scheduler.slot_report()
        busy = sum(s["is_processing"] for s in slots)
        return {"status": "ok", "model": self.model_id, "busy": busy > 0, "queued": scheduler.waiting,
                "most_queued": scheduler.most_waiting, "slots_idle": len(slots) - busy, "slots_processing": busy,
                "most_parallel": scheduler.most_in_step,
                "tokens_per_second": round(scheduler.tokens_per_second(), 2), **stats}

    def slots(self) -> list[dict]:
        """llama.cpp's /slots: each slot's state, cached positions and request."""
        return self.scheduler.slot_report()

    def models(self) -> dict:
        info = self.model.info
        return {"object": "list", "data": [{
            "id": self.model_id, "object": "model", "created": self.created, "owned_by": "codeup",
            "meta": {"n_ctx": self.scheduler.n_ctx_slot, "n_ctx_train": info.n_ctx_train, "n_vocab": info.n_vocab,
                     "file_type": info.file_type, "format": info.format_name},
        }]}

    def props(self) -> dict:
        return {"default_generation_settings": {"n_ctx": self.scheduler.n_ctx_slot, "model": self.model_id},
                "total_slots": len(self.scheduler.slots), "chat_template": self.template.name,
                "model_path": str(self.model.info.path)}

    def tokenize(self, body: dict) -> dict:
        content = body.get("content")
        if not isinstance(content, str):
            raise HTTPError(400, "'content' must be a string")
        add_special = _get(body, "add_special", bool, False)
        parse_special = _get(body, "parse_special", bool, True)
        tokenizer = self.model.tokenizer
        tokens = tokenizer.encode(content, add_bos=tokenizer.add_bos and add_special, parse_special=parse_special)
        return {"tokens": [int(t) for t in tokens]}

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), self.api_key.encode())

    def close(self, wait: float = 5.0) -> None:
        """Refuse new generations and stop the running ones (waiting for them: the model may
        be closed next, and must not be in use)."""
        self._closing.set()
        self.scheduler.close(wait)


def _get(body: dict, name: str, kind: type, default: Any) -> Any:
    """A field of the request, checked: int, float (an int is fine), or bool."""
    value = body.get(name)
    if value is None:
        return default
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    names = {float: "a number", int: "a whole number", bool: "true or false"}
    raise HTTPError(400, f"'{name}' must be {names[kind]}, got {json.dumps(value)[:40]}")


def _content(message: dict, index: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise HTTPError(400, f"messages[{index}]: only text content is supported")
            parts.append(part["text"])
        return "".join(parts)
    if content is None:
        return ""
    raise HTTPError(400, f"messages[{index}].content must be a string")


def _conversation(messages: list) -> tuple[str | None, list[Turn], str]:
    """(system text or None for the template's, earlier turns, the last user message)."""
    system: list[str] = []
    turns: list[Turn] = []
    pending: list[str] = []  # user messages not answered yet
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise HTTPError(400, f"messages[{i}] must be an object")
        role = message.get("role")
        text = _content(message, i)
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            pending.append(text)
        elif role == "assistant":
            if not pending:
                raise HTTPError(400, f"messages[{i}]: an assistant message must follow a user message")
            turns.append(Turn("\n\n".join(pending), None, text))
            pending = []
        else:
            raise HTTPError(400, f"messages[{i}]: unknown role {json.dumps(role)[:40]}")
    if not pending:
        raise HTTPError(400, "the last message must be the user's")
    return ("\n\n".join(system) if system else None), turns, "\n\n".join(pending)


def _finish_reason(reason: StopReason | None) -> str:
    return "length" if reason in (StopReason.LIMIT, StopReason.CONTEXT_FULL) else "stop"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "codeup-serve"
    timeout = 120  # seconds an idle connection, or a write to a client that stopped reading, may block

    @property
    def app(self) -> CodeupServer:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        if self.app.log is not None:
            self.app.log(f"{self.address_string()} {format % args}")

    # ---- plumbing ------------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, error: HTTPError) -> None:
        self._send_json(error.status, {"error": {"message": error.message, "type": error.kind, "code": error.status}})

    def _body(self) -> dict:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HTTPError(411, "send the request body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise HTTPError(413, f"the request body is over {MAX_BODY >> 20} MiB")
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        return body

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes_get = {"/health": self.app.health, "/v1/health": self.app.health, "/v1/models": self.app.models,
                      "/models": self.app.models, "/props": self.app.props, "/slots": self.app.slots}
        routes_post = {"/tokenize": self._tokenize, "/v1/completions": self._completions,
                       "/completions": self._completions, "/v1/chat/completions": self._chat,
                       "/chat/completions": self._chat}
        try:
            if path not in routes_get and path not in routes_post:
                raise HTTPError(404, f"no such endpoint: {path}", "not_found_error")
            if path not in ("/health", "/v1/health") and not self.app.authorized(self.headers.get("Authorization")):
                raise HTTPError(401, "invalid or missing API key (send Authorization: Bearer KEY)",
                                "authentication_error")
            if method == "GET":
                if path not in routes_get:
                    raise HTTPError(405, f"use POST for {path}")
                self._send_json(200, routes_get[path]())
            else:
                if path not in routes_post:
                    raise HTTPError(405, f"use GET for {path}")
                routes_post[path](self._body())
        except HTTPError as e:
            self._send_error(e)
        except CodeupError as e:
            self._send_error(HTTPError(400, str(e)))
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; nobody to answer
        except Exception as e:  # noqa: BLE001 - one line to the client and the log, the server stays up
            if self.app.log is not None:
                self.app.log(f"internal error on {path}: {type(e).__name__}: {e}")
            self.close_connection = True
            try:
                self._send_error(HTTPError(500, f"internal error: {type(e).__name__}: {e}", "server_error"))
            except OSError:
                pass

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def _gone(self) -> bool:
        return client_gone(self.connection)

    # ---- endpoints ---------------------------------------------------------------------------
    def _tokenize(self, body: dict) -> None:
        self._send_json(200, self.app.tokenize(body))

    def _completions(self, body: dict) -> None:
        self._generate(self.app.completion_request(body))

    def _chat(self, body: dict) -> None:
        self._generate(self.app.chat_request(body))

    def _generate(self, request: GenerationRequest) -> None:
        ident = ("chatcmpl-" if request.chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        consume = self._stream if request.stream else self._whole
        handle = self.app.run(request, self._gone, lambda h, left: consume(h, left, request, ident, created))
        if handle is None:
            self.close_connection = True  # the client left while it waited

    def _envelope(self, request: GenerationRequest, ident: str, created: int, chunk: bool) -> dict:
        kind = "chat.completion" if request.chat else "text_completion"
        if request.chat and chunk:
            kind += ".chunk"
        return {"id": ident, "object": kind, "created": created, "model": self.app.model_id}

    def _choice(self, request: GenerationRequest, text: str | None, finish: str | None, chunk: bool,
                first: bool = False) -> dict:
        if not request.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        if chunk:
            delta: dict = {} if text is None else {"content": text}
            if first:
                delta["role"] = "assistant"
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "message": {"role": "assistant", "content": text or ""}, "logprobs": None,
                "finish_reason": finish}

    @staticmethod
    def _usage(handle: GenerationHandle) -> dict:
        t = handle.result.timings
        return {"prompt_tokens": t.prompt_tokens, "completion_tokens": t.generated_tokens,
                "total_tokens": t.prompt_tokens + t.generated_tokens}

    @staticmethod
    def _timings(handle: GenerationHandle) -> dict:
        """llama.cpp's `timings` (cache_n: prompt tokens reused from the prompt cache)."""
        t = handle.result.timings
        return {"cache_n": t.prompt_tokens - t.prompt_evaluated, "prompt_n": t.prompt_evaluated,
                "prompt_ms": t.prompt_seconds * 1000, "predicted_n": t.generated_tokens,
                "predicted_ms": t.generation_seconds * 1000,
                "predicted_per_second": t.generation_tokens_per_second}

    def _whole(self, handle: GenerationHandle, left, request: GenerationRequest, ident: str, created: int) -> None:
        while not handle.wait(POLL_SECONDS):
            if self._gone():
                left()
        handle.wait()
        result = handle.result
        if result.stop_reason is StopReason.CANCELLED:
            self.close_connection = True
            return
        if result.error is not None:
            raise HTTPError(500, f"the generation failed: {type(result.error).__name__}: {result.error}",
                            "server_error")
        answer = self._envelope(request, ident, created, chunk=False)
        answer["choices"] = [self._choice(request, result.text, _finish_reason(result.stop_reason), chunk=False)]
        answer["usage"] = self._usage(handle)
        answer["timings"] = self._timings(handle)
        self._send_json(200, answer)

    def _stream(self, handle: GenerationHandle, left, request: GenerationRequest, ident: str, created: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = self._envelope(request, ident, created, chunk=True)

        def event(payload: Any) -> bytes:
            return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"

        def send(data: bytes) -> bool:
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                return True
            except OSError:  # the client went away (or stopped reading for `timeout` s)
                self.close_connection = True
                left()
                return False

        first = request.chat
        if first and not send(event(dict(base, choices=[self._choice(request, "", None, True, first=True)]))):
            return
        quiet_since = time.monotonic()
        while True:
            piece = handle.next_piece(timeout=POLL_SECONDS)
            if piece is None:
                break
            if piece:
                if not send(event(dict(base, choices=[self._choice(request, piece, None, True)]))):
                    return
                quiet_since = time.monotonic()
            elif self._gone():
                self.close_connection = True
                left()
                return
            elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                if not send(b": keep-alive\n\n"):
                    return
                quiet_since = time.monotonic()
        result = handle.result
        if result.stop_reason is StopReason.CANCELLED:
            self.close_connection = True  # the client left, or the server is stopping
            return
        if result.error is not None:
            message = f"the generation failed: {type(result.error).__name__}: {result.error}"
            send(event({"error": {"message": message, "type": "server_error", "code": 500}}))
        else:
            final = dict(base, choices=[self._choice(request, None if request.chat else "",
                                                     _finish_reason(result.stop_reason), True)])
            final["timings"] = self._timings(handle)
            if not send(event(final)):
                return
            if request.include_usage and not send(event(dict(base, choices=[], usage=self._usage(handle)))):
                return
            if not send(event(b"[DONE]")):
                return
        send(b"")  # the last chunk: the body is complete


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, app: CodeupServer | None, family: int) -> None:
        self.address_family = family
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if self.app is not None and self.app.log is not None and not isinstance(error, (ConnectionError, TimeoutError)):
            self.app.log(f"{client_address[0]}: {type(error).__name__}: {error}")


def make_http_server(app: CodeupServer | None, host: str = "127.0.0.1", port: int = 8080) -> _HTTPServer:
    """Bind (port 0: a free one; see `.server_address`); `serve_forever()` runs it. `app` may
    be set later (`.app`), before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return _HTTPServer((host, port), app, family)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
