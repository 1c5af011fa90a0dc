"""`codeup run`: one-shot generation, the interactive instruct mode in a real terminal,
and bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.helpers.paths import REPO, fixtures_or_skip
from tests.helpers.terminal import Tmux


def codeup(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "run", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def reference():
    return json.loads(fixtures_or_skip("smollm2", "alpaca-fib.json").read_text())


def test_greedy_alpaca_prompt_prints_llama_cpps_continuation(default_model_file, reference):
    from codeup_tui import engine

    proc = codeup("-m", str(default_model_file), "-p", reference["prompt"], "--temp", "0", "-n", "40")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(reference["prompt"])  # the prompt is echoed, as llama.cpp does
    answer = proc.stdout[len(reference["prompt"]):]
    with engine.load_model(default_model_file) as model:
        first20 = model.tokenizer.decode(reference["greedy"][:20], strip_leading_space=False)
    assert answer.startswith(first20)
    assert "prompt: 57 tokens" in proc.stderr and "generation: 40 tokens" in proc.stderr


def test_prompt_file_and_no_display_prompt(default_model_file, reference, tmp_path):
    f = tmp_path / "prompt.txt"
    f.write_text(reference["prompt"], encoding="utf-8")
    proc = codeup("-m", str(default_model_file), "-f", str(f), "--temp", "0", "-n", "5", "--no-display-prompt")
    assert proc.returncode == 0 and proc.stdout.startswith("```")


@pytest.mark.parametrize(
    "args,message",
    [
        (["-p", "x", "--template", "nope"], "no prompt template named 'nope'"),
        (["-p", "x", "-n", "-5"], "-n must be -1 (until the end) or more, got -5"),
        (["-p", "x", "--top-p", "2"], "--top-p must be between 0 and 1, got 2"),
        (["-p", "x", "--repeat-penalty", "0"], "--repeat-penalty must be between 0 (excluded) and 1e+06 (1 = off), got 0"),
        (["-p", "x", "-c", "0"], "-c must be between 16 and 1048576, got 0"),
        (["-p", "x", "-t", "0"], "-t must be between 1 and 1024, got 0"),
        (["-f", "/nonexistent/prompt.txt"], "cannot read prompt file /nonexistent/prompt.txt"),
        (["-p", "x", "--temp", "abc"], "invalid float value"),
        (["-p", "word " * 400, "-c", "64"], "more than the context of 64"),
        ([], "give a prompt with -p or -f"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(default_model_file, args, message):
    proc = codeup("-m", str(default_model_file), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_unreadable_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\0\0\0" + b"\xff" * 20)
    proc = codeup("-m", str(bad), "-p", "x")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


# ---- interactive, in a real terminal ----------------------------------------------------------

@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_interactive_instruct_session(default_model_file, tmp_path):
    done = tmp_path / "exit-status"
    cmd = (f"cd {REPO} && {sys.executable} -m codeup_tui.engine.cli run -m {default_model_file} -i --instruct "
           f"--temp 0 -n 300; echo $? > {done}; sleep 60")
    tmux = Tmux(cmd)
    try:
        tmux.wait_for(lambda s: "\n> " in s or s.rstrip().endswith(">"))
        # 1: answered in full
        tmux.keys("Write a Python function that adds two numbers.", "Enter")
        tmux.wait_for(lambda s: s.count("prompt:") >= 1)
        assert "def " in tmux.screen()
        # 2: interrupted with Ctrl+C while it streams
        tmux.keys("Explain recursion in detail with many examples.", "Enter")
        tmux.wait_for(lambda s: s.count("\n") > 0 and len(s.split("recursion in detail")[-1]) > 80, timeout=60)
        tmux.keys("C-c")
        screen = tmux.wait_for(lambda s: "[stopped]" in s and s.count("prompt:") >= 2)
        assert "[cancelled]" in screen
        # 3: answered, with the earlier turns reused from the cache
        tmux.keys("Write a function that reverses a string.", "Enter")
        screen = tmux.wait_for(lambda s: s.count("prompt:") >= 3)
        assert "reused from the cache" in screen.split("reverses a string")[-1]
        # EOF at the prompt exits cleanly
        tmux.keys("C-d")
        end = time.monotonic() + 30
        while not done.exists() and time.monotonic() < end:
            time.sleep(0.2)
        assert done.read_text().strip() == "0"
        assert "Traceback" not in tmux.screen()
    finally:
        tmux.kill()


# ---- llama.cpp's command lines, as model cards give them ------------------------------------

CARD_FILE = "codeup-llama-2-13b-chat-hf.ggmlv3.q4_K_M.bin"
CARD_PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
               "the request.\\n\\n### Instruction: Write a story about llamas\\n\\n### Response:")
CARD_FLAGS = ["-t", "10", "-ngl", "32", "-m", CARD_FILE, "--color", "-c", "2048", "--temp", "0.7",
              "--repeat_penalty", "1.1", "-n", "-1"]


@pytest.fixture(scope="module")
def card_dir(tmp_path_factory):
    """A GGML v3 Q4_K_M file under the name the CodeUp card's command lines use."""
    folder = tmp_path_factory.mktemp("card")
    shutil.copy(fixtures_or_skip("ggml-v3", "ggml-llama-Q4_K_M.ggmlv3.bin"), folder / CARD_FILE)
    return folder


