"""codeup-tui in a real terminal (tmux, 80x24) without colour, and with 16 colours.

NO_COLOR=1 in a 256-colour terminal: not one colour escape may reach the terminal, and
the screen must still be usable: the panels' borders and titles, the focused panel (heavy
border), the file under the tree's cursor (reverse video), the finder's highlighted file
(bold, underlined across the row), an input's cursor (reverse video), the selected file (a
check mark), the status line and the footer.

TERM=screen (16 colours): only the basic 16-colour escapes, and no letter drawn in the
colour of its own background (a grey on grey that turns black on black, say), on the main
screen and in the finder, settings and help.

The app runs on demo/ with a tiny generated model (tests/helpers/model_builders.py), so nothing is
downloaded; the screen is read with ``tmux capture-pane -e``, escapes included.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.helpers.paths import REPO
from tests.helpers.model_builders import small_llama_gguf
from tests.helpers.terminal import MODEL_LOADED_TIMEOUT, Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

CSI = re.compile(r"\x1b\[([0-9;:?]*)([A-Za-z])")
OTHER_ESCAPE = re.compile(r"\x1b(\][^\x07\x1b]*(\x07|\x1b\\)|[^\[])")
BASIC_COLOURS = {*range(30, 38), *range(40, 48), *range(90, 98), *range(100, 108)}
ATTRIBUTES = {0, 1, 2, 3, 4, 5, 7, 8, 9, 21, 22, 23, 24, 25, 27, 28, 29, 39, 49}


@dataclass(frozen=True)
class Pen:
    """The SGR state of a cell: colours (None: the terminal's default; an int 0-15 for the
    basic colours, a tuple for 256 or RGB colours) and the attributes that matter here."""

    fg: object = None
    bg: object = None
    bold: bool = False
    underline: bool = False
    reverse: bool = False

    def apply(self, params: list[int]) -> Pen:
        pen = self
        i = 0
        while i < len(params):
            code = params[i]
            if code == 0:
                pen = Pen()
            elif code == 1:
                pen = replace(pen, bold=True)
            elif code in (21, 22):
                pen = replace(pen, bold=False)
            elif code == 4:
                pen = replace(pen, underline=True)
            elif code == 24:
                pen = replace(pen, underline=False)
            elif code == 7:
                pen = replace(pen, reverse=True)
            elif code == 27:
                pen = replace(pen, reverse=False)
            elif 30 <= code <= 37 or 90 <= code <= 97:
                pen = replace(pen, fg=code - 30 if code < 90 else code - 82)
            elif 40 <= code <= 47 or 100 <= code <= 107:
                pen = replace(pen, bg=code - 40 if code < 100 else code - 92)
            elif code == 39:
                pen = replace(pen, fg=None)
            elif code == 49:
                pen = replace(pen, bg=None)
            elif code in (38, 48):
                n = 3 if params[i + 1:i + 2] == [5] else 5  # 38;5;N or 38;2;R;G;B
                colour = tuple(params[i + 1:i + n])
                pen = replace(pen, **{"fg" if code == 38 else "bg": colour})
                i += n - 1
            i += 1
        return pen


@dataclass
class Screen:
    """What ``capture-pane -p -e`` printed: each line as (character, pen) pairs, and every
    SGR parameter list seen."""

    lines: list[list[tuple[str, Pen]]]
    sgr: list[list[int]]

    @classmethod
    def parse(cls, captured: str) -> Screen:
        pen = Pen()
        lines, sgr = [], []
        for raw in captured.split("\n"):
            raw = OTHER_ESCAPE.sub("", raw)
            cells: list[tuple[str, Pen]] = []
            pos = 0
            for match in CSI.finditer(raw):
                cells += [(char, pen) for char in raw[pos:match.start()]]
                pos = match.end()
                if match.group(2) == "m":
                    params = [int(p) if p else 0 for p in re.split("[;:]", match.group(1))]
                    sgr.append(params)
                    pen = pen.apply(params)
            cells += [(char, pen) for char in raw[pos:]]
            lines.append(cells)
        return cls(lines, sgr)

    def text(self, row: int) -> str:
        return "".join(char for char, _pen in self.lines[row])

    @property
    def plain(self) -> str:
        return "\n".join(self.text(row) for row in range(len(self.lines)))

    def find(self, needle: str, after: int = 0) -> list[tuple[str, Pen]]:
        """The cells of the first occurrence of `needle` at or below line `after`."""
        for row in range(after, len(self.lines)):
            col = self.text(row).find(needle)
            if col >= 0:
                return self.lines[row][col:col + len(needle)]
        raise AssertionError(f"{needle!r} not on screen:\n{self.plain}")

    def row_of(self, needle: str) -> int:
        return next(row for row in range(len(self.lines)) if needle in self.text(row))


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-llama.gguf"
    path.write_bytes(small_llama_gguf().build())
    return path


def start(env: str, model: Path) -> Tmux:
    """codeup-tui on demo/ in tmux at 80x24 with `env` (the colour variables of the
    environment the tests run in are dropped), once the model is ready."""
    unset = "-u COLORTERM -u NO_COLOR -u TEXTUAL_COLOR_SYSTEM"
    command = (f"cd {shlex.quote(str(REPO))} && env {unset} {env} {shlex.quote(sys.executable)} -m codeup_tui.tui demo "
               f"--model {shlex.quote(str(model))}; sleep 30")
    tmux = Tmux(command, width=80, height=24)
    try:
        tmux.wait_for(lambda s: "ctx 0/" in s, timeout=MODEL_LOADED_TIMEOUT)
    except BaseException:
        tmux.kill()
        raise
    return tmux


def capture(tmux: Tmux) -> Screen:
    return Screen.parse(tmux.run("capture-pane", "-p", "-e", "-t", "t"))


def colour_codes(screen: Screen) -> list[list[int]]:
    return [params for params in screen.sgr
            if any(code in BASIC_COLOURS or code in (38, 48) for code in params)]


def test_no_color_draws_no_colour_and_stays_readable(tiny_model: Path):
    tmux = start("NO_COLOR=1 TERM=screen-256color", tiny_model)
    try:
        # The tree: focus it, put its cursor on README.md (the last entry) and add it.
        tmux.keys("C-f")
        tmux.wait_for(lambda s: "┏━ demo" in s)  # the focused panel's border is heavy
        tmux.keys("End", "Space")
        tmux.wait_for(lambda s: "Context: 1" in s and "✓" in s and "files " in s)
        screen = capture(tmux)
        assert colour_codes(screen) == [], f"colour escapes with NO_COLOR: {colour_codes(screen)[:5]}"
        plain = screen.plain
        for visible in ("┏━ demo", "╭─ Conversation", "╭─ Instruction", "Context: 1", "test-llama",
                        "ctx 0/", "Send", "Find file"):
            assert visible in plain, f"{visible!r} missing:\n{plain}"
        readme = screen.find("README.md")
        assert all(pen.reverse for _char, pen in readme), "the tree's cursor row is not in reverse video"
        assert "✓" in screen.text(screen.row_of("README.md")), "the selected file has no check mark"
        assert not any(pen.reverse for _char, pen in screen.find("pyproject.toml")), "a row off the cursor is marked"

        # The finder: the highlighted file (the one Enter picks) bold and underlined across
        # the whole row (the matched letters of the others are underlined one by one).
        tmux.keys("C-o")
        tmux.wait_for(lambda s: "Find a file" in s and " files" in s)
        tmux.keys("wordfreq")
        tmux.wait_for(lambda s: "2 of " in s)
        screen = capture(tmux)
        assert colour_codes(screen) == []
        first, second = sorted(screen.row_of(name) for name in ("scripts/wordfreq.sh", "tests/test_wordfreq.py"))
        highlighted = [pen for _char, pen in screen.lines[first] if pen.underline]
        assert len(highlighted) > 60 and all(pen.bold for pen in highlighted), screen.plain
        assert len([pen for _char, pen in screen.lines[second] if pen.underline]) == len("wordfreq")
        tmux.keys("Escape")
        tmux.wait_for(lambda s: "Find a file" not in s)
    finally:
        tmux.kill()


def test_sixteen_colours_use_basic_colours_only_and_no_text_vanishes(tiny_model: Path):
    tmux = start("TERM=screen", tiny_model)
    try:
        tmux.keys("C-f")
        tmux.wait_for(lambda s: "┏━ demo" in s)
        tmux.keys("End", "Space")
        tmux.wait_for(lambda s: "Context: 1" in s and "✓" in s and "files " in s)
        screen = capture(tmux)
        assert_sixteen_colours_readable(screen)
        for title in ("Conversation", "Instruction", "Context", "prompt "):  # blurred: grey, not black
            assert title in screen.plain
        # The tree's cursor row stands out from the row above it.
        cursor = screen.find("README.md")[0][1]
        other = screen.find("pyproject.toml")[0][1]
        assert (cursor.bg, cursor.reverse) != (other.bg, other.reverse), "the cursor row looks like any other"
        # The modals too: the finder, the settings, the keys.
        for key, title in (("C-o", "Find a file"), ("F2", "Settings"), ("F1", "Keys (F1)")):
            tmux.keys(key)
            tmux.wait_for(lambda s: f"━ {title}" in s)
            assert_sixteen_colours_readable(capture(tmux))
            tmux.keys("Escape")
            tmux.wait_for(lambda s: f"━ {title}" not in s)
    finally:
        tmux.kill()


def assert_sixteen_colours_readable(screen: Screen) -> None:
    """Only basic 16-colour escapes, some colour, and every letter and digit drawn in a
    colour other than its background's."""
    codes = {code for params in screen.sgr for code in params}
    assert codes <= BASIC_COLOURS | ATTRIBUTES, f"beyond 16 colours: {sorted(codes - BASIC_COLOURS - ATTRIBUTES)}"
    assert codes & BASIC_COLOURS, "no colour at all: the app did not use the 16 colours"
    hidden = [
        (row, char) for row, line in enumerate(screen.lines) for char, pen in line
        if char.isalnum() and pen.fg is not None and pen.fg == pen.bg and not pen.reverse
    ]
    assert not hidden, f"text drawn in its background's colour: {hidden[:10]}\n{screen.plain}"


async def test_no_color_shows_the_input_cursor_in_reverse_video(monkeypatch):
    """The finder's query and the settings fields: their cursor is a colour of its own in
    Textual's ANSI styles, which NO_COLOR drops; reverse video keeps it in sight."""
    from tests.helpers.tui_fakes import FakeBackend

    from codeup_tui.tui.app import CodeupApp
    from codeup_tui.tui.screens import FileFinder

    monkeypatch.setenv("NO_COLOR", "1")
    app = CodeupApp(REPO / "demo", backend=FakeBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.no_color
        await pilot.press("ctrl+o")
        await pilot.pause(0.1)
        assert isinstance(app.screen, FileFinder)
        query = app.screen.query_one("#finder-query")
        assert query.has_focus and query.get_component_rich_style("input--cursor").reverse
