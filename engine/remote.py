"""A model behind an OpenAI-compatible HTTP server (llama.cpp's server, `codeup serve`, vLLM,
OpenAI itself) used like the local engine: `RemoteClient.start` returns a handle with the
same interface as `engine.generation.GenerationHandle` (iterate it, `cancel()`, `timings()`):
it is a `TextGenerator` (engine/generation.py), as the local `Generator` is.

    client = RemoteClient("http://127.0.0.1:8080", api_key=api_key_from_env())
    info = client.probe()                       # the model's name and context size
    handle = client.start(prompt, SamplingParams(temperature=0), max_tokens=200, stop=[...])
    for piece in handle: ...

Plain standard library (http.client, one connection per request, explicit timeouts). The
rendered prompt goes to `/v1/completions` with `stream: true` and the answer is read as
server-sent events, line by line; a server without that endpoint (404) gets the prompt as
one user message on `/v1/chat/completions` instead. The sampling settings go in the
standard fields, plus llama.cpp's own (top_k, min_p, repeat_penalty, ...) until a server
refuses them (400): the request is then sent again without them, and they are not sent
again. Stop strings are sent and also applied here (a server may ignore them). `cancel()`
shuts the socket down at once; the server sees the stream close.

Token counts come from llama.cpp's `/tokenize` where the server has it (`codeup serve`
does); otherwise they are estimated (about 4 characters a token), and `estimated` says so.
The context size is the server's where it says it (llama.cpp's `meta.n_ctx` and `/props`,
vLLM's `max_model_len`, `context_length`), and the counts of an answer its `usage`.

The model: the one named (`model=`, `--remote-model`), which must be among those the server
lists when it lists any; else the first it lists. `models` holds the list (the TUI's F2).
When the conversation is given as `messages` (system, user and assistant turns, the files
inside the user's message), the chat fallback sends them as they are.

Proxies: $HTTPS_PROXY / $HTTP_PROXY (or the lower-case names) and $NO_PROXY are honoured as
curl and urllib do: an https:// server through the proxy's CONNECT tunnel, an http:// one
with the full URL as the request target; `user:password@` in the proxy URL is sent as Basic
proxy authorization. A server on this machine (localhost, 127.0.0.0/8, ::1) is never reached
through a proxy: the proxy's loopback is not this one.

Every failure (no such host, refused connection, a timeout, an HTTP error answer, a
malformed or truncated event stream) is a `RemoteError`: one line. A generation that fails
midway keeps the text it had (`result.text`) and finishes with stop reason ERROR.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import CodeupError, UsageError, printable
from .generation import GenerationHandle, Prompt, PromptTokens, StopReason, StopStringFilter
from .settings import SAMPLING_SETTINGS, extra_request_fields
from .settings import request_fields as setting_fields

API_KEY_ENVS = ("CODEUP_API_KEY", "OPENAI_API_KEY")
BASE_URL_ENV = "OPENAI_BASE_URL"
"""The server used when none is given (and no model file either), as OpenAI's own clients do."""
"""Where the API key is read from, in this order (a key on the command line would show in `ps`)."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a connection (and for the answer to a small request)."""
READ_TIMEOUT = 300.0
"""Seconds a stream may stay silent: a CPU server can take minutes over a long prompt."""
ASSUMED_N_CTX = 4096
"""The context size used when the server does not say (shown as an estimate)."""
CHARS_PER_TOKEN = 4
"""The estimate of a token count when the server cannot tokenize."""
FINISH_TIMEOUT = 5.0
"""Seconds to wait for the end of a stream (usage, [DONE]) once the answer has finished."""
MAX_STOP_STRINGS = 4  # OpenAI's limit on `stop`
MAX_LINE = 1 << 20  # one event line longer than this is not a sane server
MAX_BODY = 16 << 20
# llama.cpp's fields, not OpenAI's: sent until a server refuses them.
EXTRA_FIELDS = (*extra_request_fields(), "n_keep", "cache_prompt", "parse_special", "stream_options")


class RemoteError(CodeupError):
    """The server could not be reached, or answered with an error or nonsense (one line)."""


