"""The TUI on a remote model (RemoteBackend), at 80x24: against a real `codeup serve` with the
default model, and against a misbehaving server (tests/helpers/fault_server.py): the status bar says
where the model runs and labels estimated counts; a failure mid-answer keeps the partial
answer, says what happened, and the next send works. Also `codeup-tui --endpoint`'s flags."""

from __future__ import annotations

from functools import partial

from pathlib import Path

import pytest

from tests.helpers.tui_pilot import wait_until as pilot_wait_until
from tests.helpers.fault_server import FaultServer, endless, stream
from tests.helpers.serve_process import ServeProcess

from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.tui.app import CodeupApp
from codeup_tui.tui.remote_backend import RemoteBackend
from codeup_tui.tui.widgets import Conversation, InstructionEditor, StatusBar

SIZE = (80, 24)
KEY = "sk-tui-test"
GREEDY = SamplingParams(temperature=0)


wait_until = partial(pilot_wait_until, timeout=120.0, step=0.05)  # a real model answers


def project(tmp_path: Path) -> Path:
    (tmp_path / "a.py").write_text("def a():\n    return 1\n")
    return tmp_path


def exchanges(app):
    return app.screen.query_one(Conversation).exchanges


def status_text(app) -> str:
    return app.screen.query_one(StatusBar).text


async def send(pilot, text: str) -> None:
    await pilot.press("ctrl+e", *text)
    await pilot.press("ctrl+j")


@pytest.fixture(scope="module")
def served(default_model_file):
    server = ServeProcess(default_model_file, "--api-key", KEY)
    yield server
    server.stop()


async def test_tui_answers_from_codeup_serve(served, tmp_path):
    backend = RemoteBackend(served.url, KEY)
    app = CodeupApp(project(tmp_path), backend=backend, template="alpaca", sampling=GREEDY, max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "remote:" in status_text(app))
        line = status_text(app)
        assert f"remote: 127.0.0.1:{served.port}" in line and "SmolLM2" in line
        assert "~" not in line and "estimated" not in line  # the server counts tokens itself
        assert backend.generator.n_ctx == 4096
        await send(pilot, "Say hello.")
        await wait_until(pilot, lambda: exchanges(app) and exchanges(app)[-1].state == "done")
        exchange = exchanges(app)[-1]
        assert exchange.answer.strip()
        assert "8 tokens" in exchange.state_text or "done" in exchange.state_text
        used = app.screen.query_one(StatusBar).context_used
        assert used > 8  # the prompt's tokens (the server's usage) and the answer's
        line = status_text(app)
        assert f"ctx {used}/4096" in line and "gen " in line and "prompt " not in line
        assert len(line) <= SIZE[0]  # name, host, context and speed fit 80 columns
        # the same prompt asked directly gives the same greedy answer
        direct = backend.client.start(app.template.render("Say hello."), GREEDY, max_tokens=8,
                                      stop=app.template.stop)
        assert direct.text() == exchange.answer
    assert served.health()["generations"] >= 1


async def test_tui_keeps_a_partial_answer_when_the_server_drops_and_retries(tmp_path):
    server = FaultServer()
    try:
        server.on("/v1/completions", stream(["The answer", " is"], end="drop"), stream(["Second", " try."]))
        app = CodeupApp(project(tmp_path), backend=RemoteBackend(server.url), template="alpaca", sampling=GREEDY)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "remote:" in status_text(app))
            line = status_text(app)
            port = server.url.rsplit(":", 1)[1]
            assert f"remote: 127.0.0.1:{port}" in line
            assert "ctx ~0/4096 (estimated)" in line  # no /tokenize there: counts are estimates
            await pilot.press("ctrl+e", *"Why?")
            editor = app.screen.query_one(InstructionEditor)
            await wait_until(pilot, lambda: (editor.border_subtitle or "").startswith("estimated: prompt "))
            editor.clear()
            await send(pilot, "What is it?")
            await wait_until(pilot, lambda: exchanges(app) and exchanges(app)[-1].state == "error")
            first = exchanges(app)[-1]
            assert first.answer == "The answer is"  # kept, all of it
            assert "closed the stream before the answer was complete" in first.state_text
            assert any("Generation failed" == (n.title or "") for n in app._notifications)
            await send(pilot, "What is it?")  # retry
            await wait_until(pilot, lambda: len(exchanges(app)) == 2 and exchanges(app)[-1].state == "done")
            assert exchanges(app)[-1].answer == "Second try."
            assert exchanges(app)[0].answer == "The answer is"
    finally:
        server.close()


async def test_escape_closes_the_stream(tmp_path):
    server = FaultServer()
    try:
        server.on("/v1/completions", endless("tick "))
        app = CodeupApp(project(tmp_path), backend=RemoteBackend(server.url), template="alpaca")
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "remote:" in status_text(app))
            await send(pilot, "Go on forever.")
            await wait_until(pilot, lambda: exchanges(app) and "tick tick" in exchanges(app)[-1].answer)
            await pilot.press("escape")
            await wait_until(pilot, lambda: not app.screen.generating)
            assert exchanges(app)[-1].state == "stopped"
            assert server.client_closed.wait(30)  # the server saw the connection closed
    finally:
        server.close()


async def test_tui_says_when_the_server_cannot_be_reached(tmp_path):
    server = FaultServer()
    url = server.url
    server.close()  # nothing listens there any more
    app = CodeupApp(project(tmp_path), backend=RemoteBackend(url), template="alpaca")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "refused" in status_text(app))
        assert "refused the connection: is the server running?" in status_text(app)


@pytest.mark.parametrize("args,message", [
    (["--endpoint", "ftp://x"], "use an http:// or https:// URL"),
    (["--endpoint", "http://127.0.0.1:1", "--model", "m.gguf"], "--model and --endpoint"),
    (["--timeout", "5"], "--timeout applies only with --endpoint"),
    (["--endpoint", "http://127.0.0.1:1", "--timeout", "-1"], "--timeout -1"),
])
def test_endpoint_flag_errors_are_one_line(tmp_path, capsys, args, message):
    from codeup_tui.tui.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_remote_speed_shows_the_generation_rate_only():
    from codeup_tui.engine.generate import Timings
    from codeup_tui.tui.widgets.status_bar import speed_text

    timings = Timings(prompt_tokens=385, prompt_evaluated=385, prompt_seconds=0.5, generated_tokens=50,
                      generation_seconds=2.0)
    assert speed_text(timings, generating=False) == "prompt 770 t/s · gen 25.0 t/s"
    assert speed_text(timings, generating=False, remote=True) == "gen 25.0 t/s"
