"""The model's own chat template (engine/chat_template.py): real templates from GGUF files
render exactly as Hugging Face's apply_chat_template renders them, a template that raises
gives one clean line, and a model file picks its own template (Alpaca without one)."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

import pytest

from tests.helpers.paths import fixtures_or_skip
from codeup_tui.engine.chat_template import (ChatTemplate, ChatTemplateError, model_chat_template, resolve_template,
                                  user_content)


def _renders():
    folder = fixtures_or_skip("chat-templates")
    return folder, json.loads((folder / "renders.json").read_text(encoding="utf-8"))


def _fixture_names():
    try:
        _folder, data = _renders()
    except pytest.skip.Exception:
        return ["(fixtures absent)"]
    return sorted(data["templates"])


@pytest.mark.parametrize("name", _fixture_names())
def test_fixture_templates_render_byte_for_byte(name):
    folder, data = _renders()
    entry = data["templates"][name]
    source = (folder / f"{name}.jinja").read_text(encoding="utf-8")
    assert source == entry["template"]
    day = datetime.strptime(data["date"], "%d %b %Y")  # the fixture fixed strftime_now to this date
    template = ChatTemplate(source, data["bos_token"], data["eos_token"], owner=name, now=lambda: day)
    for conv, messages in data["convs"].items():
        expected = entry["renders"][conv]
        if expected is None:
            with pytest.raises(ChatTemplateError) as raised:
                template.render_messages(messages)
            message = str(raised.value)
            template_message = entry["errors"][conv].split(": ", 1)[1]
            assert message == f"{name}: the chat template says: {template_message}"
            assert "\n" not in message
        else:
            assert template.render_messages(messages) == expected, conv


def test_gemma_system_role_error_is_one_line_through_the_cli_shape():
    folder, data = _renders()
    source = (folder / "google-gemma-2-2b-it.jinja").read_text(encoding="utf-8")
    template = ChatTemplate(source, "<bos>", "<eos>", owner="gemma-2-2b-it.Q4_K_M.gguf")
    with pytest.raises(ChatTemplateError, match=r"^gemma-2-2b-it\.Q4_K_M\.gguf: the chat template says: "
                                                  r"System role not supported$"):
        template.render_conversation([], "hi", system="Be brief.")
    assert template.render("hi").startswith("<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n")


CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nDefault<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_conversation_files_go_inside_the_user_message_and_prompts_grow_by_prefix():
    template = ChatTemplate(CHATML, "<|im_start|>", "<|im_end|>")
    files = "counter.py\n```python\nx = 1\n```"
    first = template.render_conversation([], "Add a test.", files)
    assert first == ("<|im_start|>system\nDefault<|im_end|>\n<|im_start|>user\nAdd a test.\n\n" + files +
                     "<|im_end|>\n<|im_start|>assistant\n")
    assert user_content("Add a test.", files) == "Add a test.\n\n" + files
    answer = "```python\ndef test(): pass\n```"
    second = template.render_conversation([("Add a test.", files, answer)], "Now another.")
    assert second.startswith(first + answer)  # the prompt cache reuses the first turn
    assert template.stop == ("<|im_end|>",)
    assert template.parse_special and not template.wants_bos(True)


def test_a_broken_template_is_one_line_naming_the_model():
    with pytest.raises(ChatTemplateError, match=r"^m\.gguf: its chat template cannot be read: ") as raised:
        ChatTemplate("{% for m in messages %}{{ m.content }", owner="m.gguf")
    assert "\n" not in str(raised.value)


def test_tojson_keeps_non_ascii_and_the_sandbox_holds():
    template = ChatTemplate("{{ messages[0]['content'] | tojson }}")
    assert template.render_messages([{"role": "user", "content": "héllo \"x\""}]) == '"héllo \\"x\\""'
    unsafe = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(ChatTemplateError):
        unsafe.render_messages([{"role": "user", "content": "x"}])


def _model_file(chat_template=None):
    metadata = {"tokenizer.chat_template": chat_template} if chat_template is not None else {}
    tokenizer = SimpleNamespace(tokens=["<unk>", "<|im_start|>", "<|im_end|>"], bos_id=1, eos_id=2)
    return SimpleNamespace(metadata=metadata, tokenizer=tokenizer, path="smol.gguf")


def test_a_model_uses_its_own_template_and_a_file_without_one_keeps_alpaca():
    own = resolve_template(None, _model_file(CHATML))
    assert isinstance(own, ChatTemplate) and own.bos_token == "<|im_start|>" and own.eos_token == "<|im_end|>"
    assert resolve_template("model", _model_file()).name == "alpaca"
    assert resolve_template("chatml", _model_file(CHATML)).name == "chatml"
    assert model_chat_template(_model_file("  ")) is None


def test_the_default_model_carries_chatml(default_model_file):
    from codeup_tui.engine.formats import open_model_file

    with open_model_file(default_model_file) as mf:
        template = model_chat_template(mf)
    assert template is not None
    assert template.render("Hi") == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                                     "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