def api_key_from_env(environ: os._Environ | dict | None = None) -> str | None:
    """The API key from $CODEUP_API_KEY, else $OPENAI_API_KEY; None when neither is set."""
    environ = os.environ if environ is None else environ
    for name in API_KEY_ENVS:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def base_url_from_env(environ: os._Environ | dict | None = None) -> str | None:
    """$OPENAI_BASE_URL, or None when it is not set."""
    environ = os.environ if environ is None else environ
    return environ.get(BASE_URL_ENV, "").strip() or None


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it is, and its Basic credentials (None without)."""

    host: str
    port: int
    authorization: str | None = None

    @classmethod
    def for_url(cls, scheme: str, host: str, environ: os._Environ | dict | None = None) -> "Proxy | None":
        """The proxy $HTTPS_PROXY / $HTTP_PROXY name for a `scheme` server at `host`, unless
        $NO_PROXY excludes it; UsageError for a proxy URL that cannot be used."""
        environ = os.environ if environ is None else environ
        proxies: dict[str, str] = {}
        for name, value in environ.items():  # urllib's rules: lower case wins, REQUEST_METHOD means CGI
            lower = name.lower()
            if value and lower.endswith("_proxy"):
                if name == "HTTP_PROXY" and "REQUEST_METHOD" in environ:
                    continue
                if lower == name or lower[:-6] not in proxies:
                    proxies[lower[:-6]] = value
        url = proxies.get(scheme)
        if not url:
            return None
        if urllib.request.proxy_bypass_environment(host, proxies) or _is_loopback_name(host):
            return None  # a proxy's own loopback is not this machine's: never proxied
        text = url if "://" in url else "http://" + url
        try:
            parts = urllib.parse.urlsplit(text)
            port = parts.port
        except ValueError as e:
            raise UsageError(f"${scheme.upper()}_PROXY {printable(url)!r} is not a URL: {e}") from None
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"${scheme.upper()}_PROXY {printable(url)!r}: give an http:// proxy URL "
                             "(a proxy reached over TLS is not supported)")
        authorization = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return cls(parts.hostname, port or 80, authorization)


def _is_loopback_name(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """Where the server is: `http://host:port`, optionally with a path prefix (a trailing
    `/v1` is dropped: the paths below add it)."""

    scheme: str
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        try:
            parts = urllib.parse.urlsplit(text)
            port = parts.port
        except ValueError as e:
            raise UsageError(f"endpoint {printable(url)!r} is not a URL: {e}") from None
        if parts.scheme not in ("http", "https"):
            raise UsageError(f"endpoint {printable(url)!r}: use an http:// or https:// URL")
        if not parts.hostname:
            raise UsageError(f"endpoint {printable(url)!r} has no host name")
        if parts.query or parts.fragment:
            raise UsageError(f"endpoint {printable(url)!r}: give the server's base URL, without ? or #")
        prefix = parts.path.rstrip("/")
        if prefix.endswith("/v1"):
            prefix = prefix[:-3]
        return cls(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), prefix)

    @property
    def display(self) -> str:
        """host:port, for a status line."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.display}{self.prefix}"

    def connection(self, timeout: float, proxy: Proxy | None = None) -> http.client.HTTPConnection:
        """A connection to the server, or to the proxy (a CONNECT tunnel for https)."""
        if self.scheme == "https":
            if proxy is None:
                return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                                   context=ssl.create_default_context())
            conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout,
                                               context=ssl.create_default_context())
            conn.set_tunnel(self.host, self.port,
                            headers={"Proxy-Authorization": proxy.authorization} if proxy.authorization else None)
            return conn
        if proxy is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)

    def target(self, path: str, proxy: Proxy | None = None) -> str:
        """The request target: the path, or the full URL when an http proxy forwards it."""
        if proxy is not None and self.scheme == "http":
            return self.url + path
        return self.prefix + path


@dataclass(frozen=True)
class ServerInfo:
    """What `probe` learnt: the model to ask for and its context size."""

    model: str
    n_ctx: int
    n_ctx_known: bool  # False: ASSUMED_N_CTX (or the user's), the server did not say


