"""The settings screen (F2) and key remapping, with a FAKE backend at 80x24: open, edit,
refuse an invalid value, save to the config file, cancel, apply; remapped keys work and
show in the help, the footer and the palette. The config file is always under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input
from tests.helpers.tui_pilot import wait_until
from tests.helpers.tui_fakes import FakeBackend

from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.tui.app import CodeupApp
from codeup_tui.tui.config import FIELDS, Config, load_config
from codeup_tui.tui.screens import HelpScreen, MainScreen, SettingsScreen
from codeup_tui.tui.widgets import Conversation, InstructionEditor

SIZE = (80, 24)




class RecordingBackend(FakeBackend):
    """The fake backend, also recording the sampling settings each answer is started with."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[SamplingParams | None, int]] = []

    def start(self, prompt: str, *, params=None, max_tokens: int = -1, **options):
        self.started.append((params, max_tokens))
        return super().start(prompt, params=params, max_tokens=max_tokens, **options)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "codeup-tui" / "config.toml"


def make_app(root: Path, backend: FakeBackend | None = None, **options) -> CodeupApp:
    (root / "a.py").write_text("print('a')\n")
    return CodeupApp(root, backend=backend or FakeBackend(), **options)


async def ready(pilot) -> MainScreen:
    await wait_until(pilot, lambda: pilot.app.model_status.state == "ready")
    return pilot.app.screen


async def open_settings(pilot) -> SettingsScreen:
    await pilot.press("f2")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen))
    return pilot.app.screen


def field(screen: SettingsScreen, name: str) -> Input:
    return screen.query_one(f"#setting-{name}", Input)


async def focus_field(pilot, screen: SettingsScreen, name: str) -> None:
    """Tab from the first field down to `name` (keys only)."""
    names = [spec.name for spec in FIELDS]
    assert pilot.app.focused is field(screen, names[0])
    await pilot.press(*["tab"] * names.index(name))
    assert pilot.app.focused is field(screen, name)


async def retype(pilot, text: str) -> None:
    """Replace the focused field's text, with the keys: to the start, delete to the end, type."""
    await pilot.press("home", "ctrl+k", *text)


def error_text(screen: SettingsScreen, name: str) -> str:
    error = screen.query_one(f"#error-{name}")
    return str(error.render()) if error.has_class("-shown") else ""


# -- the screen ------------------------------------------------------------------------------


async def test_f2_shows_every_setting_at_80x24_and_tab_walks_them(tmp_path: Path, config_file: Path):
    app = make_app(tmp_path, sampling=SamplingParams(temperature=0.3, top_k=7), max_tokens=128, template="chatml")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        shown = {spec.name: field(screen, spec.name).value for spec in FIELDS}
        assert shown == {"model": "", "n_ctx": "", "threads": "", "template": "chatml", "temperature": "0.3",
                         "top_k": "7", "top_p": "0.95", "min_p": "0.05", "repeat_penalty": "1",
                         "max_tokens": "128", "draft_max": "16"}
        box = screen.query_one("#settings").region
        assert box.x >= 0 and box.right <= 80 and box.y >= 0 and box.bottom <= 23  # the footer is below
        for spec in FIELDS:
            region = field(screen, spec.name).region
            assert region.height == 1 and box.y < region.y < box.bottom and region.width >= 20
        order = [spec.name for spec in FIELDS]
        for name in order[1:]:
            await pilot.press("tab")
            assert app.focused is field(screen, name)
        await pilot.press("shift+tab", "up")
        assert app.focused is field(screen, order[-3])
        await pilot.press("down")
        assert app.focused is field(screen, order[-2])


