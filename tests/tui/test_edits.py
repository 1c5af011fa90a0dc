"""Inserting generated code into files, headless (tui/edits): code blocks, every insertion
mode on real files, line endings, final newlines, modes, failing writes, patches, undo."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from codeup_tui.tui.edits import (
    InsertError,
    InsertMode,
    UndoError,
    UndoStore,
    apply_plan,
    find_code_blocks,
    parse_patch,
    plan_insert,
)
from codeup_tui.tui.edits.file_write import WriteError, atomic_write, read_text, split_lines
from codeup_tui.tui.edits.insert import parse_line_range, replan_with_text
from codeup_tui.tui.edits.patch import PatchError, apply_patch

# -- code blocks ------------------------------------------------------------------------------


def test_blocks_with_languages_in_order():
    answer = ("Here:\n\n```python\ndef f():\n    return 1\n```\n\nand a shell line\n\n~~~bash\nls -l\n~~~\n"
              "\n```\nplain\n```\n")
    blocks = find_code_blocks(answer)
    assert [(b.language, b.text, b.closed) for b in blocks] == [
        ("python", "def f():\n    return 1\n", True),
        ("bash", "ls -l\n", True),
        ("", "plain\n", True),
    ]
    assert [b.index for b in blocks] == [0, 1, 2]
    assert blocks[0].label() == "python, 2 lines"


def test_nested_fence_is_one_block_and_inner_fence_is_content():
    answer = "````markdown\nUse:\n```python\nx = 1\n```\n````\nafter\n```js\nlet a\n```\n"
    blocks = find_code_blocks(answer)
    assert [b.language for b in blocks] == ["markdown", "js"]
    assert blocks[0].text == "Use:\n```python\nx = 1\n```\n"


def test_unterminated_block_runs_to_the_end():
    blocks = find_code_blocks("Start\n```python\ndef g():\n    pass\n")
    assert len(blocks) == 1
    assert blocks[0].text == "def g():\n    pass\n"
    assert not blocks[0].closed
    assert "unfinished" in blocks[0].label()


def test_indented_fence_in_a_list_loses_its_indent_and_inline_backticks_are_not_fences():
    answer = "1. Add this:\n   ```py\n   x = 1\n     y = 2\n   ```\n\nUse ```inline``` code.\n"
    blocks = find_code_blocks(answer)
    assert len(blocks) == 1
    assert blocks[0].text == "x = 1\n  y = 2\n"


def test_path_hints_and_diff_detection():
    answer = "src/app.py:\n```python\nx = 1\n```\n```python title=\"lib/util.py\"\ny\n```\n" \
             "```\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n```\n"
    blocks = find_code_blocks(answer)
    assert [b.path_hint for b in blocks] == ["src/app.py", "lib/util.py", None]
    assert [b.is_diff for b in blocks] == [False, False, True]


# -- every insertion mode writes exactly the previewed bytes -----------------------------------


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def check_applied(tmp_path: Path, plan, undo: UndoStore | None = None):
    undo = undo or UndoStore(tmp_path)
    entry = apply_plan(plan, undo)
    assert plan.path.read_bytes() == plan.new_bytes
    # The preview is exact: the diff shown, applied to the old text, gives the bytes written.
    old = plan.before.text if plan.before else ""
    newline = plan.before.newline if plan.before else "\n"
    patched = apply_patch(split_lines(old), parse_patch(plan.diff)[0], newline)
    assert "".join(patched).encode() == plan.new_bytes
    return entry


BLOCK = "def added():\n    return 2\n"


@pytest.mark.parametrize(
    ("mode", "line", "end", "expected"),
    [
        (InsertMode.replace, None, None, BLOCK),
        (InsertMode.append, None, None, "a = 1\nb = 2\nc = 3\n" + BLOCK),
        (InsertMode.at_line, 2, None, "a = 1\n" + BLOCK + "b = 2\nc = 3\n"),
        (InsertMode.at_line, 1, None, BLOCK + "a = 1\nb = 2\nc = 3\n"),
        (InsertMode.at_line, 4, None, "a = 1\nb = 2\nc = 3\n" + BLOCK),
        (InsertMode.replace_lines, 2, 3, "a = 1\n" + BLOCK),
        (InsertMode.replace_lines, 1, 1, BLOCK + "b = 2\nc = 3\n"),
    ],
)
def test_each_mode_writes_the_previewed_bytes(tmp_path: Path, mode, line, end, expected):
    target = write(tmp_path / "m.py", b"a = 1\nb = 2\nc = 3\n")
    plan = plan_insert(tmp_path, "m.py", BLOCK, mode, line, end)
    assert plan.new_text == expected
    check_applied(tmp_path, plan)
    assert target.read_text() == expected


def test_patch_mode_applies_a_diff(tmp_path: Path):
    write(tmp_path / "m.py", b"a = 1\nb = 2\nc = 3\n")
    diff = "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n a = 1\n-b = 2\n+b = 20\n c = 3\n"
    plan = plan_insert(tmp_path, "m.py", diff, InsertMode.patch)
    check_applied(tmp_path, plan)
    assert (tmp_path / "m.py").read_text() == "a = 1\nb = 20\nc = 3\n"


def test_new_file_in_a_new_folder(tmp_path: Path):
    plan = plan_insert(tmp_path, "pkg/new.py", BLOCK, InsertMode.replace)
    assert plan.before is None and "new file" in plan.summary
    entry = check_applied(tmp_path, plan)
    assert (tmp_path / "pkg" / "new.py").read_text() == BLOCK
    UndoStore(tmp_path).undo(entry)
    assert not (tmp_path / "pkg" / "new.py").exists()


def test_crlf_file_stays_crlf_and_untouched_lines_keep_their_bytes(tmp_path: Path):
    target = write(tmp_path / "w.py", b"a = 1\r\nb = 2\r\nc = 3\r\n")
    plan = plan_insert(tmp_path, "w.py", BLOCK, InsertMode.at_line, 2)
    assert "CRLF kept" in plan.summary
    check_applied(tmp_path, plan)
    assert target.read_bytes() == b"a = 1\r\ndef added():\r\n    return 2\r\nb = 2\r\nc = 3\r\n"
    diff = "@@ -2 +2 @@\n-b = 2\n+b = 3\n"
    plan = plan_insert(tmp_path, "w.py", diff, InsertMode.patch)
    check_applied(tmp_path, plan)
    assert target.read_bytes().count(b"\r\n") == 5 and b"b = 3\r\n" in target.read_bytes()


def test_no_final_newline_is_kept(tmp_path: Path):
    target = write(tmp_path / "n.py", b"a = 1\nb = 2")
    plan = plan_insert(tmp_path, "n.py", BLOCK, InsertMode.append)
    check_applied(tmp_path, plan)
    assert target.read_bytes() == b"a = 1\nb = 2\ndef added():\n    return 2"
    plan = plan_insert(tmp_path, "n.py", "x = 0\n", InsertMode.replace_lines, 1, 1)
    check_applied(tmp_path, plan)
    assert target.read_bytes().startswith(b"x = 0\nb = 2\n") and not target.read_bytes().endswith(b"\n")
    assert "\\ No newline at end of file" in plan_insert(tmp_path, "n.py", "y\n", InsertMode.replace).diff


def test_mode_bits_are_kept(tmp_path: Path):
    target = write(tmp_path / "run.sh", b"#!/bin/sh\necho hi\n", mode=0o751)
    check_applied(tmp_path, plan_insert(tmp_path, "run.sh", "echo more\n", InsertMode.append))
    assert stat.S_IMODE(target.stat().st_mode) == 0o751


def test_bad_line_numbers_and_paths_are_refused(tmp_path: Path):
    write(tmp_path / "m.py", b"a\nb\n")
    with pytest.raises(InsertError, match="line 9 is not in m.py"):
        plan_insert(tmp_path, "m.py", BLOCK, InsertMode.at_line, 9)
    with pytest.raises(InsertError, match="lines 2-5 are not in m.py"):
        plan_insert(tmp_path, "m.py", BLOCK, InsertMode.replace_lines, 2, 5)
    with pytest.raises(InsertError, match="outside the project"):
        plan_insert(tmp_path, "../elsewhere.py", BLOCK, InsertMode.replace)
    with pytest.raises(InsertError, match="nothing would change"):
        plan_insert(tmp_path, "m.py", "a\nb\n", InsertMode.replace)
    assert parse_line_range(" 12 - 20 ", InsertMode.replace_lines) == (12, 20)
    assert parse_line_range("7", InsertMode.replace_lines) == (7, 7)
    with pytest.raises(InsertError, match="not a line number"):
        parse_line_range("x", InsertMode.at_line)


def test_binary_and_non_utf8_targets_are_refused(tmp_path: Path):
    write(tmp_path / "b.bin", b"\x00\x01")
    write(tmp_path / "l.txt", "caf\xe9\n".encode("latin-1"))
    with pytest.raises(InsertError, match="binary"):
        plan_insert(tmp_path, "b.bin", BLOCK, InsertMode.append)
    with pytest.raises(InsertError, match="not UTF-8"):
        plan_insert(tmp_path, "l.txt", BLOCK, InsertMode.append)


def test_edited_result_is_what_gets_written(tmp_path: Path):
    write(tmp_path / "m.py", b"a\n")
    plan = replan_with_text(plan_insert(tmp_path, "m.py", BLOCK, InsertMode.append), "a\nedited\n")
    assert "edited" in plan.summary and "+edited" in plan.diff
    check_applied(tmp_path, plan)
    assert (tmp_path / "m.py").read_text() == "a\nedited\n"


# -- failing writes leave the original intact ---------------------------------------------------


def test_read_only_file_is_refused_and_untouched(tmp_path: Path):
    target = write(tmp_path / "ro.py", b"keep\n", mode=0o444)
    plan = plan_insert(tmp_path, "ro.py", BLOCK, InsertMode.append)
    with pytest.raises(InsertError, match="read-only"):
        apply_plan(plan, UndoStore(tmp_path))
    assert target.read_bytes() == b"keep\n"
    assert UndoStore(tmp_path).last() is None  # no snapshot left for a write that never happened
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".codeup-tmp")]


@pytest.mark.parametrize(("err", "words"), [(errno.ENOSPC, "the disk is full"),
                                            (errno.EROFS, "the file system is read-only"),
                                            (errno.EACCES, "permission denied")])
def test_failing_write_keeps_the_original_and_says_why(tmp_path: Path, monkeypatch, err, words):
    target = write(tmp_path / "f.py", b"original\n")
    plan = plan_insert(tmp_path, "f.py", BLOCK, InsertMode.append)
    undo = UndoStore(tmp_path)
    undo.ensure_excluded()
    real_write = os.write

    def failing_write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".codeup-tmp") and "f.py" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(err, os.strerror(err))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(InsertError) as caught:
        apply_plan(plan, undo)
    monkeypatch.undo()
    assert words in str(caught.value) and "f.py is unchanged" in str(caught.value)
    assert target.read_bytes() == b"original\n"
    assert undo.last() is None
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".codeup-tmp")] == []


def test_failing_rename_keeps_the_original(tmp_path: Path, monkeypatch):
    target = write(tmp_path / "f.py", b"original\n")

    def failing_replace(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(WriteError, match="read-only"):
        atomic_write(target, b"new\n", display="f.py")
    assert target.read_bytes() == b"original\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.py"]


def test_file_changed_after_the_preview_is_not_written(tmp_path: Path):
    target = write(tmp_path / "m.py", b"a\n")
    plan = plan_insert(tmp_path, "m.py", BLOCK, InsertMode.append)
    target.write_bytes(b"a\nsomeone else\n")
    with pytest.raises(InsertError, match="changed on disk since the preview"):
        apply_plan(plan, UndoStore(tmp_path))
    assert target.read_bytes() == b"a\nsomeone else\n"


# -- patches ------------------------------------------------------------------------------------


SOURCE = "".join(f"line {n}\n" for n in range(1, 21))


def test_patch_with_offset_and_without_line_numbers():
    lines = split_lines(SOURCE)
    moved = parse_patch("@@ -3,3 +3,3 @@\n line 6\n-line 7\n+LINE 7\n line 8\n")[0]  # really at 6-8
    assert "".join(apply_patch(lines, moved)) == SOURCE.replace("line 7\n", "LINE 7\n")
    bare = parse_patch("@@ ... @@\n line 10\n+inserted\n line 11\n")[0]
    assert "line 10\ninserted\nline 11\n" in "".join(apply_patch(lines, bare))


def test_patch_with_wrong_counts_and_stripped_blank_context():
    text = "def f():\n\n    return 1\n"
    patch = parse_patch("--- a/f.py\n+++ b/f.py\n@@ -1,9 +1,9 @@\n def f():\n\n-    return 1\n+    return 2\n")[0]
    assert "".join(apply_patch(split_lines(text), patch)) == "def f():\n\n    return 2\n"


def test_non_applying_patch_is_rejected_with_the_file_untouched(tmp_path: Path):
    target = write(tmp_path / "m.py", SOURCE.encode())
    diff = "--- a/m.py\n+++ b/m.py\n@@ -5,2 +5,2 @@\n-line five\n+line 5!\n line 6\n"
    with pytest.raises(InsertError, match=r"does not apply.*hunk 1.*line 5 should be 'line five'"):
        plan_insert(tmp_path, "m.py", diff, InsertMode.patch)
    two_hunks = "@@ -1 +1 @@\n-line 1\n+ONE\n@@ -9 +9 @@\n-nope\n+NINE\n"
    with pytest.raises(InsertError, match="hunk 2"):
        plan_insert(tmp_path, "m.py", two_hunks, InsertMode.patch)
    assert target.read_bytes() == SOURCE.encode()


def test_ambiguous_and_empty_patches_are_rejected():
    lines = split_lines("x\ny\nx\ny\n")
    with pytest.raises(PatchError, match="matches 2 places"):
        apply_patch(lines, parse_patch("@@ @@\n x\n-y\n+z\n")[0])
    with pytest.raises(PatchError, match="no hunk"):
        parse_patch("just prose\n")


def test_patch_creating_a_file_and_picking_the_file_of_a_multi_file_diff(tmp_path: Path):
    create = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+a = 1\n+b = 2\n"
    plan = plan_insert(tmp_path, "new.py", create, InsertMode.patch)
    check_applied(tmp_path, plan)
    assert (tmp_path / "new.py").read_text() == "a = 1\nb = 2\n"
    both = ("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-q\n+r\n"
            "--- a/new.py\n+++ b/new.py\n@@ -1 +1 @@\n-a = 1\n+a = 10\n")
    check_applied(tmp_path, plan_insert(tmp_path, "new.py", both, InsertMode.patch))
    assert (tmp_path / "new.py").read_text() == "a = 10\nb = 2\n"
    with pytest.raises(InsertError, match="changes 2 files"):
        plan_insert(tmp_path, "other.py", both, InsertMode.patch)


def test_no_newline_marker_is_honoured():
    patch = parse_patch("@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n")[0]
    assert "".join(apply_patch(split_lines("a\nb"), patch)) == "a\nc\n"


# -- undo ---------------------------------------------------------------------------------------


def test_undo_restores_byte_for_byte_and_refuses_after_an_edit(tmp_path: Path):
    original = b"\xef\xbb\xbfa = 1\r\nb = 2"  # a BOM, CRLF, no final newline
    target = write(tmp_path / "u.py", original, mode=0o600)
    undo = UndoStore(tmp_path)
    entry = check_applied(tmp_path, plan_insert(tmp_path, "u.py", BLOCK, InsertMode.at_line, 2), undo)
    assert undo.last() == entry
    assert undo.undo(entry) == original
    assert target.read_bytes() == original and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert undo.last() is None
    entry = check_applied(tmp_path, plan_insert(tmp_path, "u.py", BLOCK, InsertMode.append), undo)
    changed = target.read_bytes() + b"\r\n# mine"
    target.write_bytes(changed)
    with pytest.raises(UndoError, match="changed since the insert"):
        undo.undo(entry)
    assert target.read_bytes() == changed
    target.unlink()
    with pytest.raises(UndoError, match="deleted"):
        undo.undo(entry)


def test_undo_snapshots_survive_a_restart_and_stay_out_of_git(tmp_path: Path):
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("# git ls-files --others --exclude-from=.git/info/exclude\n")
    write(tmp_path / "m.py", b"a\n")
    apply_plan(plan_insert(tmp_path, "m.py", BLOCK, InsertMode.append), UndoStore(tmp_path))
    exclude = (tmp_path / ".git" / "info" / "exclude").read_text()
    assert exclude.splitlines()[-1] == ".codeup/" and exclude.startswith("# git ls-files")
    assert (tmp_path / ".codeup" / ".gitignore").read_text().splitlines()[-1] == "*"
    again = UndoStore(tmp_path)  # a new session
    again.undo(again.last())
    assert (tmp_path / "m.py").read_bytes() == b"a\n"
    UndoStore(tmp_path).ensure_excluded()
    assert (tmp_path / ".git" / "info" / "exclude").read_text().count(".codeup/") == 1


@pytest.mark.skipif(not __import__("shutil").which("git"), reason="git is not installed")
def test_git_status_never_shows_the_snapshots(tmp_path: Path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write(tmp_path / "m.py", b"a\n")
    apply_plan(plan_insert(tmp_path, "m.py", BLOCK, InsertMode.append), UndoStore(tmp_path))
    out = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["?? m.py"]


def test_read_text_keeps_what_is_needed(tmp_path: Path):
    write(tmp_path / "c.txt", b"x\r\ny\r\n", mode=0o640)
    text = read_text(tmp_path / "c.txt")
    assert text.newline == "\r\n" and text.final_newline and text.mode == 0o640
    assert read_text(tmp_path / "absent.txt") is None
