"""The config file: where it is, what it may hold, the messages for bad values, the
precedence of flags over the file over the defaults, the atomic save, and key remapping.

Every test points XDG_CONFIG_HOME at tmp_path (conftest.py does it for all tests), so the
user's real config is never read or written.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.tui.cli import main
from codeup_tui.tui.config import (
    CONFIG_ENV,
    FIELDS,
    Config,
    ConfigError,
    Settings,
    check_binding_ids,
    config_path,
    format_value,
    load_config,
    normalize_keys,
    parse_text,
    render_config,
    save_config,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch) -> Path:
    """An empty XDG_CONFIG_HOME; returns where the default config file goes."""
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    return home / "codeup-tui" / "config.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- where the file is -------------------------------------------------------------------


def test_path_follows_xdg_then_env_then_flag(xdg: Path, tmp_path: Path, monkeypatch):
    assert config_path() == (xdg, False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # not absolute: ignored, per the XDG spec
    assert config_path() == (Path.home() / ".config" / "codeup-tui" / "config.toml", False)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "env.toml"))
    assert config_path() == (tmp_path / "env.toml", True)
    assert config_path(str(tmp_path / "flag.toml")) == (tmp_path / "flag.toml", True)


def test_missing_default_file_is_empty_but_a_named_one_must_exist(xdg: Path, tmp_path: Path):
    config = load_config(xdg)
    assert config.settings == Settings() and dict(config.keys) == {}
    missing = tmp_path / "typo.toml"
    with pytest.raises(ConfigError, match=f"^config file does not exist: {missing}$"):
        load_config(missing, must_exist=True)


# -- loading and checking ----------------------------------------------------------------


def test_every_setting_loads(xdg: Path):
    write(xdg, """
model = "~/models/codeup.gguf"
n_ctx = 2048
threads = 4
template = "chatml"
temperature = 0
top_k = 20
top_p = 0.9
min_p = 0.1
repeat_penalty = 1.1
max_tokens = 512

