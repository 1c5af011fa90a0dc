"""Prompt templates: the exact text of each built-in, multi-turn prompts that grow by
appending (for the prompt cache), user templates, and the errors for bad ones."""

from __future__ import annotations

import json

import pytest

from tests.helpers.paths import FIXTURES
from codeup_tui.engine.errors import UsageError
from codeup_tui.engine.templates import Turn, load_template, template_names, templates_dir, user_templates_dir

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")
ALPACA_INPUT_PREAMBLE = ("Below is an instruction that describes a task, paired with an input that provides "
                         "further context. Write a response that appropriately completes the request.")
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

TWO_TURNS = [
    Turn("Write fib.", None, "def fib(n): ..."),
    Turn("Add a docstring.", "def fib(n): ...\n", "Done."),
]


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    """An empty config folder, so the developer's own templates never change a result."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def user_template(config_home, name: str, text: str):
    folder = config_home / "codeup-tui" / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the built-in templates, golden strings ------------------------------------------------

def test_builtin_names_and_metadata():
    assert {"alpaca", "chatml", "llama-2-chat"} <= set(template_names())
    alpaca, chatml, llama2 = (load_template(n) for n in ("alpaca", "chatml", "llama-2-chat"))
    assert load_template().name == "alpaca"
    assert (alpaca.add_bos, alpaca.parse_special, alpaca.stop) == (None, False, ("### Instruction:", "### Input:"))
    assert (chatml.add_bos, chatml.parse_special, chatml.stop) == (None, True, ("<|im_end|>",))
    assert (llama2.add_bos, llama2.parse_special, llama2.stop) == (True, True, ("</s>", "[INST]"))
    assert alpaca.wants_bos(True) and not alpaca.wants_bos(False) and llama2.wants_bos(False)
    assert alpaca.path == templates_dir() / "alpaca.toml"


def test_alpaca():
    t = load_template("alpaca")
    assert t.render("Write fib.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n"
        "\n"
        "### Instruction:\n"
        "Write fib.\n"
        "\n"
        "### Response:\n"
    )
    assert t.render("Fix it.", "def f(): pass") == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n"
        "\n"
        "### Instruction:\n"
        "Fix it.\n"
        "\n"
        "### Input:\n"
        "def f(): pass\n"
        "\n"
        "### Response:\n"
    )
    assert t.render("Write fib.", "") == t.render("Write fib.")  # empty input: the no-input form
    assert t.render_conversation(TWO_TURNS, "Now in C.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n"
        "\n"
        "### Instruction:\n"
        "Write fib.\n"
        "\n"
        "### Response:\n"
        "def fib(n): ...\n"
        "\n"
        "### Instruction:\n"
        "Add a docstring.\n"
        "\n"
        "### Input:\n"
        "def fib(n): ...\n"
        "\n"
        "\n"
        "### Response:\n"
        "Done.\n"
        "\n"
        "### Instruction:\n"
        "Now in C.\n"
        "\n"
        "### Response:\n"
    )


ALPACA_FIB = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n"
    "\n"
    "### Instruction:\n"
    "Write a Python function that returns the n-th Fibonacci number.\n"
    "\n"
    "### Input:\n"
    "def fib(n):\n"
    "    pass\n"
    "\n"
    "\n"
    "### Response:\n"
)


def test_alpaca_reproduces_the_llama_cpp_fixture_prompt():
    """The smollm2 fixture's prompt: the no-input preamble with an Input block, made by
    passing the preamble as the system text."""
    t = load_template("alpaca")
    prompt = t.render("Write a Python function that returns the n-th Fibonacci number.", "def fib(n):\n    pass\n",
                      system=ALPACA_PREAMBLE)
    assert prompt == ALPACA_FIB
    fixture = FIXTURES / "smollm2" / "alpaca-fib.json"
    if fixture.is_file():
        assert json.loads(fixture.read_text())["prompt"] == prompt


def test_llama_2_chat():
    t = load_template("llama-2-chat")
    assert t.render("Write fib.") == "[INST] Write fib. [/INST]"
    assert t.render("Fix it.", "def f(): pass", system="Be brief.") == (
        "[INST] <<SYS>>\n"
        "Be brief.\n"
        "<</SYS>>\n"
        "\n"
        "Fix it.\n"
        "\n"
        "def f(): pass [/INST]"
    )
    assert t.render_conversation(TWO_TURNS, "Now in C.", system="Be brief.") == (
        "[INST] <<SYS>>\n"
        "Be brief.\n"
        "<</SYS>>\n"
        "\n"
        "Write fib. [/INST]def fib(n): ...</s><s>"
        "[INST] Add a docstring.\n"
        "\n"
        "def fib(n): ...\n"
        " [/INST]Done.</s><s>"
        "[INST] Now in C. [/INST]"
    )


def test_chatml():
    t = load_template("chatml")
    assert t.system == SMOL_SYSTEM
    assert t.render("Write fib.") == (
        "<|im_start|>system\n"
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\n"
        "Write fib.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert t.render("Fix it.", "def f(): pass", system="") == (
        "<|im_start|>user\n"
        "Fix it.\n"
        "\n"
        "def f(): pass<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert t.render_conversation(TWO_TURNS, "Now in C.", system="You write code.") == (
        "<|im_start|>system\n"
        "You write code.<|im_end|>\n"
        "<|im_start|>user\n"
        "Write fib.<|im_end|>\n"
        "<|im_start|>assistant\n"
        "def fib(n): ...<|im_end|>\n"
        "<|im_start|>user\n"
        "Add a docstring.\n"
        "\n"
        "def fib(n): ...\n"
        "<|im_end|>\n"
        "<|im_start|>assistant\n"
        "Done.<|im_end|>\n"
        "<|im_start|>user\n"
        "Now in C.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


# --- the prompt-cache property -------------------------------------------------------------

CONVERSATION = [
    Turn("Explain {this}.", "x = {1: 2}\n", " It is a dict.\n"),
    Turn("And without input?", None, "Still a dict."),
    Turn("", "only a file", "\n\n"),
    Turn("Last {input} one", None, "ok"),
]


@pytest.mark.parametrize("name", ["alpaca", "llama-2-chat", "chatml"])
@pytest.mark.parametrize("system", [None, "", "Custom {system} text."])
def test_each_prompt_plus_its_answer_begins_the_next_prompt(name, system):
    t = load_template(name)
    for k in range(len(CONVERSATION) - 1):
        earlier, nxt = CONVERSATION[:k], CONVERSATION[k]
        prompt = t.render_conversation(earlier, nxt.instruction, nxt.input_text, system)
        following = CONVERSATION[k + 1]
        new = t.render_conversation(CONVERSATION[:k + 1], following.instruction, following.input_text, system)
        assert new.startswith(prompt + nxt.response)
        assert new.endswith(t.render(following.instruction, following.input_text, system=""))


def test_conversation_keeps_the_first_turns_preamble():
    """Alpaca's preamble is chosen by the conversation's first turn, so it never changes."""
    t = load_template("alpaca")
    assert t.render_conversation([Turn("a", None, "b")], "c", "file").startswith(ALPACA_PREAMBLE + "\n\n")
    assert t.render_conversation([Turn("a", "file", "b")], "c").startswith(ALPACA_INPUT_PREAMBLE + "\n\n")
    assert t.render_conversation([("a", None, "b")], "c") == t.render_conversation([Turn("a", None, "b")], "c")


# --- placeholders are literal --------------------------------------------------------------

@pytest.mark.parametrize("name", ["alpaca", "llama-2-chat", "chatml"])
def test_braces_in_text_arrive_as_written(name):
    t = load_template(name)
    instruction = "Fix {input} and {system} in {instruction}; f'{x}' {{y}} {"
    files = "def f():\n    return {'a': '{instruction}'}  # {input} }"
    system = "Mind {input}."
    prompt = t.render_conversation([Turn("{input}", "{system}", "{instruction}")], instruction, files, system)
    for text in (instruction, files, system, "{input}", "{system}", "{instruction}"):
        assert text in prompt
    assert prompt.count("{input}") == 4 and prompt.count("{instruction}") == 3 and prompt.count("{system}") == 2


# --- user templates ------------------------------------------------------------------------

def test_user_templates_are_listed_and_override_builtins(config_home, monkeypatch):
    assert user_templates_dir() == config_home / "codeup-tui" / "templates"
    user_template(config_home, "vicuna", 'description = "mine"\nturn = "USER: {instruction}\\nASSISTANT:"\n'
                                         'answer_end = "\\n"\nstop = ["USER:"]\n')
    override = user_template(config_home, "alpaca", 'turn = "Q: {instruction}\\nA:"\n')
    names = template_names()
    assert names == sorted(names) and {"vicuna", "alpaca", "chatml", "llama-2-chat"} <= set(names)
    assert names.count("alpaca") == 1

    vicuna = load_template("vicuna")
    assert (vicuna.name, vicuna.description, vicuna.stop) == ("vicuna", "mine", ("USER:",))
    assert (vicuna.add_bos, vicuna.parse_special) == (None, False)
    assert vicuna.render_conversation([Turn("hi", None, " hello")], "fix", "code", system="Sys") == (
        "Sys\n\nUSER: hi\nASSISTANT: hello\nUSER: fix\n\ncode\nASSISTANT:"
    )
    alpaca = load_template()
    assert alpaca.path == override and alpaca.render("x") == "Q: x\nA:"

    # Without XDG_CONFIG_HOME (or with a relative one) the folder is ~/.config.
    monkeypatch.setenv("HOME", str(config_home.parent / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/path")
    assert user_templates_dir() == config_home.parent / "home" / ".config" / "codeup-tui" / "templates"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert user_templates_dir() == config_home.parent / "home" / ".config" / "codeup-tui" / "templates"
    assert "vicuna" not in template_names() and load_template().render("x").startswith(ALPACA_PREAMBLE)


def test_unknown_template_is_a_one_line_error_listing_the_names(config_home):
    user_template(config_home, "mine", 'turn = "{instruction}"\n')
    with pytest.raises(UsageError) as err:
        load_template("nope\n../alpaca")
    message = str(err.value)
    assert "\n" not in message and "nope" in message
    assert "known: alpaca, chatml, llama-2-chat, mine" in message
    with pytest.raises(UsageError, match="no prompt template named 'README'"):
        load_template("README")


@pytest.mark.parametrize("text, problem", [
    ('turn = "{instruction}\n', "not valid TOML"),
    ('description = "no turn"\n', "missing key 'turn'"),
    ('turn = "{instruction}"\nprompt = "old"\n', "unknown key 'prompt'"),
    ('turn = "{instruction}"\nstop = "### Instruction:"\n', "'stop' must be a list"),
    ('turn = "{instruction}"\nstop = [""]\n', "'stop' must be a list"),
    ('turn = 3\n', "'turn' must be a string"),
    ('turn = "{instruction}"\nadd_bos = "yes"\n', "'add_bos' must be true or false"),
    ('turn = "Q:"\n', "'turn' has no {instruction} placeholder"),
    ('turn = "{instruction}"\nturn_with_input = "{instruction}"\n', "'turn_with_input' has no {input}"),
    ('turn = "{instruction}"\nsystem_block = "SYS"\n', "'system_block' has no {system}"),
])
def test_malformed_user_template_is_a_one_line_error_naming_the_file(config_home, text, problem):
    path = user_template(config_home, "broken", text)
    assert "broken" in template_names()
    with pytest.raises(UsageError) as err:
        load_template("broken")
    message = str(err.value)
    assert "\n" not in message and str(path) in message and problem in message
    assert load_template("chatml").name == "chatml"  # the others still load


def test_unreadable_template_file_is_a_one_line_error(config_home):
    path = user_template(config_home, "binary", "")
    path.write_bytes(b'turn = "\xff{instruction}"\n')
    with pytest.raises(UsageError) as err:
        load_template("binary")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
