"""`codeup serve`: one loaded model behind an OpenAI-compatible HTTP API.

    GET  /health                 {"status": "ok", "busy", "queued", "slots_idle", "tokens_per_second", ...}
                                 (no key needed)
    GET  /slots                  llama.cpp's: each slot's state, n_past and prompt
    GET  /v1/models              the model, with a request's context size in `meta`
    GET  /props                  llama.cpp's: the context size, the slots, the chat template's name
    POST /tokenize               llama.cpp's: {"content", "add_special", "parse_special"} -> {"tokens"}
    POST /detokenize             llama.cpp's: {"tokens"} -> {"content"}
    POST /apply-template         llama.cpp's: {"messages"} -> {"prompt"}, the chat template applied
    POST /v1/completions         a prompt (text or token ids); `stream` for server-sent events
    POST /v1/chat/completions    messages, rendered with a template from templates/
    POST /completion             llama.cpp's own completion ({"content", "stop", ...}; `n_probs`)
    POST /infill                 llama.cpp's fill-in-the-middle: input_prefix, input_suffix,
                                 input_extra, prompt (400 when the vocabulary has no FIM tokens)

Standard library only (http.server.ThreadingHTTPServer): a thread per connection. With
`n_parallel` > 1 the engine generates for that many requests at once (engine/batching.py:
one batched forward pass per step, each request in its own slot of the KV cache, -c split
over the slots or shared by them); with 1, one generation at a time (generate.Generator,
with speculative drafting). The others wait their turn in a FIFO queue (503 when more than
`max_queue` wait). A client that goes away (closes its connection while waiting, while its
answer is computed or streamed) gives its place up: the generation is cancelled as soon as
the server notices, which it checks after every generated token and every 0.1 s, and its
slot is free at the next step. The KV cache is kept between requests (one per slot), and a
request takes the slot whose cache begins like its prompt, so a chat's next turn evaluates
only what is new.

Sampling fields: OpenAI's (temperature, top_p, max_tokens, stop, seed, frequency_penalty,
presence_penalty) and llama.cpp's (top_k, min_p, repeat_penalty, repeat_last_n, n_predict,
n_keep, parse_special); a field not given takes the engine's default (`codeup run`'s). Their
names, ranges and defaults are engine/settings.py's, shared with the command lines.
`max_tokens` absent: until the model stops, as llama.cpp's server does. Errors answer with
OpenAI's shape, {"error": {"message", "type", "code"}}.

Also implemented: `n` (answers one after the other, seed + i for the i-th when a seed is
given), `logprobs` / `top_logprobs` (OpenAI's shapes for chat and completions, llama.cpp's
`n_probs`: the log-softmax of the model's logits), `logit_bias` ({"token id": bias} or
llama.cpp's [[id or text, bias or false]]), `stream_options.include_usage`. Refused with a
400 that names the field, never ignored: `tools`, `tool_choice` (but "none"), `functions`,
`function_call`, `response_format` (but {"type": "text"}), `echo`, `best_of` > 1. A
completion's `suffix` is answered by fill-in-the-middle when the model has FIM tokens.

Browsers: a request that carries an `Origin` is refused (403) unless that origin was given
with --cors-origin, which also turns on CORS headers and OPTIONS preflights for it; with
none (the default) a web page cannot use, or read, a model served on this machine.

Hostile requests cost bounded work: a body over 16 MiB is a 413; JSON nested more than 64
deep, a prompt (or the text of a chat's messages) over n_ctx x 32 bytes, NaN or infinite
numbers and sampling numbers beyond +-1e6 are 400s, refused before anything is tokenized.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import http.server
import ipaddress
import json
import math
import select
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .batching import BatchScheduler, QueueFull
from .errors import CodeupError, UsageError
from .fim import find_fim_tokens, infill_tokens
from .generate import GenerationHandle, Generator, StopReason
from .model import Model
from .sampling import SamplingParams
from .settings import SettingError, request_values, sampling_values
from .speculative import DraftParams
from .chat_template import ChatTemplate
from .templates import PromptTemplate, Turn

MAX_BODY = 16 << 20  # bytes of a request body
POLL_SECONDS = 0.1  # how often a waiting or computing request looks for its client
KEEPALIVE_SECONDS = 10.0  # an SSE comment after this long without a token (a long prompt)
MAX_STOP_STRINGS = 16
BODY_SECONDS = 30.0  # a request body announced but not sent within this long: 408
HEADER_SECONDS = 30.0  # a request line and headers not complete within this long (slowloris, idle): 408
MAX_TOP_LOGPROBS = 20  # OpenAI's limit on top_logprobs
MAX_CHOICES = 16  # `n`
MAX_LOGIT_BIAS = 1024  # entries of `logit_bias`
MAX_JSON_DEPTH = 64  # nesting of arrays and objects in a request body; real ones use 4 or 5
# A prompt is refused by its size in bytes before it is tokenized (which costs ~1 s of CPU
# a MB): no tokenizer's tokens average anywhere near 32 bytes, so a text over n_ctx x 32
# bytes cannot fit the context whatever it holds.
PROMPT_BYTES_PER_TOKEN = 32
# Sampling numbers beyond this overflow the samplers' float32 arithmetic (a penalty of
# 1e308 becomes inf); no useful setting comes near it.


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


class EngineQueue:
    """One holder at a time; the others wait in arrival order."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._waiting: collections.deque = collections.deque()
        self._busy = False
        self.most_waiting = 0  # the longest the queue has been

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def acquire(self, gone: Callable[[], bool]) -> bool:
        """Wait for the turn; False if `gone()` said the client left first. HTTPError 503
        when the queue is full."""
        ticket = object()
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise HTTPError(503, f"the server is busy: {len(self._waiting)} requests are waiting; try again",
                                "server_busy")
            self._waiting.append(ticket)
            self.most_waiting = max(self.most_waiting, len(self._waiting) - (not self._busy))
            while self._busy or self._waiting[0] is not ticket:
                self._cond.wait(POLL_SECONDS)
                if gone():
                    self._waiting.remove(ticket)
                    self._cond.notify_all()
                    return False
            self._waiting.popleft()
            self._busy = True
            return True

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


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
    logprobs: int | None = None  # alternatives per token when log probabilities are asked for
    n: int = 1  # answers to give
    native: bool = False  # llama.cpp's /completion and /infill shapes, not OpenAI's

    def choice(self, index: int) -> "GenerationRequest":
        """The request for the `index`-th answer: another seed when one is given."""
        seed = self.params.seed
        if index == 0 or seed is None:
            return self
        return dataclasses.replace(self, params=dataclasses.replace(self.params, seed=(seed + index) % (1 << 63)))