def card_run(folder, *args, stdin=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "run", *args], capture_output=True, text=True,
                          cwd=folder, timeout=timeout, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def test_the_cards_prompt_command_line_runs_verbatim(card_dir):
    proc = card_run(card_dir, *CARD_FLAGS, "-p", CARD_PROMPT)
    assert proc.returncode == 0, proc.stderr
    # the echoed prompt has real line breaks (llama.cpp's escape processing), in colour (--color)
    assert "completes the request.\n\n### Instruction: Write a story about llamas\n\n### Response:" in proc.stdout
    assert "\\n" not in proc.stdout.split("### Response:")[0]
    assert "-ngl 32: this engine computes on the CPU" in proc.stderr and "Traceback" not in proc.stderr


def test_the_cards_chat_command_line_runs_verbatim(card_dir):
    proc = card_run(card_dir, *CARD_FLAGS, "-i", "-ins", stdin="Write a story about llamas\n")
    assert proc.returncode == 0, proc.stderr
    assert "chat (alpaca)" in proc.stderr  # a GGML v3 file has no chat template: Alpaca, as the card says
    assert "prompt:" in proc.stderr and "Traceback" not in proc.stderr


def test_the_cards_rope_extension_flags_run(card_dir):
    proc = card_run(card_dir, *CARD_FLAGS[:8], "4096", *CARD_FLAGS[9:], "--rope-freq-base", "10000",
                    "--rope-freq-scale", "0.5", "-p", CARD_PROMPT)
    assert proc.returncode == 0, proc.stderr
    assert "### Instruction: Write a story about llamas\n\n### Response:" in proc.stdout


@pytest.mark.parametrize("flag,closest", [("--repeat_penalt", "--repeat-penalty"), ("--temperature", "--temp"),
                                          ("--ctx-sise", "--ctx-size")])
def test_an_unknown_flag_is_one_line_naming_the_closest(flag, closest):
    proc = codeup("-m", "x.gguf", "-p", "x", flag, "1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"unknown option {flag} (closest: {closest})" in lines[0], proc.stderr


def test_long_options_accept_underscores_and_escapes_are_llama_cpps():
    from codeup_tui.engine.cli import build_parser
    from codeup_tui.engine.cli.options import normalize_options, process_escapes

    parser = build_parser()
    argv = normalize_options(["run", "--ctx_size", "64", "--n_predict=3", "--rope_freq_base", "1e4",
                              "-p", "--not_an_option_value", "--", "--repeat_penalty"], parser)
    assert argv == ["run", "--ctx-size", "64", "--n-predict=3", "--rope-freq-base", "1e4",
                    "-p", "--not_an_option_value", "--", "--repeat_penalty"]
    assert process_escapes(r"a\nb\t\"c\" \\n \x41\q") == 'a\nb\t"c" \\n A\\q'


def test_special_token_text_in_a_prompt_is_its_token(default_model_file):
    chatml = "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n"
    parsed = codeup("-m", str(default_model_file), "-p", chatml, "-n", "1", "--temp", "0")
    literal = codeup("-m", str(default_model_file), "-p", chatml, "-n", "1", "--temp", "0", "--no-parse-special")
    assert parsed.returncode == 0 and literal.returncode == 0, parsed.stderr + literal.stderr

    def prompt_tokens(proc):
        return int(re.search(r"prompt: (\d+) tokens", proc.stderr)[1])

    with __import__("codeup_tui.engine").engine.load_model(default_model_file) as model:
        tok = model.tokenizer
        assert prompt_tokens(parsed) == len(tok.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                                                       parse_special=True))
    assert prompt_tokens(literal) > prompt_tokens(parsed)
    kept = codeup("-m", str(default_model_file), "-p", "a\\nb", "-n", "1", "--no-escape", "--temp", "0")
    assert kept.stdout.startswith("a\\nb")


def test_prompt_from_standard_input(default_model_file, reference):
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "run", "-m", str(default_model_file), "-f", "-",
                           "--temp", "0", "-n", "5", "--no-display-prompt"], input=reference["prompt"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("```"), proc.stderr