async def test_escape_cancels_and_saves_nothing(tmp_path: Path, config_file: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        main = await ready(pilot)
        screen = await open_settings(pilot)
        await focus_field(pilot, screen, "temperature")
        await retype(pilot, "0.1")
        await pilot.press("escape")
        assert app.screen is main
        assert not config_file.exists()
        assert app.sampling is None and app.settings.temperature == 0.8
        screen = await open_settings(pilot)  # opens again with the values in force
        assert field(screen, "temperature").value == "0.8"


async def test_invalid_values_are_refused_next_to_the_field_and_nothing_is_saved(tmp_path: Path, config_file: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        await focus_field(pilot, screen, "top_p")
        await retype(pilot, "1.5")
        await pilot.press("tab")  # min_p
        await retype(pilot, "lots")
        await pilot.press("tab", "tab", "tab", "tab")  # model (tab wraps round)
        await retype(pilot, "no-such.gguf")
        await pilot.press("ctrl+s")
        assert app.screen is screen
        assert error_text(screen, "top_p") == "✗ must be between 0 and 1, got 1.5"
        assert error_text(screen, "min_p") == "✗ must be a number, got 'lots'"
        assert error_text(screen, "model") == "✗ model file does not exist: no-such.gguf"
        assert error_text(screen, "temperature") == ""
        assert screen.query_one("#row-top_p").has_class("-invalid")
        assert app.focused is field(screen, "model")  # the first refused field
        assert any("Not saved: 3 values are not valid" in n.message for n in app._notifications)
        assert not config_file.exists() and app.sampling is None
        # Editing a field clears its message; the others stay until they are fixed.
        await pilot.press("ctrl+a", "ctrl+k")  # model: empty again (the default model)
        assert error_text(screen, "model") == ""
        assert error_text(screen, "top_p") != ""


async def test_save_writes_the_file_and_the_next_answer_uses_it(tmp_path: Path, config_file: Path):
    backend = RecordingBackend()
    app = make_app(tmp_path, backend=backend, sampling=SamplingParams(seed=11))
    async with app.run_test(size=SIZE) as pilot:
        main = await ready(pilot)
        screen = await open_settings(pilot)
        await focus_field(pilot, screen, "temperature")
        await retype(pilot, "0.2")
        await pilot.press("tab", "tab")  # top_p
        await retype(pilot, "0.5")
        await pilot.press("tab", "tab", "tab")  # max tokens
        await retype(pilot, "64")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is main)
        assert load_config(config_file).values == {"temperature": 0.2, "top_p": 0.5, "max_tokens": 64}
        assert any(n.message == f"Saved to {config_file}." for n in app._notifications)
        # The next answer is started with the new settings (the seed given at start stays).
        await pilot.press("ctrl+e", *"hello", "ctrl+j")
        await wait_until(pilot, lambda: len(backend.started) == 1)
        params, max_tokens = backend.started[0]
        assert params == SamplingParams(temperature=0.2, top_p=0.5, seed=11)
        assert max_tokens == 64
        editor = main.query_one(InstructionEditor)
        await wait_until(pilot, lambda: "answer 64" in editor.border_subtitle)  # the room kept for it


async def test_untouched_fields_keep_the_files_values_and_flags_are_not_written(tmp_path: Path, config_file: Path):
    config_file.parent.mkdir(parents=True)
    config_file.write_text('top_k = 12\ntemperature = 0.9\n\n[keys]\nshow-prompt = "f6"\n')
    config = load_config(config_file)
    # As if started with --temp 0.6: the flag wins over the file for this run only.
    settings = config.settings.updated({"temperature": 0.6})
    app = make_app(tmp_path, config=config, settings=settings,
                   sampling=settings.sampling_params(), template=settings.template)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        assert field(screen, "temperature").value == "0.6"
        await focus_field(pilot, screen, "min_p")
        await retype(pilot, "0.2")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
    saved = load_config(config_file)
    assert saved.values == {"top_k": 12, "temperature": 0.9, "min_p": 0.2}
    assert dict(saved.keys) == {"show-prompt": "f6"}  # the remapping is kept


async def test_emptied_field_goes_back_to_the_default_and_model_changes_need_a_restart(
        tmp_path: Path, config_file: Path):
    config_file.parent.mkdir(parents=True)
    config_file.write_text("top_k = 12\n")
    config = load_config(config_file)
    app = make_app(tmp_path, config=config, settings=config.settings, sampling=config.settings.sampling_params())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        await focus_field(pilot, screen, "n_ctx")
        await retype(pilot, "1024")
        await pilot.press("tab", "tab", "tab", "tab")  # top_k
        await pilot.press("ctrl+a", "ctrl+k")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert load_config(config_file).values == {"n_ctx": 1024}
        assert app.sampling.top_k == 40 and app.settings.n_ctx == 1024
        assert any("apply when codeup-tui restarts" in n.message for n in app._notifications)


async def test_template_change_applies_at_once(tmp_path: Path, config_file: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        # the fake model has no chat template: the default `model` falls back to alpaca, and says so
        assert str(screen.query_one("#row-template .setting-hint").render()) == "in use: alpaca"
        await focus_field(pilot, screen, "template")
        await retype(pilot, "nope")
        await pilot.press("ctrl+s")
        assert error_text(screen, "template").startswith("✗ must be one of model, alpaca, ")
        await retype(pilot, "chatml")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert app.template.name == "chatml"
        assert load_config(config_file).values == {"template": "chatml"}


async def test_a_config_file_broken_since_the_start_is_not_overwritten(tmp_path: Path, config_file: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        config_file.parent.mkdir(parents=True)
        config_file.write_text("top_k = [unclosed\n")  # edited by hand meanwhile
        await focus_field(pilot, screen, "top_k")
        await retype(pilot, "5")
        await pilot.press("ctrl+s")
        assert app.screen is screen  # still open: nothing lost
        assert config_file.read_text() == "top_k = [unclosed\n"
        assert any("not valid TOML" in n.message and str(config_file) in n.message for n in app._notifications)
        assert app.sampling is None


async def test_settings_are_in_the_palette_and_the_help(tmp_path: Path, config_file: Path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        main = await ready(pilot)
        titles = {command.title for command in app.get_system_commands(main)}
        assert {"Settings (f2)", "Files (^f)", "Editor (^e)"} <= titles
        await pilot.press("ctrl+p", *"settings")
        await pilot.pause(0.3)  # the palette searches in the background
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        await pilot.press("escape", "f1")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one("#help-text").source
        for binding_id in ("settings", "settings-save", "settings-cancel"):
            assert f"`{binding_id}`" in text


# -- key remapping ---------------------------------------------------------------------------


async def test_remapped_keys_work_and_show_in_footer_help_and_palette(tmp_path: Path, config_file: Path):
    backend = FakeBackend()
    config = Config(config_file, keys={"send": "f5", "new-conversation": "ctrl+n,f8", "settings-save": "f9"})
    app = make_app(tmp_path, backend=backend, config=config)
    async with app.run_test(size=SIZE) as pilot:
        main = await ready(pilot)

        def footer_keys() -> dict[str, str]:
            # by type name: Textual exports no public FooterKey
            return {key.description: key.key for key in main.query("FooterKey")}

        await wait_until(pilot, lambda: "Send" in footer_keys())
        assert footer_keys()["Send"] == "f5"
        await pilot.press(*"hi", "ctrl+j")  # the old key is gone: in the editor it is only a key now
        await pilot.pause(0.1)
        assert backend.prompts == []
        await pilot.press("f5")
        await wait_until(pilot, lambda: len(backend.prompts) == 1)
        await wait_until(pilot, lambda: not main.generating)
        await pilot.press("f8")  # a second key added to a binding
        await wait_until(pilot, lambda: not main.query_one(Conversation).exchanges)
        titles = [command.title for command in app.get_system_commands(main)]
        assert "Send (f5)" in titles and "New (^n, f8)" in titles
        await pilot.press("f1")
        text = app.screen.query_one("#help-text").source
        assert "| f5 | Send the instruction" in text
        assert "^j" not in text and "| ^n, f8 |" in text
        await pilot.press("escape")
        screen = await open_settings(pilot)
        await focus_field(pilot, screen, "top_k")
        await retype(pilot, "3")
        await pilot.press("f9")  # settings-save, remapped
        await wait_until(pilot, lambda: app.screen is main)
        assert load_config(config_file).values == {"top_k": 3}