@dataclass
class Stats:
    """What /health reports beyond ok: for clients, and for tests that a client leaving frees
    the engine (tokens generated after the server noticed it left)."""

    generations: int = 0
    disconnects: int = 0
    last: dict = field(default_factory=dict)


class _ClientWatch:
    """Cancels a generation once its client has left (checked on the engine's thread after
    each token's text, and when the reader fails), noting how many tokens it had by then."""

    def __init__(self, gone: Callable[[], bool]) -> None:
        self.gone = gone
        self.handle: GenerationHandle | None = None
        self.noticed: list[int] = []

    def left(self) -> None:
        if self.handle is not None and not self.noticed:
            self.noticed.append(self.handle.timings().generated_tokens)
            self.handle.cancel()

    def on_piece(self, _text: str) -> None:
        if self.gone():
            self.left()


class CodeupServer:
    """The engine side: the model, its batch scheduler (n_parallel slots generating together)
    or its generator (one at a time, one prompt cache for all requests) and queue, the chat
    template and the optional API key."""

    def __init__(
        self,
        model: Model,
        template: PromptTemplate,
        *,
        model_id: str | None = None,
        api_key: str | None = None,
        max_queue: int = 64,
        log: Callable[[str], None] | None = None,
        cors_origins: tuple[str, ...] = (),
        draft: DraftParams | None = None,
        n_parallel: int = 1,
        kv_unified: bool = False,
    ) -> None:
        self.model = model
        self.generator = Generator(model, draft=draft)  # with slots: its tokenizer only
        self.scheduler = (BatchScheduler(model, n_parallel, max_queue, unified=kv_unified, draft=draft)
                          if n_parallel > 1 else None)
        self.template = template
        self.model_id = model_id or model.info.path.name
        self.api_key = api_key or None
        self.queue = EngineQueue(max_queue)
        self.stats = Stats()
        self.created = int(time.time())
        self.log = log
        self._stats_lock = threading.Lock()
        self._running: GenerationHandle | None = None
        self._closing = threading.Event()
        self.cors_origins = tuple(o.rstrip("/") for o in cors_origins)
        self.fim = find_fim_tokens(model.tokenizer, getattr(model.file, "metadata", None))

    # ---- requests into generation requests --------------------------------------------------
    def completion_request(self, body: dict, native: bool = False) -> GenerationRequest:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]  # one prompt in a batch of one
        parse_special = _get(body, "parse_special", bool, True)
        if isinstance(prompt, str):
            if not prompt:
                raise HTTPError(400, "'prompt' is empty")
            self.check_prompt_bytes(_utf8_length(prompt), "the prompt")
            tokens = self.generator.tokenize(prompt, None, parse_special)
        elif isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):  # not bools
            self._check_prompt_tokens(len(prompt))
            tokens = [int(t) for t in prompt]
            bad = [t for t in tokens if not 0 <= t < self.model.info.n_vocab]
            if bad:
                raise HTTPError(400, f"token id {bad[0]} is outside the vocabulary of {self.model.info.n_vocab}")
        else:
            raise HTTPError(400, "'prompt' must be a non-empty string or list of token ids (one prompt)")
        if body.get("echo") not in (None, False):
            raise HTTPError(400, "'echo' is not supported by this server")
        suffix = body.get("suffix")
        if suffix not in (None, ""):  # OpenAI's insertion: the text between prompt and suffix, by FIM
            if not isinstance(suffix, str) or not isinstance(prompt, str):
                raise HTTPError(400, "'suffix' must be a string, with a text prompt")
            if self.fim is None:
                raise HTTPError(400, f"'suffix' needs a model with fill-in-the-middle tokens; {self.model_id} "
                                     "has none")
            self.check_prompt_bytes(_utf8_length(prompt) + _utf8_length(suffix), "the prompt and suffix")
            tokens = infill_tokens(self.model.tokenizer, self.fim, prompt, suffix, budget=self.model.n_ctx * 3 // 4)
        if _get(body, "best_of", int, 1) != 1:
            raise HTTPError(400, "'best_of' must be 1 on this server")
        name = "n_probs" if native else "logprobs"
        logprobs = _get(body, name, int, None)
        if logprobs is not None and not 0 <= logprobs <= MAX_TOP_LOGPROBS:
            raise HTTPError(400, f"'{name}' must be between 0 and {MAX_TOP_LOGPROBS}")
        if native and not logprobs:
            logprobs = None  # n_probs 0: none asked for
        return self._generation_request(body, tokens, [], chat=False, logprobs=logprobs, native=native)

    def infill_request(self, body: dict) -> GenerationRequest:
        """llama.cpp's /infill: the code around the cursor, the project's other files."""
        if self.fim is None:
            raise HTTPError(400, f"the model {self.model_id} has no fill-in-the-middle tokens in its vocabulary "
                            "(a code model's <|fim_prefix|>/<PRE>...): /infill needs one")
        texts = {}
        for name in ("input_prefix", "input_suffix", "prompt"):
            value = body.get(name, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise HTTPError(400, f"'{name}' must be a string")
            texts[name] = value
        extra = body.get("input_extra") or []
        if not isinstance(extra, list):
            raise HTTPError(400, "'input_extra' must be a list of {\"filename\", \"text\"}")
        chunks = []
        for i, chunk in enumerate(extra):
            if not (isinstance(chunk, dict) and isinstance(chunk.get("text", ""), str)
                    and isinstance(chunk.get("filename", ""), str)):
                raise HTTPError(400, f"input_extra[{i}] must be {{\"filename\": string, \"text\": string}}")
            chunks.append((chunk.get("filename") or "file", chunk.get("text", "")))
        # An editor sends whole files: only what could fit is tokenized (the code nearest the
        # cursor), so the work stays bounded without refusing a large file.
        limit = self.model.n_ctx * PROMPT_BYTES_PER_TOKEN
        texts["input_prefix"] = texts["input_prefix"][-limit:]
        texts["input_suffix"] = texts["input_suffix"][:limit]
        self.check_prompt_bytes(_utf8_length(texts["prompt"]), "the prompt")
        kept, left = [], limit
        for name, text in chunks:
            if left <= 0:
                break
            kept.append((name[:256], text[-left:]))
            left -= len(text)
        chunks = kept
        room = _get(body, "n_predict", int, None)
        room = self.model.n_ctx // 4 if room is None or room < 0 else min(room, self.model.n_ctx - 8)
        tokens = infill_tokens(self.model.tokenizer, self.fim, texts["input_prefix"], texts["input_suffix"],
                               texts["prompt"], chunks, budget=self.model.n_ctx - room)
        logprobs = _get(body, "n_probs", int, None)
        if logprobs is not None and not 0 <= logprobs <= MAX_TOP_LOGPROBS:
            raise HTTPError(400, f"'n_probs' must be between 0 and {MAX_TOP_LOGPROBS}")
        return self._generation_request(body, tokens, [], chat=False, logprobs=logprobs or None, native=True)

    def chat_request(self, body: dict) -> GenerationRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPError(400, "'messages' must be a non-empty list")
        self.check_prompt_bytes(_messages_utf8_length(messages), "the text of the messages")
        _refuse_tools(body)
        logprobs = None
        if _get(body, "logprobs", bool, False):
            logprobs = _get(body, "top_logprobs", int, 0)
            if not 0 <= logprobs <= MAX_TOP_LOGPROBS:
                raise HTTPError(400, f"'top_logprobs' must be between 0 and {MAX_TOP_LOGPROBS}")
        elif body.get("top_logprobs") is not None:
            raise HTTPError(400, "'top_logprobs' needs 'logprobs': true")
        template = self.template
        text = self.render_chat(messages)
        tokens = self.generator.tokenize(text, template.wants_bos(self.model.tokenizer.add_bos),
                                         template.parse_special)
        return self._generation_request(body, tokens, list(template.stop), chat=True, logprobs=logprobs)

    def render_chat(self, messages: list) -> str:
        """The prompt for chat `messages`, ending where the assistant's answer starts. A model's
        own (Jinja) chat template gets the messages as they are, as Hugging Face renders them."""
        system, turns, instruction = _conversation(messages)  # checks them
        if isinstance(self.template, ChatTemplate):
            plain = [{"role": "system" if m.get("role") == "developer" else m.get("role"), "content": _content(m, i)}
                     for i, m in enumerate(messages)]
            return self.template.render_messages(plain)
        return self.template.render_conversation(turns, instruction, system=system)

    def apply_template(self, body: dict) -> dict:
        """llama.cpp's POST /apply-template: {"messages": [...]} -> {"prompt": "..."}."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPError(400, "'messages' must be a non-empty list")
        self.check_prompt_bytes(_messages_utf8_length(messages), "the text of the messages")
        return {"prompt": self.render_chat(messages)}

    def _generation_request(self, body: dict, tokens: list[int], stops: list[str], chat: bool,
                            logprobs: int | None = None, native: bool = False) -> GenerationRequest:
        n = _get(body, "n", int, 1)
        if not 1 <= n <= MAX_CHOICES or (native and n != 1):
            raise HTTPError(400, f"'n' must be between 1 and {MAX_CHOICES}" if not native
                            else "'n' is not a field of /completion and /infill: use /v1/completions")
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        elif stop is None:
            stop = []
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > MAX_STOP_STRINGS:
            raise HTTPError(400, f"'stop' must be a string or a list of at most {MAX_STOP_STRINGS} strings")
        try:  # the sampling fields, max_tokens and seed: engine/settings.py's names and ranges
            values = request_values(body)
        except SettingError as e:
            raise HTTPError(400, str(e)) from None
        max_tokens = values.pop("max_tokens")
        if values["seed"] is not None and values["seed"] < 0:
            values["seed"] = None  # -1: a random seed (None: `n` answers do not count up from it)
        try:
            params = SamplingParams(**sampling_values(values), logit_bias=self._logit_bias(body.get("logit_bias")))
        except UsageError as e:
            raise HTTPError(400, str(e)) from None
        keep = _get(body, "n_keep", int, None)
        if keep is not None and keep < 0:
            keep = None  # llama.cpp's -1 (keep all): no shift, stop when full
        self._check_prompt_tokens(len(tokens))
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise HTTPError(400, "'stream_options' must be an object")
        include_usage = bool(options) and _get(options, "include_usage", bool, False)
        return GenerationRequest(chat, tokens, params, max_tokens, stops + [s for s in stop if s], keep,
                                 stream=_get(body, "stream", bool, False), include_usage=include_usage,
                                 logprobs=logprobs, n=n, native=native)

    def _logit_bias(self, bias: Any) -> tuple[tuple[int, float], ...]:
        """OpenAI's {"token id": bias} or llama.cpp's [[token id or text, bias or false]]
        (false: never; a text: each of its tokens)."""
        if bias is None:
            return ()
        if isinstance(bias, dict):
            pairs = list(bias.items())
        elif isinstance(bias, list) and all(isinstance(p, list) and len(p) == 2 for p in bias):
            pairs = bias
        else:
            raise HTTPError(400, "'logit_bias' must be an object {\"token id\": bias} or a list of [token, bias]")
        if len(pairs) > MAX_LOGIT_BIAS:
            raise HTTPError(400, f"'logit_bias' has more than {MAX_LOGIT_BIAS} entries")
        n_vocab = self.model.info.n_vocab
        out: list[tuple[int, float]] = []
        for key, value in pairs:
            if value is False:
                value = -math.inf
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not -100 <= value <= 100:
                raise HTTPError(400, f"'logit_bias': the bias of {json.dumps(key)[:40]} must be a number "
                                     "from -100 to 100 (or false: never)")
            if isinstance(key, str) and key.strip().lstrip("-").isdigit():
                ids = [int(key)]
            elif isinstance(key, int) and not isinstance(key, bool):
                ids = [key]
            elif isinstance(key, str) and isinstance(bias, list):
                ids = self.model.tokenizer.encode(key, add_bos=False, parse_special=False)
            else:
                raise HTTPError(400, f"'logit_bias': {json.dumps(key)[:40]} is not a token id")
            for token in ids:
                if not 0 <= token < n_vocab:
                    raise HTTPError(400, f"'logit_bias': token id {token} is outside the vocabulary of {n_vocab}")
                out.append((token, float(value)))
        return tuple(out)

    def check_prompt_bytes(self, n_bytes: int, what: str) -> None:
        """Refuse a prompt too large for the context before tokenizing it: tokenizing costs
        about a second of CPU a MB, outside the engine's queue, and would starve the others."""
        limit = self.model.n_ctx * PROMPT_BYTES_PER_TOKEN
        if n_bytes > limit:
            raise HTTPError(400, f"{what} ({n_bytes} bytes) is over the {limit} bytes this server accepts for its "
                                 f"context of {self.model.n_ctx} tokens ({PROMPT_BYTES_PER_TOKEN} bytes a token)",
                            "exceed_context_size_error")

    @property
    def n_ctx(self) -> int:
        """A request's context: the model's, or its slot's share of it."""
        return self.scheduler.n_ctx_slot if self.scheduler is not None else self.model.n_ctx

    def _check_prompt_tokens(self, n_tokens: int) -> None:
        if n_tokens > self.n_ctx:
            raise HTTPError(400, f"the prompt has {n_tokens} tokens, more than the context of {self.n_ctx}",
                            "exceed_context_size_error")

    # ---- running one --------------------------------------------------------------------------
    def run(self, request: GenerationRequest, gone: Callable[[], bool],
            consume: Callable[[GenerationHandle, Callable[[], None]], None]) -> GenerationHandle | None:
        """Wait for the engine, start the generation and hand it to `consume(handle, left)`
        (which reads it; it calls `left()` when it finds the client gone). None if the client
        left while waiting. The engine is free again when this returns."""
        if self.scheduler is not None:
            return self._run_in_slot(request, gone, consume)
        if not self.queue.acquire(gone):
            return None
        watch = _ClientWatch(gone)
        handle: GenerationHandle | None = None
        try:
            if self._closing.is_set():
                raise HTTPError(503, "the server is shutting down", "server_busy")
            try:
                handle = self.generator.start(request.tokens, request.params, max_tokens=request.max_tokens,
                                              stop=request.stop, keep=request.keep, on_piece=watch.on_piece,
                                              logprobs=request.logprobs)
            except UsageError as e:
                raise HTTPError(400, str(e)) from None
            self._running = watch.handle = handle
            try:
                consume(handle, watch.left)
            finally:
                if not handle.done:
                    watch.left()  # the reader failed: never leave the engine running for no one
                handle.wait()
                if handle.thread is not None:
                    handle.thread.join()  # the generator's own lock is free once its thread ends
            return handle
        finally:
            self._running = None
            if handle is not None:
                self._record(handle, watch.noticed)
            self.queue.release()

    def _run_in_slot(self, request: GenerationRequest, gone: Callable[[], bool],
                     consume: Callable[[GenerationHandle, Callable[[], None]], None]) -> GenerationHandle | None:
        """`run` on the batch scheduler: queued for a slot at once; `consume` reads the handle
        (waiting while it waits for a slot). None if the client left before it got one."""
        watch = _ClientWatch(gone)
        if self._closing.is_set():
            raise HTTPError(503, "the server is shutting down", "server_busy")
        try:
            handle = self.scheduler.submit(request.tokens, request.params, max_tokens=request.max_tokens,
                                           stop=request.stop, keep=request.keep, on_piece=watch.on_piece,
                                           logprobs=request.logprobs)
        except QueueFull as e:
            raise HTTPError(503, f"the server is busy: {e}; try again", "server_busy") from None
        except UsageError as e:
            raise HTTPError(400, str(e)) from None
        watch.handle = handle
        try:
            consume(handle, watch.left)
        finally:
            if not handle.done:
                watch.left()  # the reader failed: never leave a slot running for no one
            handle.wait()
            if handle.started:
                self._record(handle, watch.noticed)
        return handle if handle.started else None

    def _record(self, handle: GenerationHandle, noticed: list[int]) -> None:
        result = handle.result
        last = {
            "stop_reason": result.stop_reason.value if result.stop_reason else None,
            "prompt_tokens": result.timings.prompt_tokens,
            "generated_tokens": result.timings.generated_tokens,
            "drafted_tokens": result.timings.drafted_tokens,  # speculative decoding's guesses
            "accepted_tokens": result.timings.accepted_tokens,
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
        if scheduler is None:
            return {"status": "ok", "model": self.model_id, "busy": self.queue.busy, "queued": self.queue.waiting,
                    "most_queued": self.queue.most_waiting, "slots_idle": int(not self.queue.busy),
                    "slots_processing": int(self.queue.busy), **stats}
        slots = scheduler.slot_report()
        busy = sum(s["is_processing"] for s in slots)
        return {"status": "ok", "model": self.model_id, "busy": busy > 0, "queued": scheduler.waiting,
                "most_queued": scheduler.most_waiting, "slots_idle": len(slots) - busy, "slots_processing": busy,
                "most_parallel": scheduler.most_in_step,
                "tokens_per_second": round(scheduler.tokens_per_second(), 2), **stats}

    def slots(self) -> list[dict]:
        """llama.cpp's /slots: each slot's state, cached positions and request."""
        if self.scheduler is not None:
            return self.scheduler.slot_report()
        busy = self.queue.busy
        return [{"id": 0, "state": "generating" if busy else "idle", "is_processing": busy,
                 "n_ctx": self.model.n_ctx, "n_past": self.model.n_past}]

    def models(self) -> dict:
        info = self.model.info
        return {"object": "list", "data": [{
            "id": self.model_id, "object": "model", "created": self.created, "owned_by": "codeup",
            "meta": {"n_ctx": self.n_ctx, "n_ctx_train": info.n_ctx_train, "n_vocab": info.n_vocab,
                     "file_type": info.file_type, "format": info.format_name},
        }]}

    def props(self) -> dict:
        return {"default_generation_settings": {"n_ctx": self.n_ctx, "model": self.model_id},
                "total_slots": len(self.scheduler.slots) if self.scheduler else 1,
                "chat_template": self.template.name, "model_path": str(self.model.info.path)}

    def tokenize(self, body: dict) -> dict:
        content = body.get("content")
        if not isinstance(content, str):
            raise HTTPError(400, "'content' must be a string")
        add_special = _get(body, "add_special", bool, False)
        parse_special = _get(body, "parse_special", bool, True)
        tokenizer = self.model.tokenizer
        tokens = tokenizer.encode(content, add_bos=tokenizer.add_bos and add_special, parse_special=parse_special)
        return {"tokens": [int(t) for t in tokens]}

    def detokenize(self, body: dict) -> dict:
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
            raise HTTPError(400, "'tokens' must be a list of token ids")
        n_vocab = self.model.info.n_vocab
        bad = [t for t in tokens if not 0 <= t < n_vocab]
        if bad:
            raise HTTPError(400, f"token id {bad[0]} is outside the vocabulary of {n_vocab}")
        return {"content": self.model.tokenizer.decode(tokens)}

    def origin_allowed(self, origin: str) -> bool:
        """A browser's Origin header: allowed only when given with --cors-origin ("*": any)."""
        return "*" in self.cors_origins or origin.rstrip("/") in self.cors_origins

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer "):].strip().encode(), self.api_key.encode())

    def close(self, wait: float = 5.0) -> None:
        """Refuse new generations and stop the one running (waiting for it: the model may be
        closed next, and must not be in use)."""
        self._closing.set()
        if self.scheduler is not None:
            self.scheduler.close(wait)
        handle = self._running
        if handle is not None:
            handle.cancel()
            handle.wait(wait)
            if handle.thread is not None:
                handle.thread.join(wait)


def _utf8_length(text: str) -> int:
    if len(text) > MAX_BODY:
        return len(text)  # at least a byte a character: over any limit already, and not worth encoding
    return len(text.encode("utf-8", "surrogatepass"))  # JSON may hold lone surrogates


def _messages_utf8_length(messages: list) -> int:
    """The bytes of every message's text (string content or text parts), before any check of
    their shape: what the rendered prompt will hold, less the template's own."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += _utf8_length(content)
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    total += _utf8_length(text)
    return total


def _json_depth_over(value: Any, limit: int) -> bool:
    """True when arrays and objects nest deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (list, dict)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def _get(body: dict, name: str, kind: type, default: Any) -> Any:
    """A field of the request, checked: int, float (an int is fine, NaN and infinities are
    not), or bool."""
    value = body.get(name)
    if value is None:
        return default
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise HTTPError(400, f"'{name}' must be a finite number, got {value}")
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


def _refuse_tools(body: dict) -> None:
    """Tool calls and constrained output are not implemented: a 400 naming the field, not an
    answer that silently ignores them."""
    for name in ("tools", "functions"):
        if body.get(name) not in (None, []):
            raise HTTPError(400, f"'{name}' is not supported by this server (no tool calling); send the request "
                                 "without it", "invalid_request_error")
    for name in ("tool_choice", "function_call"):
        if body.get(name) not in (None, "none"):
            raise HTTPError(400, f"'{name}' is not supported by this server (no tool calling); leave it out "
                                 "or send \"none\"")
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        kind = response_format.get("type") if isinstance(response_format, dict) else response_format
        raise HTTPError(400, f"'response_format' {json.dumps(kind)[:40]} is not supported by this server "
                             "(no constrained output): only {\"type\": \"text\"}")


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

    def setup(self) -> None:
        super().setup()
        # Every answer is written whole (or an SSE event at a time): with Nagle's algorithm a
        # write behind an unacknowledged one waits for the peer's delayed ACK (~40 ms), which
        # made each request on a kept-alive connection cost that much more than a new one.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- plumbing ------------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self._cors_headers()
        # Headers and body in one send: one packet for a small answer.
        self._headers_buffer.extend((b"\r\n", data))
        self.flush_headers()

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
        try:
            self.connection.settimeout(BODY_SECONDS)
            raw = self.rfile.read(length) if length > 0 else b""
        except TimeoutError:
            self.close_connection = True
            raise HTTPError(408, f"the request body did not arrive within {BODY_SECONDS:g} s") from None
        finally:
            self.connection.settimeout(self.timeout)
        too_deep = HTTPError(400, f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} deep")
        try:
            body = json.loads(raw) if raw else None
        except RecursionError:  # the parser's own limit (~1000 deep)
            raise too_deep from None
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "the request body is not valid JSON") from None
        # Deep but under the parser's limit: refused too, before code (an error message's
        # json.dumps, a template) recurses into it. Counting brackets is cheap and bounds
        # the depth from above (brackets in strings count too), so few bodies are walked.
        if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _json_depth_over(body, MAX_JSON_DEPTH):
            raise too_deep
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        return body

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes_get = {"/health": self.app.health, "/v1/health": self.app.health, "/v1/models": self.app.models,
                      "/models": self.app.models, "/props": self.app.props, "/slots": self.app.slots}
        routes_post = {"/tokenize": self._tokenize, "/apply-template": self._apply_template,
                       "/v1/completions": self._completions,
                       "/completions": self._completions, "/v1/chat/completions": self._chat,
                       "/chat/completions": self._chat, "/detokenize": self._detokenize,
                       "/completion": self._native_completion, "/infill": self._infill}
        try:
            if path not in routes_get and path not in routes_post:
                raise HTTPError(404, f"no such endpoint: {path}", "not_found_error")
            origin = self.headers.get("Origin")
            if origin is not None and path not in ("/health", "/v1/health") and not self.app.origin_allowed(origin):
                raise HTTPError(403, "requests from web pages are refused (start the server with --cors-origin "
                                     "ORIGIN to allow one)", "permission_error")
            if method == "OPTIONS":
                self._preflight(path in routes_get)
                return
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

    def do_OPTIONS(self) -> None:  # noqa: N802 - a browser's CORS preflight
        self._route("OPTIONS")

    def _cors_headers(self) -> None:
        """The CORS answer headers, for an Origin given with --cors-origin (none otherwise)."""
        origin = self.headers.get("Origin")
        if origin is not None and self.app.origin_allowed(origin):
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

    def _preflight(self, get: bool) -> None:
        if self.headers.get("Origin") is None:
            raise HTTPError(405, "OPTIONS is only for a browser's CORS preflight (with an Origin)")
        self.send_response(204)
        self._cors_headers()
        self.send_header("Access-Control-Allow-Methods", "GET, OPTIONS" if get else "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def handle_one_request(self) -> None:
        # The request line and headers must arrive within HEADER_SECONDS in all (a per-read
        # timeout does not stop a client that sends a byte now and then); the server's
        # watchdog closes the connection otherwise. parse_request ends the watch.
        self.server.watch(self.connection)  # type: ignore[attr-defined]
        try:
            super().handle_one_request()
        finally:
            self.server.unwatch(self.connection)  # type: ignore[attr-defined]

    def parse_request(self) -> bool:
        try:
            return super().parse_request()
        finally:
            self.server.unwatch(self.connection)  # type: ignore[attr-defined]

    def _gone(self) -> bool:
        return client_gone(self.connection)

    # ---- endpoints ---------------------------------------------------------------------------
    def _tokenize(self, body: dict) -> None:
        self._send_json(200, self.app.tokenize(body))

    def _detokenize(self, body: dict) -> None:
        self._send_json(200, self.app.detokenize(body))

    def _apply_template(self, body: dict) -> None:
        self._send_json(200, self.app.apply_template(body))

    def _completions(self, body: dict) -> None:
        self._generate(self.app.completion_request(body))

    def _native_completion(self, body: dict) -> None:
        self._generate(self.app.completion_request(body, native=True))

    def _infill(self, body: dict) -> None:
        self._generate(self.app.infill_request(body))

    def _chat(self, body: dict) -> None:
        self._generate(self.app.chat_request(body))

    def _generate(self, request: GenerationRequest) -> None:
        """The `n` answers one after the other (each waits its turn for the engine), then the
        response: one JSON answer, or the end of the event stream."""
        ident = ("chatcmpl-" if request.chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        consume = self._stream if request.stream else self._whole
        self._stream_open = False
        answers: list[tuple[GenerationHandle, Any]] = []
        for index in range(request.n):
            one = request.choice(index)
            box: list[Any] = []
            try:
                handle = self.app.run(one, self._gone,
                                      lambda h, left: box.append(consume(h, left, one, index, ident, created)))
            except HTTPError as e:
                if not self._stream_open:
                    raise
                # a later answer of `n` could not start (a full queue): the stream is open, end it
                error = {"error": {"message": e.message, "type": e.kind, "code": e.status}}
                if self._send_chunk(self._event(error)):
                    self._send_chunk(b"")
                self.close_connection = True
                return
            if handle is None or not box or box[0] is None:
                self.close_connection = True  # the client left (or the stream failed and was ended)
                return
            answers.append((handle, box[0]))
        handles = [h for h, _ in answers]
        if request.stream:
            if request.include_usage and not request.native:
                base = self._envelope(request, ident, created, chunk=True)
                if not self._send_chunk(self._event(dict(base, choices=[], usage=self._usage(handles)))):
                    return
            if not request.native and not self._send_chunk(self._event(b"[DONE]")):
                return
            self._send_chunk(b"")  # the last chunk: the body is complete
        elif request.native:
            self._send_json(200, answers[0][1])
        else:
            answer = self._envelope(request, ident, created, chunk=False)
            answer["choices"] = [choice for _, choice in answers]
            answer["usage"] = self._usage(handles)
            answer["timings"] = self._timings(handles[-1])
            self._send_json(200, answer)

    def _envelope(self, request: GenerationRequest, ident: str, created: int, chunk: bool) -> dict:
        kind = "chat.completion" if request.chat else "text_completion"
        if request.chat and chunk:
            kind += ".chunk"
        return {"id": ident, "object": kind, "created": created, "model": self.app.model_id}

    def _choice(self, request: GenerationRequest, index: int, text: str | None, finish: str | None, chunk: bool,
                first: bool = False, records: list | None = None, offset: int = 0) -> dict:
        logprobs = None
        if request.logprobs is not None and (records or not chunk):
            logprobs = self._logprobs(request, records or [], offset)
        if not request.chat:
            return {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
        if chunk:
            delta: dict = {} if text is None else {"content": text}
            if first:
                delta["role"] = "assistant"
            return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {"index": index, "message": {"role": "assistant", "content": text or ""}, "logprobs": logprobs,
                "finish_reason": finish}

    # ---- log probabilities -------------------------------------------------------------------
    @staticmethod
    def _records(handle: GenerationHandle, start: int = 0) -> list:
        """The picked tokens' TokenLogprobs from `start` on: those of the tokens generated so
        far (not the end-of-generation token the sampler also picked)."""
        sampler = getattr(handle, "sampler", None)
        if sampler is None:
            return []
        return sampler.logprobs[start:len(handle.result.tokens)]

    def _piece(self, token: int) -> bytes:
        return self.app.model.tokenizer.token_to_piece(token)

    def _logprobs(self, request: GenerationRequest, records: list, offset: int) -> dict:
        """OpenAI's shapes: chat {"content": [...]}, completions {"tokens", "token_logprobs", ...}."""
        if request.chat:
            def entry(token: int, logprob: float) -> dict:
                piece = self._piece(token)
                return {"token": piece.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(piece)}
            return {"content": [dict(entry(r.token, r.logprob), top_logprobs=[entry(t, lp) for t, lp in r.top])
                                for r in records], "refusal": None}
        texts = [self._piece(r.token).decode("utf-8", "replace") for r in records]
        offsets = []
        for text in texts:
            offsets.append(offset)
            offset += len(text)
        return {"tokens": texts, "token_logprobs": [r.logprob for r in records],
                "top_logprobs": [{self._piece(t).decode("utf-8", "replace"): lp for t, lp in r.top} for r in records],
                "text_offset": offsets}

    def _native_probs(self, records: list) -> list:
        """llama.cpp's completion_probabilities."""
        def entry(token: int, logprob: float) -> dict:
            piece = self._piece(token)
            return {"id": token, "token": piece.decode("utf-8", "replace"), "bytes": list(piece), "logprob": logprob}
        return [dict(entry(r.token, r.logprob), top_logprobs=[entry(t, lp) for t, lp in r.top]) for r in records]

    # ---- answers -----------------------------------------------------------------------------
    @staticmethod
    def _usage(handles: list[GenerationHandle]) -> dict:
        prompt = handles[0].result.timings.prompt_tokens
        completion = sum(h.result.timings.generated_tokens for h in handles)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def _timings(handle: GenerationHandle) -> dict:
        """llama.cpp's `timings` (cache_n: prompt tokens reused from the prompt cache)."""
        t = handle.result.timings
        return {"cache_n": t.prompt_tokens - t.prompt_evaluated, "prompt_n": t.prompt_evaluated,
                "prompt_ms": t.prompt_seconds * 1000, "predicted_n": t.generated_tokens,
                "predicted_ms": t.generation_seconds * 1000,
                "predicted_per_second": t.generation_tokens_per_second,
                "draft_n": t.drafted_tokens, "draft_n_accepted": t.accepted_tokens}

    def _native_summary(self, request: GenerationRequest, handle: GenerationHandle, content: str,
                        records: list) -> dict:
        """llama.cpp's /completion answer (and the last event of its stream)."""
        result = handle.result
        t = result.timings
        stop_type = {StopReason.EOS: "eos", StopReason.STOP_STRING: "word", StopReason.LIMIT: "limit",
                     StopReason.CONTEXT_FULL: "limit"}.get(result.stop_reason, "none")
        summary = {"index": 0, "content": content, "id_slot": 0, "stop": True, "model": self.app.model_id,
                   "tokens_predicted": t.generated_tokens, "tokens_evaluated": t.prompt_tokens,
                   "tokens_cached": t.prompt_tokens - t.prompt_evaluated, "truncated": False,
                   "stop_type": stop_type, "stopping_word": "", "timings": self._timings(handle)}
        if request.logprobs is not None:
            summary["completion_probabilities"] = self._native_probs(records)
        return summary

    def _whole(self, handle: GenerationHandle, left, request: GenerationRequest, index: int, ident: str,
               created: int) -> Any:
        """The answer's choice (llama.cpp's summary when native); None if the client left."""
        while not handle.wait(POLL_SECONDS):
            if self._gone():
                left()
        handle.wait()
        result = handle.result
        if result.stop_reason is StopReason.CANCELLED:
            return None
        if result.error is not None:
            raise HTTPError(500, f"the generation failed: {type(result.error).__name__}: {result.error}",
                            "server_error")
        records = self._records(handle)
        if request.native:
            return self._native_summary(request, handle, result.text, records)
        return self._choice(request, index, result.text, _finish_reason(result.stop_reason), chunk=False,
                            records=records)

    @staticmethod
    def _event(payload: Any) -> bytes:
        return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"

    def _send_chunk(self, data: bytes, left: Callable[[], None] | None = None) -> bool:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            return True
        except OSError:  # the client went away (or stopped reading for `timeout` s)
            self.close_connection = True
            if left is not None:
                left()
            return False

    def _stream(self, handle: GenerationHandle, left, request: GenerationRequest, index: int, ident: str,
                created: int) -> bool | None:
        """One answer's events (the headers before the first); True when it ended well, None
        when the client left or it failed (the body is ended then)."""
        if not self._stream_open:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self._cors_headers()
            self.end_headers()
            self._stream_open = True
        base = self._envelope(request, ident, created, chunk=True)
        event = self._event

        def send(data: bytes) -> bool:
            return self._send_chunk(data, left)

        sent_records = 0
        sent_chars = 0

        def piece_event(piece: str) -> bytes:
            nonlocal sent_records, sent_chars
            records = self._records(handle, sent_records) if request.logprobs is not None else []
            sent_records += len(records)
            if request.native:
                payload: dict = {"index": index, "content": piece, "stop": False, "id_slot": 0}
                if records:
                    payload["completion_probabilities"] = self._native_probs(records)
                return event(payload)
            choice = self._choice(request, index, piece, None, True, records=records, offset=sent_chars)
            sent_chars += len(piece)
            return event(dict(base, choices=[choice]))

        first = request.chat
        if first and not send(event(dict(base, choices=[self._choice(request, index, "", None, True, first=True)]))):
            return None
        quiet_since = time.monotonic()
        while True:
            piece = handle.next_piece(timeout=POLL_SECONDS)
            if piece is None:
                break
            if piece:
                if not send(piece_event(piece)):
                    return None
                quiet_since = time.monotonic()
            elif self._gone():
                self.close_connection = True
                left()
                return None
            elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                if not send(b": keep-alive\n\n"):
                    return None
                quiet_since = time.monotonic()
        result = handle.result
        if result.stop_reason is StopReason.CANCELLED:
            self.close_connection = True  # the client left, or the server is stopping
            return None
        if result.error is not None:
            message = f"the generation failed: {type(result.error).__name__}: {result.error}"
            if send(event({"error": {"message": message, "type": "server_error", "code": 500}})):
                send(b"")
            return None
        records = self._records(handle, sent_records) if request.logprobs is not None else []
        if request.native:
            final = self._native_summary(request, handle, "", records)
            final["index"] = index
        else:
            final = dict(base, choices=[self._choice(request, index, None if request.chat else "",
                                                     _finish_reason(result.stop_reason), True, records=records,
                                                     offset=sent_chars)])
            final["timings"] = self._timings(handle)
        return True if send(event(final)) else None


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, app: CodeupServer | None, family: int) -> None:
        self.address_family = family
        self.app = app
        super().__init__(address, _Handler)
        self._header_deadlines: dict[socket.socket, float] = {}
        self._watch_lock = threading.Lock()
        self._watchdog: threading.Thread | None = None

    def watch(self, sock: socket.socket) -> None:
        with self._watch_lock:
            self._header_deadlines[sock] = time.monotonic() + HEADER_SECONDS
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._expire, name="codeup-serve-headers", daemon=True)
                self._watchdog.start()

    def unwatch(self, sock: socket.socket) -> None:
        with self._watch_lock:
            self._header_deadlines.pop(sock, None)

    def _expire(self) -> None:
        """Answer 408 and close the connections whose request has not come in time."""
        answer = json.dumps({"error": {"message": f"the request did not arrive within {HEADER_SECONDS:g} s",
                                       "type": "invalid_request_error", "code": 408}}).encode()
        response = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        while True:
            time.sleep(min(0.25, HEADER_SECONDS / 4))
            now = time.monotonic()
            with self._watch_lock:
                late = [sock for sock, deadline in self._header_deadlines.items() if deadline <= now]
                for sock in late:
                    del self._header_deadlines[sock]
            for sock in late:
                try:
                    sock.sendall(response)
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already gone

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
