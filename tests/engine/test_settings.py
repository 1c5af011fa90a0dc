"""The settings table (engine/settings.py) is the one place a setting is defined: `codeup run`,
`codeup serve`, `codeup-tui`, the config file, the F2 form, the server's requests and the
remote client's requests all take a setting's names, range and default from it, so the same
bad value is refused everywhere with the same words, and a setting added to the table is
known to each of them."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

from codeup_tui.engine.remote import request_fields
from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.engine.settings import RUN, SERVE, SETTINGS, SETTINGS_BY_NAME, TUI, Setting, SettingError
from codeup_tui.tui.config import FIELDS_BY_NAME, ConfigError, Settings, load_config, parse_text

DEMO = REPO / "demo"

# (setting, the value as typed, as TOML/JSON, the problem every entry point reports)
BAD = [
    ("top_p", "1.5", 1.5, "must be between 0 and 1, got 1.5"),
    ("min_p", "-0.1", -0.1, "must be between 0 and 1, got -0.1"),
    ("repeat_penalty", "0", 0, "must be between 0 (excluded) and 1e+06 (1 = off), got 0"),
    ("temperature", "2e6", 2e6, "must be between -1e+06 and 1e+06, got 2e+06"),
    ("max_tokens", "-2", -2, "must be -1 (until the end) or more, got -2"),
    ("n_ctx", "8", 8, "must be between 16 and 1048576, got 8"),
    ("threads", "0", 0, "must be between 1 and 1024, got 0"),
    ("draft_max", "300", 300, "must be between 0 (off) and 256, got 300"),
    ("seed", "-2", -2, "must be -1 (random) or more, got -2"),
    ("repeat_last_n", "-3", -3, "must be -1 (the whole context), 0 (off) or more, got -3"),
]


def engine_parser(command: str) -> argparse.ArgumentParser:
    from codeup_tui.engine.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command.split()[-1]]


def tui_parser() -> argparse.ArgumentParser:
    from codeup_tui.tui.cli import build_parser

    return build_parser()


def parsers():
    return {RUN: engine_parser(RUN), SERVE: engine_parser(SERVE), TUI: tui_parser()}


def parse_error(parser: argparse.ArgumentParser, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def server(default_model_file):
    from codeup_tui.engine.model import load_model
    from codeup_tui.engine.server import CodeupServer
    from codeup_tui.engine.templates import load_template

    model = load_model(default_model_file)
    app = CodeupServer(model, load_template("alpaca"))
    yield app
    app.close()
    model.close()


def server_problem(server, body: dict) -> str:
    from codeup_tui.engine.server import HTTPError

    with pytest.raises(HTTPError) as info:
        server.completion_request({"prompt": "x", **body})
    assert info.value.status == 400
    return info.value.message


@pytest.mark.parametrize("name,typed,value,problem", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_refused_everywhere_with_the_same_words(name, typed, value, problem, tmp_path, capsys,
                                                               request):
    setting = SETTINGS_BY_NAME[name]
    checked = 0
    for command, parser in parsers().items():  # each command line, naming every spelling of the flag
        if command not in setting.commands:
            continue
        for flag in setting.flags_for(command):
            line = parse_error(parser, [flag, typed], capsys)
            assert line.startswith(f"{parser.prog}: error: {flag} {problem}"), line
            checked += 1
    if setting.config_key:  # the config file, and the F2 form's check of a typed value
        path = tmp_path / "config.toml"
        path.write_text(f"{setting.config_key} = {value!r}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == f"{path}: {setting.config_key} {problem}"
        with pytest.raises(ValueError) as info:
            parse_text(setting.config_key, typed)
        assert str(info.value) == problem
        checked += 2
    if setting.sampling:  # the engine's own check
        with pytest.raises(Exception) as info:
            SamplingParams(**{name: value})
        assert str(info.value) == f"{name} {problem}"
    if setting.request:  # a server request, naming the field as sent
        app = request.getfixturevalue("server")
        for field in setting.request:
            assert server_problem(app, {field: value}) == f"'{field}' {problem}"
            checked += 1
    assert checked >= 2, "a setting must be given in at least two places to be in this test"


def test_llama_cpp_meanings_are_accepted_everywhere(tmp_path, server):
    """Negative temperature = greedy, top_k <= 0 = all tokens, seed -1 = random, max_tokens 0."""
    path = tmp_path / "config.toml"
    path.write_text("temperature = -1\ntop_k = -1\nmax_tokens = 0\n")
    assert load_config(path).values == {"temperature": -1.0, "top_k": -1, "max_tokens": 0}
    args = tui_parser().parse_args(["--temp", "-1", "--top-k", "-5", "-s", "-1", "-n", "0"])
    assert (args.temp, args.top_k, args.seed, args.n_predict) == (-1.0, -5, -1, 0)
    args = engine_parser(RUN).parse_args(["--temp", "-0.5", "--top-k", "-1", "--seed", "-1", "-n", "0"])
    assert (args.temp, args.top_k, args.seed, args.n_predict) == (-0.5, -1, -1, 0)
    req = server.completion_request({"prompt": "x", "temperature": -1, "top_k": -1, "seed": -1, "max_tokens": 0})
    assert (req.params.temperature, req.params.top_k, req.params.seed, req.max_tokens) == (-1.0, -1, None, 0)
    assert req.params.greedy
    standard, extra = request_fields(SamplingParams(temperature=-1, top_k=-1, seed=-1), 0, ())
    assert standard["temperature"] == 0 and extra["top_k"] == -1 and "seed" not in standard  # OpenAI's spelling


def test_the_defaults_are_the_tables(server):
    run = engine_parser(RUN).parse_args([])
    tui = Settings()
    engine = SamplingParams()
    req = server.completion_request({"prompt": "x"})
    for setting in SETTINGS:
        if setting.sampling:
            assert getattr(engine, setting.name) == setting.default, setting.name
            assert getattr(req.params, setting.name) == setting.default, setting.name
        if setting.config_key:
            assert getattr(tui, setting.config_key) == setting.default, setting.name
        if RUN in setting.commands and not setting.by_hand:
            assert getattr(run, setting.dest) == setting.default, setting.name
    assert req.max_tokens == SETTINGS_BY_NAME["max_tokens"].default
    from codeup_tui.engine.speculative import DraftParams

    assert DraftParams().draft_max == SETTINGS_BY_NAME["draft_max"].default
    assert (SamplingParams().temperature, SamplingParams().top_k, SamplingParams().top_p) == (0.8, 40, 0.95)


def other_value(setting: Setting):
    """A valid value of `setting` that is not its default."""
    if setting.choices is not None:
        return next(c for c in setting.choices() if c != setting.default)
    if setting.kind is Path:
        return Path("other.gguf")
    candidates = [0, 1, 2, 17, 0.5, 0.25, -1, setting.minimum, setting.maximum]
    for value in candidates:
        if value is None:
            continue
        value = setting.kind(value)
        try:
            if setting.check(value) is not None and value != setting.default:
                return value
        except SettingError:
            pass
    raise AssertionError(f"no value for {setting.name}")


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_each_setting_of_the_table_is_known_to_each_entry_point(setting: Setting, tmp_path, server):
    value = other_value(setting)
    shown = str(value)
    for command, parser in parsers().items():
        options = {s for action in parser._actions for s in action.option_strings}
        if command in setting.commands:
            assert set(setting.flags_for(command)) <= options, (command, setting.flags_for(command))
            if not setting.by_hand:
                assert getattr(parser.parse_args([setting.flags[0], shown]), setting.dest) == value
        else:
            assert not set(setting.flags) & options, (command, setting.flags)
    if setting.config_key:
        assert setting.config_key in FIELDS_BY_NAME and setting.label and setting.hint
        path = tmp_path / "config.toml"
        path.write_text(f"{setting.config_key} = {shown!r}\n" if isinstance(value, (str, Path))
                        else f"{setting.config_key} = {value!r}\n")
        settings = load_config(path).settings
        assert getattr(settings, setting.config_key) == value
    if setting.sampling:
        assert setting.name in {f.name for f in dataclasses.fields(SamplingParams)}
        assert getattr(SamplingParams(**{setting.name: value}), setting.name) == value
    for field in setting.request:  # the server reads every spelling
        req = server.completion_request({"prompt": "x", field: value})
        got = getattr(req.params, setting.name) if setting.sampling else getattr(req, setting.name)
        assert got == value, field
    if setting.request:  # and the remote client sends the first
        params = SamplingParams(**{setting.name: value}) if setting.sampling else None
        max_tokens = value if setting.name == "max_tokens" else -1
        standard, extra = request_fields(params, max_tokens, ())
        sent = standard if setting.openai else extra
        expected = setting.sent_as(value) if setting.sent_as else value
        assert sent[setting.request[0]] == expected
