"""The remote client's choices (engine/remote.py, codeup run, codeup-tui): the server's model
named with --remote-model / `remote_model` (F2 lists them), $OPENAI_BASE_URL, the config's
`endpoint`, the conversation sent as chat messages, the server's context size, and HTTP
proxies ($HTTP_PROXY, $HTTPS_PROXY through a CONNECT tunnel, $NO_PROXY) with a small proxy
on 127.0.0.1 written here. No model is loaded."""

from __future__ import annotations

import argparse
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.paths import REPO
from tests.helpers.fault_server import FaultServer, json_answer, stream

from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.remote import Proxy, RemoteClient, RemoteError
from codeup_tui.engine.sampling import SamplingParams

GREEDY = SamplingParams(temperature=0)
WAIT = 30  # seconds: only a bound on a hang
FAKE_HOST = "codeup-test.invalid"  # resolves nowhere: only the proxy knows where it is


@pytest.fixture
def server():
    s = FaultServer()
    yield s
    s.close()


def models(*entries: dict):
    return json_answer(200, {"object": "list", "data": list(entries)})


# ---- the model, the context size, messages ----------------------------------------------------

def test_the_named_model_is_used_and_its_context_size(server):
    server.on("/v1/models", models({"id": "small", "max_model_len": 2048}, {"id": "big", "max_model_len": 32768}))
    client = RemoteClient(server.url, model="big")
    info = client.probe()
    assert info.model == "big" and info.n_ctx == 32768 and info.n_ctx_known
    assert client.models == ["small", "big"]
    assert "".join(client.start("p", GREEDY)) == "Hello world"
    assert server.bodies("/v1/completions")[0]["model"] == "big"
    # without a name: the first listed
    first = RemoteClient(server.url)
    assert first.probe().model == "small" and first.probe().n_ctx == 2048


def test_a_model_the_server_does_not_have_is_one_line(server):
    server.on("/v1/models", models({"id": "small"}, {"id": "big"}))
    with pytest.raises(RemoteError, match=r"has no model 'huge'; it has: small, big"):
        RemoteClient(server.url, model="huge").probe()


def test_context_size_spellings(server):
    for entry, expected in (({"id": "m", "meta": {"n_ctx": 1234}}, 1234), ({"id": "m", "context_length": 8192}, 8192),
                            ({"id": "m"}, 4096)):
        server.on("/v1/models", models(entry))
        info = RemoteClient(server.url).probe()
        assert info.n_ctx == expected and info.n_ctx_known == (expected != 4096)


def test_the_chat_fallback_sends_the_conversation_as_messages(server):
    server.on("/v1/completions", json_answer(404, {"error": {"message": "no"}}))
    server.on("/v1/chat/completions", stream(["Sure"], chat=True))
    client = RemoteClient(server.url)
    client.probe()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi\n\nfile"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    handle = client.start("### rendered prompt", GREEDY, messages=messages)
    assert "".join(handle) == "Sure"
    assert server.bodies("/v1/chat/completions")[0]["messages"] == messages


def test_conversation_messages_carry_turns_and_files():
    from codeup_tui.engine.templates import load_template
    from codeup_tui.tui.prompt import PastTurn, build_input, conversation_messages

    template = load_template("alpaca")
    files = build_input([("a.py", "x = 1\n")])
    history = [PastTurn("Explain a.py", files, "It sets x.", (("a.py", "d"),))]
    messages = conversation_messages(template, history, "And now?", None)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == template.system_with_input
    assert messages[1]["content"].startswith("Explain a.py\n\n") and "x = 1" in messages[1]["content"]
    assert messages[2]["content"] == "It sets x." and messages[3] == {"role": "user", "content": "And now?"}


# ---- proxies --------------------------------------------------------------------------------------

