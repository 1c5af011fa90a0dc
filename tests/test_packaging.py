"""The distribution: what the wheel holds (one top-level name, codeup_tui), and that an
installed copy finds its templates and runs as `python -m`."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


def test_engine_never_imports_textual():
    code = ("import sys, codeup_tui.engine, codeup_tui.engine.cli, codeup_tui.engine.formats, "
            "codeup_tui.engine.default_model, codeup_tui.engine.templates; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'textual' or m.startswith('codeup_tui.tui')]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


def test_default_template_renders_alpaca():
    from codeup_tui.engine.templates import load_template, template_names

    assert "alpaca" in template_names()
    t = load_template()
    plain = t.render("Write fib.")
    assert plain.endswith("### Instruction:\nWrite fib.\n\n### Response:\n")
    with_input = t.render("Fix {this}.", "def f(): pass")
    assert "### Input:\ndef f(): pass\n\n### Response:\n" in with_input and "Fix {this}." in with_input
    assert "### Instruction:" in t.stop


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 and ("No matching distribution" in proc.stderr or "network" in proc.stderr.lower()):
        pytest.skip(f"cannot fetch the build backend: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("codeup_tui-*.whl")
    return whl


def test_wheel_holds_every_module_templates_and_scripts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("engine", "tui"):
        for src in (REPO / folder).rglob("*"):
            if src.suffix in (".py", ".tcss") and "__pycache__" not in src.parts:
                assert f"codeup_tui/{src.relative_to(REPO).as_posix()}" in names, f"{src} missing from the wheel"
    for template in (REPO / "templates").glob("*.toml"):
        assert f"codeup_tui/templates/{template.name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "codeup = codeup_tui.engine.cli:entry_point" in text and "codeup-tui = codeup_tui.tui.cli:main" in text


def test_wheel_installs_one_top_level_name(wheel):
    """Nothing of another distribution's: no `engine` or `tui` beside other projects' packages."""
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"codeup_tui", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
    assert "codeup_tui/__init__.py" not in zipfile.ZipFile(wheel).namelist()  # a namespace package


def test_installed_wheel_finds_templates_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import codeup_tui.engine as engine, codeup_tui.engine.templates as t; "
        "print(engine.__file__); print(t.templates_dir()); print(t.load_template('alpaca').name)"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert proc.returncode == 0, proc.stderr
    engine_file, templates, name = proc.stdout.split("\n")[:3]
    assert Path(engine_file).is_relative_to(site), "the installed copy was not the one imported"
    assert Path(templates) == site / "codeup_tui" / "templates" and name == "alpaca"
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "--version"], capture_output=True,
                          text=True, cwd=elsewhere, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("codeup "), proc.stdout + proc.stderr