[keys]
send = "ctrl+j,alt+enter"
""")
    config = load_config(xdg)
    assert config.settings == Settings(
        model=Path("~/models/codeup.gguf"), n_ctx=2048, threads=4, template="chatml", temperature=0.0,
        top_k=20, top_p=0.9, min_p=0.1, repeat_penalty=1.1, max_tokens=512,
    )
    assert dict(config.keys) == {"send": "ctrl+j,alt+enter"}
    # The sampling settings become the engine's SamplingParams.
    params = config.settings.sampling_params(seed=7)
    assert params == SamplingParams(temperature=0.0, top_k=20, top_p=0.9, min_p=0.1, repeat_penalty=1.1, seed=7)


def test_defaults_are_the_engines():
    engine = SamplingParams()
    settings = Settings()
    for name in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty"):
        assert getattr(settings, name) == getattr(engine, name)
    assert (settings.model, settings.n_ctx, settings.threads, settings.template, settings.max_tokens) == (
        None, None, None, "model", -1)
    assert [spec.name for spec in FIELDS] == list(Settings.__dataclass_fields__)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("top_p = 1.5", "top_p must be between 0 and 1, got 1.5"),
        ("min_p = -0.1", "min_p must be between 0 and 1, got -0.1"),
        ("temperature = 2e6", "temperature must be between -1e+06 and 1e+06, got 2e+06"),
        ("temperature = nan", "temperature must be a finite number, got nan"),
        ("temperature = \"hot\"", "temperature must be a number, got 'hot'"),
        ("top_k = 2.5", "top_k must be a whole number, got 2.5"),
        ("draft_max = 300", "draft_max must be between 0 (off) and 256, got 300"),
        ("threads = true", "threads must be a whole number, got true"),
        ("threads = 0", "threads must be between 1 and 1024, got 0"),
        ("n_ctx = 8", "n_ctx must be between 16 and 1048576, got 8"),
        ("repeat_penalty = 0", "repeat_penalty must be between 0 (excluded) and 1e+06 (1 = off), got 0"),
        ("max_tokens = -2", "max_tokens must be -1 (until the end) or more, got -2"),
        ("model = \"\"", "model must not be empty"),
        ("model = 3", "model must be a string, got 3"),
        ("template = \"nope\"", "template must be one of model, alpaca, "),
        ("temp = 0.5", "unknown key 'temp' (did you mean 'temperature'?)"),
        ("[sampling]\ntop_k = 1", "unknown key 'sampling'"),
        ("keys = 3", "keys must be a table"),
        ("[keys]\nsend = 5", "keys.send must be a key string like \"ctrl+j,alt+enter\", got 5"),
        ("[keys]\nsend = \"ctrl+jj\"", "keys.send has an unknown key 'ctrl+jj'"),
        ("[keys]\nsend = \"cmd+j\"", "keys.send has an unknown modifier 'cmd' in 'cmd+j'"),
        ("[keys]\nsend = \"ctrl+j,\"", "keys.send has an empty key"),
        ("top_p = ", "not valid TOML: "),
    ],
)
def test_bad_values_are_refused_with_one_line_naming_the_file_and_key(xdg: Path, toml: str, message: str):
    write(xdg, toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(xdg)
    text = str(info.value)
    assert text.startswith(f"{xdg}: {message}"), text
    assert "\n" not in text


def test_unreadable_and_non_utf8_files(xdg: Path, tmp_path: Path):
    write(xdg, "")
    xdg.write_bytes(b"top_k = 1 # \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(xdg)
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="config path is a directory"):
        load_config(folder)


def test_key_strings_are_normalized_to_textuals_names():
    assert normalize_keys("ctrl+j, alt+enter") == "ctrl+j,alt+enter"
    assert normalize_keys("F2") == "f2"
    assert normalize_keys("Ctrl+/") == "ctrl+slash"
    assert normalize_keys("shift+ctrl+up") == "ctrl+shift+up"  # modifiers in Textual's order
    assert normalize_keys("?") == "question_mark"
    assert normalize_keys("ctrl+J") == "ctrl+j"
    for bad in ("", "ctrl+", "ctrl++", "banana", "ctrl+é", ","):
        with pytest.raises(ValueError):
            normalize_keys(bad)


def test_unknown_binding_id_is_refused_with_a_suggestion(xdg: Path):
    write(xdg, '[keys]\nsennd = "f5"\n')
    config = load_config(xdg)
    with pytest.raises(ConfigError) as info:
        check_binding_ids(config, {"send", "stop", "help"})
    assert str(info.value) == f"{xdg}: keys: unknown binding id 'sennd' (did you mean 'send'? F1 lists every id)"
    with pytest.raises(ConfigError) as info:
        check_binding_ids(Config(xdg, keys={"zzz": "f5"}), {"send", "stop", "help"})
    assert str(info.value) == f"{xdg}: keys: unknown binding id 'zzz' (known: help, send, stop)"
    check_binding_ids(Config(xdg, keys={"stop": "f5"}), {"send", "stop"})  # a known id passes


def test_typed_text_parses_like_the_file():
    assert parse_text("top_p", " 0.5 ") == 0.5
    assert parse_text("top_k", "10") == 10
    assert parse_text("n_ctx", "") is None  # empty: the default
    assert parse_text("temperature", "") is None
    with pytest.raises(ValueError, match="must be a whole number, got '1.5'"):
        parse_text("top_k", "1.5")
    with pytest.raises(ValueError, match="must be between 0 and 1, got 2"):
        parse_text("top_p", "2")
    with pytest.raises(ValueError, match="must be a number, got 'warm'"):
        parse_text("temperature", "warm")
    for spec in FIELDS:  # what the screen shows reads back as the same value
        value = getattr(Settings(), spec.name)
        if value is not None:
            assert parse_text(spec.name, format_value(value)) == value


# -- saving ------------------------------------------------------------------------------


def test_render_round_trips_through_tomllib(tmp_path: Path):
    values = {"model": Path('/models/we"ird\\name\t.gguf'), "temperature": 1e-05, "top_k": 0, "top_p": 1.0,
              "template": "chatml", "max_tokens": 256}
    keys = {"send": "ctrl+j,alt+enter", "help": "f1,question_mark"}
    text = render_config(values, keys)
    data = tomllib.loads(text)
    assert data["model"] == '/models/we"ird\\name\t.gguf'
    assert data["temperature"] == 1e-05 and data["top_p"] == 1.0 and isinstance(data["top_p"], float)
    assert data["keys"] == keys
    path = write(tmp_path / "c.toml", text)
    loaded = load_config(path)
    assert loaded.settings == Settings().updated(values)
    assert dict(loaded.keys) == keys


def test_save_is_atomic_and_keeps_the_old_file_on_failure(xdg: Path, monkeypatch):
    write(xdg, "top_k = 5\n")
    xdg.chmod(0o640)
    save_config(Config(xdg, {"top_k": 7, "temperature": 0.5}, {"stop": "f5"}))
    assert load_config(xdg).values == {"top_k": 7, "temperature": 0.5}
    assert (xdg.stat().st_mode & 0o777) == 0o640  # the file's permissions are kept
    assert sorted(p.name for p in xdg.parent.iterdir()) == ["config.toml"]  # no temporary file left

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ConfigError, match=f"^cannot write {xdg}: No space left on device$"):
        save_config(Config(xdg, {"top_k": 9}))
    assert load_config(xdg).values == {"top_k": 7, "temperature": 0.5}  # untouched
    assert sorted(p.name for p in xdg.parent.iterdir()) == ["config.toml"]


def test_save_creates_the_folder_and_writes_through_a_symlink(tmp_path: Path):
    new = tmp_path / "new" / "dir" / "config.toml"
    save_config(Config(new, {"threads": 2}))
    assert load_config(new).values == {"threads": 2}
    real = write(tmp_path / "dotfiles" / "config.toml", "top_k = 1\n")
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    save_config(Config(link, {"top_k": 3}))
    assert link.is_symlink() and load_config(real).values == {"top_k": 3}


# -- the command line: precedence and errors -----------------------------------------------


def run_main(capsys, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    _out, err = capsys.readouterr()
    return exit_info.value.code, err


@pytest.fixture
def captured_app(monkeypatch):
    """Runs main() up to the app: returns the CodeupApp it built (never run)."""
    import codeup_tui.tui.app  # noqa: F401 - tui.app
    from codeup_tui import tui

    built: list = []

    class NotRun(Exception):
        pass

    def fake_run(self, *args, **kwargs):
        built.append(self)
        raise NotRun

    monkeypatch.setattr(tui.app.CodeupApp, "run", fake_run)

    def run(*argv: str):
        with pytest.raises(NotRun):
            main(list(argv))
        return built[-1]

    return run


def test_flags_beat_the_file_which_beats_the_defaults(xdg: Path, captured_app):
    write(xdg, "temperature = 0.3\ntop_k = 12\nmax_tokens = 100\ntemplate = \"chatml\"\n")
    app = captured_app(str(DEMO), "--temp", "0.6", "--ctx", "512", "--threads", "2", "--top-p", "0.5")
    assert app.sampling.temperature == 0.6  # flag
    assert app.sampling.top_k == 12  # file
    assert app.sampling.top_p == 0.5  # flag
    assert app.sampling.min_p == SamplingParams().min_p  # default
    assert app.max_tokens == 100 and app.template.name == "chatml"
    assert (app.backend.source.n_ctx, app.backend.source.n_threads) == (512, 2)
    assert app.settings.temperature == 0.6 and app.config.path == xdg


def test_keys_table_becomes_the_apps_keymap(xdg: Path, captured_app):
    write(xdg, '[keys]\nsend = "F5"\nhelp = "f1,question_mark"\n')
    app = captured_app(str(DEMO))
    assert app.keymap == {"send": "f5", "help": "f1,question_mark"}


def test_broken_config_stops_the_cli_with_one_line(xdg: Path, capsys):
    write(xdg, "top_p = 3\n")
    code, err = run_main(capsys, str(DEMO))
    assert (code, err) == (2, f"codeup-tui: error: {xdg}: top_p must be between 0 and 1, got 3\n")
    write(xdg, '[keys]\nno-such-action = "f5"\n')
    code, err = run_main(capsys, str(DEMO))
    assert code == 2 and err.startswith(f"codeup-tui: error: {xdg}: keys: unknown binding id 'no-such-action'")
    assert err.count("\n") == 1
    write(xdg, 'model = "/no/such/model.gguf"\n')
    code, err = run_main(capsys, str(DEMO))
    assert (code, err) == (2, f"codeup-tui: error: {xdg}: model: model file does not exist: /no/such/model.gguf\n")


def test_config_flag_and_env_name_the_file(xdg: Path, tmp_path: Path, capsys, monkeypatch, captured_app):
    missing = tmp_path / "nope.toml"
    code, err = run_main(capsys, str(DEMO), "--config", str(missing))
    assert (code, err) == (2, f"codeup-tui: error: config file does not exist: {missing}\n")
    other = write(tmp_path / "other.toml", "top_k = 3\n")
    monkeypatch.setenv(CONFIG_ENV, str(other))
    assert captured_app(str(DEMO)).sampling.top_k == 3
    flag = write(tmp_path / "flag.toml", "top_k = 4\n")
    assert captured_app(str(DEMO), "--config", str(flag)).sampling.top_k == 4


def test_bad_sampling_flags_are_one_line_errors(xdg: Path, capsys):
    for argv, message in [
        (("--top-p", "2"), "--top-p must be between 0 and 1, got 2"),
        (("--temp", "1e7"), "--temp must be between -1e+06 and 1e+06, got 1e+07"),
        (("--ctx", "4"), "--ctx must be between 16 and 1048576, got 4"),
        (("-c", "4"), "-c must be between 16 and 1048576, got 4"),
        (("--repeat-penalty", "0"), "--repeat-penalty must be between 0 (excluded) and 1e+06 (1 = off), got 0"),
        (("--seed", "-2"), "--seed must be -1 (random) or more, got -2"),
    ]:
        code, err = run_main(capsys, str(DEMO), *argv)
        assert (code, err) == (2, f"codeup-tui: error: {message}\n")


def test_the_readme_example_loads(tmp_path: Path):
    from codeup_tui.tui.app import CodeupApp

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    config = load_config(write(tmp_path / "config.toml", example))
    assert config.settings.model == Path("~/models/codeup-llama-2-13b.Q4_K_M.gguf")
    assert config.settings.n_ctx == 4096 and config.keys["send"] == "ctrl+j,alt+enter"
    check_binding_ids(config, CodeupApp.binding_ids())
