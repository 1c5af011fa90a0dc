"""tui/project: the .gitignore matcher (nested files, negation, anchoring, dir-only, **),
the project walk, file checks (binary, too large), fuzzy matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeup_tui.tui.project import (
    MAX_FILE_BYTES,
    FileRefusal,
    IgnoreRules,
    ProjectFiles,
    ProjectIgnore,
    check_file,
    fuzzy_filter,
    fuzzy_score,
    read_text_file,
)


def ignored(patterns: str, path: str, is_dir: bool = False) -> bool | None:
    return IgnoreRules.parse(patterns).match(path, is_dir)


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "expected"),
    [
        # a bare name matches at any depth, files and directories
        ("*.log", "a.log", False, True),
        ("*.log", "deep/er/a.log", False, True),
        ("*.log", "a.log.txt", False, None),
        ("build", "src/build", True, True),
        # a trailing slash: directories only
        ("build/", "build", True, True),
        ("build/", "build", False, None),
        ("build/", "x/build", True, True),
        # a leading or middle slash anchors to the .gitignore's directory
        ("/todo.txt", "todo.txt", False, True),
        ("/todo.txt", "sub/todo.txt", False, None),
        ("doc/frotz", "doc/frotz", False, True),
        ("doc/frotz", "a/doc/frotz", False, None),
        ("doc/*.txt", "doc/a.txt", False, True),
        ("doc/*.txt", "doc/sub/a.txt", False, None),  # * does not cross /
        # **
        ("**/foo", "foo", False, True),
        ("**/foo", "a/b/foo", False, True),
        ("**/foo/bar", "x/foo/bar", False, True),
        ("abc/**", "abc/x/y", False, True),
        ("abc/**", "abc", True, None),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/**/b", "a/x/c", False, None),
        # ? and character classes
        ("file?.py", "file1.py", False, True),
        ("file?.py", "file12.py", False, None),
        ("[abc].py", "b.py", False, True),
        ("[!abc].py", "b.py", False, None),
        ("[!abc].py", "d.py", False, True),
        # negation: the last matching line wins
        ("*.log\n!keep.log", "keep.log", False, False),
        ("*.log\n!keep.log", "other.log", False, True),
        ("!keep.log\n*.log", "keep.log", False, True),
        # comments, blank lines, escapes, trailing spaces
        ("# comment\n\n", "# comment", False, None),
        ("\\#notes", "#notes", False, True),
        ("\\!bang", "!bang", False, True),
        ("spaced   ", "spaced", False, True),
    ],
)
def test_gitignore_patterns(patterns, path, is_dir, expected):
    assert ignored(patterns, path, is_dir) is expected


def make_tree(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def test_nested_gitignores_and_excluded_parents(tmp_path: Path):
    make_tree(tmp_path, {
        ".gitignore": "*.log\nbuild/\n/secret.txt\n",
        "secret.txt": "s",
        "src/secret.txt": "not anchored here",
        "src/.gitignore": "!important.log\ngenerated/\n",
        "src/important.log": "kept by the nested negation",
        "src/noise.log": "x",
        "src/generated/out.py": "x",
        "src/main.py": "x",
        "build/keep.py": "x",
        "build/.gitignore": "!keep.py\n",  # cannot re-include inside an excluded directory
        ".git/HEAD": "ref",
        "docs/.gitignore": "/local.md\n",
        "docs/local.md": "x",
        "docs/sub/local.md": "anchored to docs/: kept",
    })
    rules = ProjectIgnore(tmp_path)
    assert rules.is_ignored("secret.txt")
    assert not rules.is_ignored("src/secret.txt")
    assert not rules.is_ignored("src/important.log")
    assert rules.is_ignored("src/noise.log")
    assert rules.is_ignored("src/generated", is_dir=True)
    assert rules.is_ignored("src/generated/out.py")
    assert rules.is_ignored("build/keep.py")
    assert rules.is_ignored(".git", is_dir=True) and rules.is_ignored(".git/HEAD")
    assert rules.is_ignored("docs/local.md") and not rules.is_ignored("docs/sub/local.md")
    files = ProjectFiles(tmp_path).walk()
    assert files == [
        ".gitignore", "docs/.gitignore", "docs/sub/local.md", "src/.gitignore", "src/important.log",
        "src/main.py", "src/secret.txt",
    ]


def test_git_info_exclude_is_read(tmp_path: Path):
    make_tree(tmp_path, {".git/info/exclude": "scratch/\n", "scratch/a.py": "x", "a.py": "x"})
    assert ProjectFiles(tmp_path).walk() == ["a.py"]


def test_binary_and_huge_files_are_refused_with_a_reason(tmp_path: Path):
    make_tree(tmp_path, {
        "ok.py": "print('hi')\n",
        "blob.bin": b"\x89PNG\r\n\x00\x00rest",
        "huge.txt": "x" * (MAX_FILE_BYTES + 1),
        "latin1.txt": "caf\xe9".encode("latin-1"),
    })
    assert check_file(tmp_path / "ok.py") is None
    assert check_file(tmp_path / "blob.bin") == "binary file"
    assert check_file(tmp_path / "huge.txt") == "too large: 257 KB (limit 256 KB)"
    assert read_text_file(tmp_path / "ok.py") == "print('hi')\n"
    with pytest.raises(FileRefusal, match="blob.bin: binary file"):
        read_text_file(tmp_path / "blob.bin", "blob.bin")
    with pytest.raises(FileRefusal, match="not UTF-8 text"):
        read_text_file(tmp_path / "latin1.txt")


def test_fuzzy_matching_prefers_names_and_word_starts():
    paths = ["textstats/counter.py", "tests/test_textstats.py", "README.md", "textstats/report.py"]
    assert fuzzy_score("xyz", "README.md") is None
    assert fuzzy_filter("count", paths)[0][0] == "textstats/counter.py"
    assert fuzzy_filter("rep", paths)[0][0] == "textstats/report.py"
    assert [p for p, _ in fuzzy_filter("", paths)] == paths
    best, positions = fuzzy_filter("tsc", ["a/t_s_c.py", "textstats/counter.py"])[0]
    assert len(positions) == 3


def test_plain_modules_never_import_textual():
    import subprocess
    import sys

    code = ("import sys, codeup_tui.tui.backend, codeup_tui.tui.prompt, codeup_tui.tui.context, codeup_tui.tui.project, codeup_tui.tui.model_loader; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'textual']; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
