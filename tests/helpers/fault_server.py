"""A small misbehaving OpenAI-compatible server on a loopback port, for the remote tests.

Each path answers with its queue of behaviours, one per request (the last one stays), or
with a well-behaved default: `/v1/models` lists "fault-model", `/props` and `/tokenize` are
missing (404: counts are estimates), `/v1/completions` streams "Hello world" properly.
Behaviours write raw HTTP (HTTP/1.0 style: the connection closes after each answer), so a
test can cut a stream, send garbage or stall exactly where it wants.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from typing import Any

Behaviour = Callable[["_Handler", dict], None]


def sse(payload: Any) -> bytes:
    return b"data: " + (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()) + b"\n\n"


def piece(text: str, finish: str | None = None) -> dict:
    return {"id": "cmpl-1", "object": "text_completion",
            "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def json_answer(status: int, payload: Any) -> Behaviour:
    def answer(handler: "_Handler", body: dict) -> None:
        data = json.dumps(payload).encode()
        handler.raw(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    "Connection: close\r\n\r\n".encode() + data)

    return answer


def error(status: int, message: str) -> Behaviour:
    return json_answer(status, {"error": {"message": message, "type": "test", "code": status}})


def stream(pieces: list[str], end: str = "done", finish: str = "stop", chat: bool = False) -> Behaviour:
    """Stream `pieces`, then: "done" (finish_reason and [DONE]), "drop" (close at once),
    "stall" (send nothing more until the server stops), or "garbage" (a broken event)."""

    def answer(handler: "_Handler", body: dict) -> None:
        handler.raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for text in pieces:
            if chat:
                handler.raw(sse({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}))
            else:
                handler.raw(sse(piece(text)))
        if end == "done":
            final = ({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]} if chat
                     else piece("", finish))
            handler.raw(sse(final) + sse("[DONE]"))
        elif end == "stall":
            handler.server.stopping.wait(60)  # type: ignore[attr-defined]
        elif end == "garbage":
            handler.raw(b"data: {\"choices\": [{\"text\": \"x\"\n\n")

    return answer


def endless(text: str, interval: float = 0.05) -> Behaviour:
    """Stream `text` forever, until the client closes the connection (recorded)."""

    def answer(handler: "_Handler", body: dict) -> None:
        handler.raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        while not handler.server.stopping.is_set():  # type: ignore[attr-defined]
            try:
                handler.wfile.write(sse(piece(text)))
                handler.wfile.flush()
            except OSError:
                handler.server.client_closed.set()  # type: ignore[attr-defined]
                return
            handler.server.stopping.wait(interval)  # type: ignore[attr-defined]

    return answer


def stall() -> Behaviour:
    """Accept the request and never answer."""

    def answer(handler: "_Handler", body: dict) -> None:
        handler.server.stopping.wait(60)  # type: ignore[attr-defined]

    return answer


def refuse_extra_fields(then: Behaviour) -> Behaviour:
    """OpenAI's own answer to llama.cpp's fields (400), else `then`."""

    def answer(handler: "_Handler", body: dict) -> None:
        if "top_k" in body or "min_p" in body:
            return error(400, "Unrecognized request argument supplied: top_k")(handler, body)
        then(handler, body)

    return answer


DEFAULTS: dict[str, Behaviour] = {
    "/v1/models": json_answer(200, {"object": "list", "data": [{"id": "fault-model", "object": "model"}]}),
    "/v1/completions": stream(["Hello", " world"]),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass

    def raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        server: FaultServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        server.requests.append((self.command, path, body, dict(self.headers)))
        behaviour = server.next_behaviour(path)
        try:
            behaviour(self, body)
        except OSError:
            self.server.client_closed.set()  # type: ignore[attr-defined]

    do_GET = do_POST = _answer


class FaultServer:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, dict]] = []
        self._queues: dict[str, list[Behaviour]] = {}
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.httpd.stopping = threading.Event()  # type: ignore[attr-defined]
        self.httpd.client_closed = threading.Event()  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def client_closed(self) -> threading.Event:
        return self.httpd.client_closed  # type: ignore[attr-defined]

    def on(self, path: str, *behaviours: Behaviour) -> None:
        """Answer the next requests to `path` with these, in order; the last one stays."""
        with self._lock:
            self._queues[path] = list(behaviours)

    def next_behaviour(self, path: str) -> Behaviour:
        with self._lock:
            queue = self._queues.get(path)
            if queue:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return DEFAULTS.get(path, error(404, f"no {path} here"))

    def bodies(self, path: str) -> list[dict]:
        return [body for _method, p, body, _headers in self.requests if p == path]

    def close(self) -> None:
        self.httpd.stopping.set()  # type: ignore[attr-defined]
        self.httpd.shutdown()
        self.httpd.server_close()