class TinyProxy:
    """A forward proxy on 127.0.0.1: CONNECT tunnels and absolute-URL requests, every host
    sent to `target` (a port on 127.0.0.1). Records each request line and its
    Proxy-Authorization."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.seen: list[tuple[str, str | None]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            head, rest = head.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            auth = next((line.split(":", 1)[1].strip() for line in lines[1:]
                         if line.lower().startswith("proxy-authorization:")), None)
            self.seen.append((lines[0], auth))
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with upstream:
                if method == "CONNECT":
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:  # the absolute URL becomes a path for the server
                    path = "/" + target.split("://", 1)[1].split("/", 1)[1]
                    kept = [line for line in lines[1:] if not line.lower().startswith("proxy-")]
                    upstream.sendall("\r\n".join([f"{method} {path} {version}", *kept]).encode("latin-1")
                                     + b"\r\n\r\n" + rest)
                self._pipe(conn, upstream)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        def copy(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        other = threading.Thread(target=copy, args=(b, a), daemon=True)
        other.start()
        copy(a, b)
        other.join(WAIT)

    def close(self) -> None:
        self.listener.close()


def test_http_proxy_forwards_with_the_full_url_and_credentials(server):
    proxy = TinyProxy(server.httpd.server_address[1])
    try:
        environ = {"HTTP_PROXY": f"http://me:s%40cret@127.0.0.1:{proxy.port}"}
        client = RemoteClient(f"http://{FAKE_HOST}:8080", environ=environ)
        assert client.probe().model == "fault-model"
        assert "".join(client.start("p", GREEDY)) == "Hello world"
        lines = [line for line, _ in proxy.seen]
        assert f"GET http://{FAKE_HOST}:8080/v1/models HTTP/1.1" in lines
        assert f"POST http://{FAKE_HOST}:8080/v1/completions HTTP/1.1" in lines
        assert all(auth == "Basic bWU6c0BjcmV0" for _, auth in proxy.seen)  # me:s@cret
    finally:
        proxy.close()


def test_no_proxy_and_loopback_go_direct(server):
    environ = {"http_proxy": "http://127.0.0.1:9", "NO_PROXY": f"example.org,.invalid"}
    assert Proxy.for_url("http", FAKE_HOST, environ) is None
    assert Proxy.for_url("http", "example.org", environ) is None
    assert Proxy.for_url("http", "other.example", environ) == Proxy("127.0.0.1", 9)
    assert Proxy.for_url("https", "other.example", environ) is None  # https has its own variable
    # the server on this machine is reached directly, whatever the proxy settings
    client = RemoteClient(server.url, environ={"HTTP_PROXY": "http://127.0.0.1:9"})
    assert client.proxy is None and client.probe().model == "fault-model"
    with pytest.raises(UsageError, match="HTTPS_PROXY"):
        Proxy.for_url("https", "x.example", {"HTTPS_PROXY": "https://proxy.example:3128"})


def test_a_proxy_that_refuses_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = RemoteClient(f"http://{FAKE_HOST}", environ={"HTTP_PROXY": f"127.0.0.1:{port}"})
    with pytest.raises(RemoteError, match=r"the proxy 127\.0\.0\.1:\d+ .* refused the connection"):
        client.probe()


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """The fault server behind TLS, with a certificate for FAKE_HOST that this process trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                           "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={FAKE_HOST}",
                           "-addext", f"subjectAltName=DNS:{FAKE_HOST}"], capture_output=True, timeout=60)
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {made.stderr.decode()[:100]}")
    s = FaultServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    s.httpd.socket = context.wrap_socket(s.httpd.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    yield s
    s.close()


def test_https_goes_through_a_connect_tunnel(tls_server):
    proxy = TinyProxy(tls_server.httpd.server_address[1])
    try:
        client = RemoteClient(f"https://{FAKE_HOST}", environ={"HTTPS_PROXY": proxy.url})
        assert client.probe().model == "fault-model"
        assert "".join(client.start("p", GREEDY)) == "Hello world"
        assert proxy.seen and all(line.startswith(f"CONNECT {FAKE_HOST}:443 HTTP/1.") for line, _ in proxy.seen)
    finally:
        proxy.close()


# ---- codeup run and codeup-tui: where the server comes from ------------------------------------

def codeup_run(*args: str, env: dict) -> subprocess.CompletedProcess:
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "CODEUP_API_KEY", "OPENAI_API_KEY")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "run", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env=full)


