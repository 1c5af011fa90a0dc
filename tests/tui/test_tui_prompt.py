"""tui/prompt: files as the Alpaca input (golden strings), conversations, the budget."""

from __future__ import annotations

from codeup_tui.engine.templates import load_template

from codeup_tui.tui.prompt import (
    Budget,
    PastTurn,
    answer_reserve,
    build_input,
    fence_for,
    file_block,
    files_to_send,
    language_tag,
    render_prompt,
    text_digest,
)

ALPACA = load_template("alpaca")
SYSTEM = ("Below is an instruction that describes a task. Write a response that appropriately "
          "completes the request.\n\n")
SYSTEM_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                "further context. Write a response that appropriately completes the request.\n\n")


def test_no_files_gives_the_no_input_form():
    prompt, input_text = render_prompt(ALPACA, [], "Write fib.", [])
    assert input_text is None
    assert prompt == SYSTEM + "### Instruction:\nWrite fib.\n\n### Response:\n"


def test_one_file_is_the_input_with_path_and_fence():
    prompt, _ = render_prompt(ALPACA, [], "Explain it.", [("src/a.py", "x = 1\n")])
    assert prompt == (
        SYSTEM_INPUT
        + "### Instruction:\nExplain it.\n\n"
        + "### Input:\nsrc/a.py\n```python\nx = 1\n```\n\n"
        + "### Response:\n"
    )


def test_several_files_keep_their_order():
    files = [("README.md", "# Demo"), ("Makefile", "all:\n\ttrue\n"), ("notes", "plain")]
    assert build_input(files) == (
        "README.md\n```markdown\n# Demo\n```\n\n"
        "Makefile\n```makefile\nall:\n\ttrue\n```\n\n"
        "notes\n```\nplain\n```"
    )


def test_fence_grows_past_backticks_in_the_file():
    assert fence_for("no ticks") == "```"
    assert fence_for("a ``` b") == "````"
    text = "Use:\n```sh\nls\n```\n"
    assert file_block("doc.md", text) == "doc.md\n````markdown\n" + text + "````"


def test_language_tags():
    assert [language_tag(p) for p in ("a.py", "b.RS", "c.tsx", "Dockerfile", "x.unknown")] == [
        "python", "rust", "tsx", "dockerfile", ""]


def test_follow_up_prompt_begins_with_the_previous_prompt_and_answer():
    first, first_input = render_prompt(ALPACA, [], "Explain it.", [("a.py", "x = 1\n")])
    turn = PastTurn("Explain it.", first_input, "It sets x.", (("a.py", text_digest("x = 1\n")),))
    second, second_input = render_prompt(ALPACA, [turn], "Now y?", files_to_send([turn], [("a.py", "x = 1\n")]))
    assert second_input is None  # a.py unchanged: not sent again
    assert second == first + "It sets x.\n\n### Instruction:\nNow y?\n\n### Response:\n"
    changed = files_to_send([turn], [("a.py", "x = 2\n"), ("b.py", "y")])
    assert [path for path, _ in changed] == ["a.py", "b.py"]


def test_budget_line_and_refusal_names_the_largest_files():
    budget = Budget(prompt_tokens=3500, n_ctx=4096, reserve=1024,
                    file_tokens={"small.py": 100, "big.py": 2000, "mid.py": 900})
    assert not budget.fits and budget.overflow == 428
    assert budget.line() == "prompt 3.5k/4.1k · files 3.0k · answer 1.0k"
    assert budget.files_to_drop() == [("big.py", 2000)]
    assert budget.refusal() == (
        "Not sent: the prompt is 3,500 tokens and 1,024 are kept for the answer, 428 over the "
        "context of 4,096. Drop big.py (2,000 tokens)."
    )
    history_heavy = Budget(5000, 4096, 1024, {"a.py": 10}, has_history=True)
    assert "Drop a.py (10 tokens)." in history_heavy.refusal()
    assert history_heavy.refusal().endswith("Start a new conversation (ctrl+n) or shorten the instruction.")
    assert Budget(100, 4096, 1024).fits


def test_answer_reserve():
    assert answer_reserve(4096, -1) == 1024
    assert answer_reserve(4096, 200) == 200
    assert answer_reserve(100, 500) == 100