def _one_line(text: str, limit: int = 200) -> str:
    text = printable(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_message(body: bytes) -> str:
    """The message of an error answer: OpenAI's {"error": {"message": ...}}, llama.cpp's, or the text."""
    text = body[:4096].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _one_line(text) or "no details"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("type")
            if message:
                return _one_line(str(message))
        elif isinstance(error, str):
            return _one_line(error)
        if isinstance(data.get("detail"), str):
            return _one_line(data["detail"])
    return _one_line(text)


class _StatusError(RemoteError):
    def __init__(self, status: int, message: str, line: str) -> None:
        self.status = status
        self.message = message
        super().__init__(line)


class _Cancelled(Exception):
    pass


class RemoteClient:
    """One OpenAI-compatible server. Thread-safe: every request has its own connection."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        n_ctx: int | None = None,
        model: str | None = None,
        environ: os._Environ | dict | None = None,
    ) -> None:
        self.endpoint = Endpoint.parse(url)
        self.proxy = Proxy.for_url(self.endpoint.scheme, self.endpoint.host, environ)
        self.api_key = api_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.n_ctx_override = n_ctx
        self.requested_model = model.strip() if model and model.strip() else None
        self.model = self.requested_model or "default"
        self.models: list[str] = []  # what the server lists (/v1/models), once probed
        self.info: ServerInfo | None = None
        # What this server turned out not to have (learnt once, then not asked again).
        self.has_completions = True
        self.has_tokenize = True
        self.takes_extra_fields = True

    # ---- plain requests -------------------------------------------------------------------
    def _headers(self, body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "codeup-remote"}
        if body:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.proxy is not None and self.proxy.authorization and self.endpoint.scheme == "http":
            headers["Proxy-Authorization"] = self.proxy.authorization
        return headers

    def _target(self, path: str) -> str:
        return self.endpoint.target(path, self.proxy)

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        conn = self.endpoint.connection(self.connect_timeout, self.proxy)
        try:
            conn.connect()
        except BaseException as e:
            conn.close()
            raise self._os_error(e, connecting=True) from None
        conn.sock.settimeout(timeout)
        return conn

    def _os_error(self, e: BaseException, connecting: bool = False, timeout: float | None = None) -> BaseException:
        where = self.endpoint.url
        if isinstance(e, RemoteError) or not isinstance(e, (OSError, http.client.HTTPException)):
            return e
        if isinstance(e, socket.gaierror):
            return RemoteError(f"cannot find the server {printable(self.endpoint.host)!r} ({where}): "
                               f"{e.strerror or e}")
        if isinstance(e, ConnectionRefusedError):
            if self.proxy is not None:
                return RemoteError(f"the proxy {self.proxy.host}:{self.proxy.port} (for {where}) refused the "
                                   "connection: check $HTTPS_PROXY / $HTTP_PROXY, or $NO_PROXY")
            return RemoteError(f"{where} refused the connection: is the server running?")
        if isinstance(e, OSError) and "Tunnel connection failed" in str(e):
            return RemoteError(f"the proxy {self.proxy.host if self.proxy else ''} would not open a tunnel to "
                               f"{where}: {_one_line(str(e))}")
        if isinstance(e, (socket.timeout, TimeoutError)):
            if connecting:
                return RemoteError(f"no connection to {where} within {self.connect_timeout:g} s "
                                   "(host unreachable or too slow)")
            return RemoteError(f"{where} sent nothing for {timeout or self.read_timeout:g} s (timed out); "
                               "try again")
        if isinstance(e, ssl.SSLError):
            return RemoteError(f"TLS error talking to {where}: {_one_line(str(e))}")
        if isinstance(e, (ConnectionError, http.client.HTTPException)):
            return RemoteError(f"{where} closed the connection unexpectedly; try again")
        return RemoteError(f"cannot talk to {where}: {_one_line(e.strerror or str(e))}")

    def _status_error(self, status: int, body: bytes, path: str) -> _StatusError:
        message = _error_message(body)
        if status in (401, 403):
            how = ("set the API key in $CODEUP_API_KEY (or $OPENAI_API_KEY)" if not self.api_key
                   else "check $CODEUP_API_KEY (or $OPENAI_API_KEY)")
            line = f"{self.endpoint.url} refused the request ({status}: {message}): {how}"
        elif status == 404:
            line = f"{self.endpoint.url} has no {path} (404: {message})"
        elif status >= 500:
            line = f"server error {status} from {self.endpoint.url}: {message}; try again"
        else:
            line = f"{self.endpoint.url} answered {status}: {message}"
        return _StatusError(status, message, line)

    def request(self, method: str, path: str, payload: Any = None, timeout: float | None = None) -> Any:
        """A small JSON request; the decoded JSON answer. RemoteError for anything else."""
        timeout = self.connect_timeout if timeout is None else timeout
        body = None if payload is None else json.dumps(payload).encode()
        conn = self._connect(timeout)
        full = self._target(path)
        try:
            conn.request(method, full, body=body, headers=self._headers(body is not None))
            response = conn.getresponse()
            data = response.read(MAX_BODY + 1)
        except BaseException as e:
            raise self._os_error(e, timeout=timeout) from None
        finally:
            conn.close()
        if response.status != 200:
            raise self._status_error(response.status, data, path)
        if len(data) > MAX_BODY:
            raise RemoteError(f"{self.endpoint.url}{path}: the answer is too large")
        try:
            return json.loads(data)
        except ValueError:
            start = _one_line(data[:80].decode("utf-8", "replace"))
            raise RemoteError(f"{self.endpoint.url}{path} did not answer JSON: {start!r}") from None

    # ---- what the server has -----------------------------------------------------------------
    def probe(self) -> ServerInfo:
        """Ask the server for its model (/v1/models) and context size (llama.cpp's /props, or
        the model's `meta`). RemoteError when it cannot be reached or refuses the key."""
        n_ctx = 0
        try:
            models = self.request("GET", "/v1/models")
        except _StatusError as e:
            if e.status != 404:
                raise
            models = {}
        entries = models.get("data") if isinstance(models, dict) else None
        entries = [e for e in entries if isinstance(e, dict) and e.get("id")] if isinstance(entries, list) else []
        self.models = [str(e["id"]) for e in entries]
        chosen = entries[0] if entries else None
        if self.requested_model is not None and entries:
            chosen = next((e for e in entries if str(e["id"]) == self.requested_model), None)
            if chosen is None:
                listed = ", ".join(printable(m) for m in self.models[:20])
                raise RemoteError(f"{self.endpoint.url} has no model {printable(self.requested_model)!r}; it has: "
                                  f"{listed}{' ...' if len(self.models) > 20 else ''}")
        if chosen is not None:
            self.model = str(chosen["id"])
            n_ctx = _context_size(chosen)
        if not n_ctx and (len(entries) <= 1 or chosen is entries[0]):  # /props: the server's (first) model
            try:
                props = self.request("GET", "/props")
                settings = props.get("default_generation_settings", {}) if isinstance(props, dict) else {}
                if isinstance(settings, dict) and isinstance(settings.get("n_ctx"), int):
                    n_ctx = settings["n_ctx"]
            except RemoteError:
                pass  # not llama.cpp: the size stays unknown
        known = n_ctx > 0
        if self.n_ctx_override:
            n_ctx = min(n_ctx, self.n_ctx_override) if known else self.n_ctx_override
        self.info = ServerInfo(self.model, n_ctx or ASSUMED_N_CTX, known)
        return self.info

    @property
    def n_ctx(self) -> int:
        """The context size (0 before `probe`)."""
        return self.info.n_ctx if self.info is not None else 0

    def tokenize_prompt(self, text: str, *, add_bos: bool | None = None, parse_special: bool = False) -> PromptTokens:
        """The server's tokens for `text` (its /tokenize), or an estimated count when it has
        none (`estimated`): engine/generation.py's interface."""
        if self.has_tokenize:
            try:
                # add_special: BOS where the model wants one (our add_bos None; True is taken as that)
                data = self.request("POST", "/tokenize", {
                    "content": text, "add_special": add_bos is not False, "parse_special": parse_special,
                }, timeout=self.read_timeout)  # a large file takes a while to tokenize
            except _StatusError as e:
                if e.status not in (404, 405, 501):
                    raise
                self.has_tokenize = False
            else:
                tokens = data.get("tokens") if isinstance(data, dict) else None
                if not isinstance(tokens, list):
                    raise RemoteError(f"{self.endpoint.url}/tokenize answered without a token list")
                # llama.cpp answers ids, or {"id": ..., "piece": ...} with with_pieces
                ids = [t.get("id") if isinstance(t, dict) else t for t in tokens]
                if all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
                    return PromptTokens.of_ids(text, ids)
                return PromptTokens(text, None, len(tokens))
        return PromptTokens(text, None, estimate_tokens(text, bool(add_bos)), estimated=True)

    def count_tokens(self, text: str, *, add_bos: bool | None = False, parse_special: bool = False) -> tuple[int, bool]:
        """(tokens, estimated): the server's count from /tokenize, or an estimate when it has none."""
        prompt = self.tokenize_prompt(text, add_bos=add_bos, parse_special=parse_special)
        return len(prompt), prompt.estimated

    # ---- generation ---------------------------------------------------------------------------
    def start(
        self,
        prompt: Prompt,
        params: Any = None,
        *,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        add_bos: bool | None = None,
        parse_special: bool = False,
        keep: int | None = None,
        on_piece: Callable[[str], None] | None = None,
        draft: Any = None,
        messages: Sequence[dict] | None = None,
    ) -> "RemoteGeneration":
        """Send the prompt and stream the answer in a background thread (see the module doc).
        A `PromptTokens` is sent as its text: the server was asked for its tokens already and
        is not asked again. `messages`: the same conversation as chat messages, for a server
        without completions. `draft` is the local engine's: a server drafts by its own settings."""
        if isinstance(prompt, PromptTokens):
            prompt = prompt.text
        elif not isinstance(prompt, str):
            raise UsageError("a server is sent the prompt as text, not token ids")
        if not prompt:
            raise UsageError("the prompt is empty")
        standard, extra = request_fields(params, max_tokens, stop, parse_special, keep)
        handle = RemoteGeneration(self, prompt, standard, extra, list(stop), on_piece, messages)
        if not self.has_tokenize:  # until the server's usage (if any) says; estimated like every count here
            handle._set_timings(prompt_tokens=estimate_tokens(prompt), prompt_evaluated=estimate_tokens(prompt))
        handle.thread = threading.Thread(target=handle._run, name="codeup-remote", daemon=True)
        handle.thread.start()
        return handle


def _context_size(entry: dict) -> int:
    """A /v1/models entry's context size, as the servers that say it write it; 0 if none."""
    meta = entry.get("meta")
    for holder, key in ((meta, "n_ctx"), (entry, "max_model_len"), (entry, "context_length"),
                        (entry, "context_window"), (meta, "n_ctx_train")):
        if isinstance(holder, dict):
            value = holder.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return 0


def estimate_tokens(text: str, add_bos: bool = False) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + (1 if add_bos else 0)


def request_fields(params: Any, max_tokens: int, stop: Sequence[str], parse_special: bool = False,
                   keep: int | None = None) -> tuple[dict, dict]:
    """The OpenAI fields and llama.cpp's extra ones for these settings (SamplingParams or None)."""
    values: dict[str, Any] = {"max_tokens": max_tokens}
    if params is not None:
        values.update((s.name, getattr(params, s.name)) for s in SAMPLING_SETTINGS)
    standard, extra = setting_fields(values)  # the names and their mapping: engine/settings.py
    standard["stream"] = True
    extra.update({"cache_prompt": True, "parse_special": parse_special, "stream_options": {"include_usage": True}})
    stops = [s for s in stop if s][:MAX_STOP_STRINGS]
    if stops:
        standard["stop"] = stops
    if keep is not None:
        extra["n_keep"] = int(keep)
    return standard, extra


class _Stream:
    """Server-sent events, read line by line from a response."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response

    def events(self):
        """Each event's data (str); ends at EOF."""
        data: list[str] = []
        while True:
            raw = self.response.readline(MAX_LINE + 1)
            if not raw:
                if data:  # an event not ended by a blank line: the stream was cut
                    raise RemoteError("the server's event stream ended in the middle of an event")
                return
            if len(raw) > MAX_LINE:
                raise RemoteError("the server sent an event line over 1 MiB: not a sane event stream")
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise RemoteError("the server sent an event stream that is not UTF-8 text") from None
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
                continue
            if line.startswith(":"):
                continue  # a comment (keep-alive)
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value[1:] if value.startswith(" ") else value)


class RemoteGeneration(GenerationHandle):
    """A generation on the server: the local handle's interface, fed from the stream."""

    def __init__(self, client: RemoteClient, prompt: str, standard: dict, extra: dict,
                 stop: list[str], on_piece, messages: Sequence[dict] | None = None) -> None:
        super().__init__(on_piece)
        self.client = client
        self.prompt = prompt
        self.messages = [dict(m) for m in messages] if messages else None
        self.standard = standard
        self.extra = extra
        self.stop = stop
        self._sock_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._streaming = False  # the answer has begun: a dropped connection cuts it short
        self._cache_known = False  # the server said how much of the prompt came from its cache
        self.endpoint_used = ""

    def cancel(self) -> None:
        """Stop now: the stream's socket is shut down, so a blocked read returns at once."""
        super().cancel()
        with self._sock_lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- the worker ---------------------------------------------------------------------
    def _run(self) -> None:
        self._stops = StopStringFilter(self.stop)
        try:
            reason = self._generate()
        except BaseException as e:  # reported through the handle; the thread never dies loudly
            self._emit(self._stops.flush())  # the partial answer is kept, all of it
            if self.cancelled:
                return self._finish(StopReason.CANCELLED)
            if self._streaming and isinstance(e, (ConnectionError, http.client.HTTPException)):
                e = RemoteError(f"{self.client.endpoint.url} closed the stream before the answer was complete "
                                "(the text so far is kept); try again")
            return self._finish(StopReason.ERROR, self.client._os_error(e))
        finally:
            self._close()
        self._finish(reason)

    def _close(self) -> None:
        with self._sock_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _open(self, chat: bool, with_extra: bool):
        client = self.client
        body = dict(self.standard, model=client.model)
        if with_extra:
            body.update(self.extra)
        if chat:
            path = "/v1/chat/completions"
            body["messages"] = self.messages or [{"role": "user", "content": self.prompt}]
            body.pop("parse_special", None)
        else:
            path = "/v1/completions"
            body["prompt"] = self.prompt
        conn = client._connect(client.read_timeout)
        with self._sock_lock:
            self._sock = conn.sock
        if self.cancelled:
            raise _Cancelled
        conn.request("POST", client._target(path), body=json.dumps(body).encode(),
                     headers=dict(client._headers(True), Accept="text/event-stream"))
        response = conn.getresponse()
        self.endpoint_used = path
        if response.status == 200:
            return response
        error = client._status_error(response.status, response.read(65536), path)
        self._close()
        raise error

    def _connect_stream(self):
        """The response to the first request the server takes: completions, else chat;
        with llama.cpp's fields, else without them."""
        client = self.client
        while True:
            chat = not client.has_completions
            extra = client.takes_extra_fields
            try:
                return self._open(chat, extra)
            except _StatusError as e:
                if not chat and e.status in (404, 405):
                    client.has_completions = False
                    continue
                if extra and e.status in (400, 422):
                    client.takes_extra_fields = False
                    continue
                raise

    def _generate(self):
        sent = time.perf_counter()
        response = self._connect_stream()
        if self.cancelled:
            raise _Cancelled
        content_type = response.getheader("Content-Type", "")
        if "text/event-stream" not in content_type:
            return self._whole_answer(response, sent)
        self._streaming = True
        first: float | None = None
        finish: str | None = None
        n = 0
        try:
            for text, reason in self._events(response):
                if text:
                    now = time.perf_counter()
                    if first is None:
                        first = now
                        self._set_timings(prompt_seconds=now - sent)
                    n += 1
                    shown, hit = self._stops.feed(text)
                    self._emit(shown)
                    self._set_timings(generated_tokens=max(n, self.timings().generated_tokens),
                                      generation_seconds=now - first)
                    if hit:
                        return StopReason.STOP_STRING
                if self.cancelled:
                    raise _Cancelled
                if reason and finish is None:
                    finish = reason
                    # only the usage and [DONE] are left: do not wait long for them
                    self._set_read_timeout(min(self.client.read_timeout, FINISH_TIMEOUT))
        except (OSError, http.client.HTTPException, RemoteError):
            if finish is None or self.cancelled:
                raise  # the answer is complete once its finish_reason came; the rest is bookkeeping
        if finish is None:
            raise RemoteError(f"{self.client.endpoint.url} closed the stream before the answer was complete "
                              "(the text so far is kept); try again")
        self._emit(self._stops.flush())
        return _stop_reason(finish)

    def _set_read_timeout(self, seconds: float) -> None:
        with self._sock_lock:
            if self._sock is not None:
                self._sock.settimeout(seconds)

    def _events(self, response):
        """(text, finish_reason) of each event, until [DONE] or the end of the stream."""
        for data in _Stream(response).events():
            if data.strip() == "[DONE]":
                break
            try:
                event = json.loads(data)
            except ValueError:
                raise RemoteError(f"the server sent a malformed event: {_one_line(data, 60)!r}") from None
            if not isinstance(event, dict):
                raise RemoteError(f"the server sent a malformed event: {_one_line(data, 60)!r}")
            if "error" in event:
                raise RemoteError(f"the server failed mid-answer: {_error_message(data.encode())}")
            self._note_usage(event)
            yield _choice(event)

    def _whole_answer(self, response, sent: float):
        """A server that ignored `stream`: one JSON answer."""
        data = response.read(MAX_BODY)
        try:
            event = json.loads(data)
        except ValueError:
            start = _one_line(data[:60].decode("utf-8", "replace"))
            raise RemoteError(f"the server's answer is not JSON: {start!r}") from None
        if not isinstance(event, dict):
            raise RemoteError("the server's answer is not a JSON object")
        text, reason = _choice(event, whole=True)
        self._note_usage(event)
        self._set_timings(prompt_seconds=time.perf_counter() - sent)
        shown, hit = self._stops.feed(text)
        self._emit(shown if hit else shown + self._stops.flush())
        return StopReason.STOP_STRING if hit else _stop_reason(reason)

    def _note_usage(self, event: dict) -> None:
        usage = event.get("usage")
        if isinstance(usage, dict):
            changes = {}
            if isinstance(usage.get("prompt_tokens"), int):
                changes["prompt_tokens"] = usage["prompt_tokens"]
                if not self._cache_known:  # without llama.cpp's timings: all of it, as far as we know
                    changes["prompt_evaluated"] = usage["prompt_tokens"]
            if isinstance(usage.get("completion_tokens"), int):
                changes["generated_tokens"] = usage["completion_tokens"]
            if changes:
                self._set_timings(**changes)
        timings = event.get("timings")  # llama.cpp's: how much of the prompt was evaluated
        if isinstance(timings, dict) and isinstance(timings.get("prompt_n"), int):
            cached = timings.get("cache_n") if isinstance(timings.get("cache_n"), int) else 0
            self._set_timings(prompt_tokens=timings["prompt_n"] + cached,
                              prompt_evaluated=timings["prompt_n"])
            self._cache_known = True



def _choice(event: dict, whole: bool = False) -> tuple[str, str | None]:
    choices = event.get("choices")
    if not isinstance(choices, list):
        if whole or "usage" not in event and "timings" not in event:
            raise RemoteError(f"the server sent an event without choices: {_one_line(json.dumps(event), 80)!r}")
        return "", None
    if not choices:
        return "", None  # the usage-only last chunk
    choice = choices[0]
    if not isinstance(choice, dict):
        raise RemoteError("the server sent a malformed choice")
    text = choice.get("text")
    if text is None:
        holder = choice.get("message" if whole else "delta") or choice.get("delta") or {}
        text = holder.get("content") if isinstance(holder, dict) else None
    if text is not None and not isinstance(text, str):
        raise RemoteError("the server sent a choice whose text is not a string")
    reason = choice.get("finish_reason")
    return text or "", reason if isinstance(reason, str) else None


def _stop_reason(finish: str | None) -> StopReason:
    return StopReason.LIMIT if finish == "length" else StopReason.EOS