def test_codeup_run_uses_openai_base_url_and_remote_model(server):
    server.on("/v1/models", models({"id": "small"}, {"id": "big"}))
    proc = codeup_run("-p", "hi", "--temp", "0", "--remote-model", "big", env={"OPENAI_BASE_URL": server.url + "/v1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hiHello world\n" and "remote: big on" in proc.stderr  # the prompt, then the answer
    assert server.bodies("/v1/completions")[0]["model"] == "big"
    proc = codeup_run("-p", "hi", "--remote-model", "huge", env={"OPENAI_BASE_URL": server.url})
    assert proc.returncode != 0 and "has no model 'huge'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_remote_model_needs_a_server():
    proc = codeup_run("-m", "nothing.gguf", "-p", "hi", "--remote-model", "x", env={})
    assert proc.returncode == 2 and "--remote-model applies only with --endpoint" in proc.stderr


def test_tui_endpoint_comes_from_flag_config_or_environment(tmp_path):
    from codeup_tui.tui.cli import choose_endpoint
    from codeup_tui.tui.config import Config, load_config, render_config

    path = tmp_path / "config.toml"
    path.write_text('endpoint = "http://gpu-box:8080/v1"\nremote_model = "qwen"\ntemperature = 0.2\n')
    config = load_config(path)
    assert config.remote == {"endpoint": "http://gpu-box:8080/v1", "remote_model": "qwen"}
    assert 'endpoint = "http://gpu-box:8080/v1"' in render_config(config.values, config.keys, (), config.remote)
    env = {"OPENAI_BASE_URL": "http://env-box:1234"}

    def args(**kw):
        return argparse.Namespace(**{"endpoint": None, "model": None, **kw})

    assert choose_endpoint(args(endpoint="http://flag:1"), config, env) == "http://flag:1"
    assert choose_endpoint(args(model="m.gguf"), config, env) is None
    assert choose_endpoint(args(), config, env) == "http://gpu-box:8080/v1"
    assert choose_endpoint(args(), Config(path), env) == "http://env-box:1234"
    assert choose_endpoint(args(), Config(path, {"model": Path("m.gguf")}), env) is None
    assert choose_endpoint(args(), Config(path), {}) is None
    path.write_text('endpoint = "ftp://x"\n')
    with pytest.raises(Exception, match="endpoint is not usable"):
        load_config(path)


async def test_f2_lists_the_servers_models_and_saves_the_choice(server, tmp_path):
    from codeup_tui.tui.app import CodeupApp
    from codeup_tui.tui.config import Config, load_config
    from codeup_tui.tui.remote_backend import RemoteBackend
    from codeup_tui.tui.screens.settings import SettingsScreen

    server.on("/v1/models", models({"id": "small"}, {"id": "big"}))
    config_path = tmp_path / "config.toml"
    config_path.write_text('endpoint = "http://elsewhere:1"\n')
    backend = RemoteBackend(server.url)
    project = tmp_path / "p"
    project.mkdir()
    app = CodeupApp(project, backend=backend, template="alpaca", config=Config(config_path))
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + WAIT
        while backend.client is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.press("f2")
        while not isinstance(app.screen, SettingsScreen) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        screen = app.screen
        field = screen.query_one("#setting-remote_model")
        assert field.value == "small"
        hint = str(screen.query_one("#row-remote_model").children[-1].render())
        assert "small, big" in hint
        field.value = "huge"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "has no model 'huge'" in str(screen.query_one("#error-remote_model").render())
        field.value = "big"
        await pilot.press("ctrl+s")
        while isinstance(app.screen, SettingsScreen) and time.monotonic() < deadline:
            await pilot.pause(0.05)
    saved = load_config(config_path)
    assert saved.remote == {"endpoint": "http://elsewhere:1", "remote_model": "big"}
