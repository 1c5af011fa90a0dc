"""The model's own prompt format: a GGUF's `tokenizer.chat_template` (Jinja), rendered the
way Hugging Face's `apply_chat_template` renders it, since that is what the templates are
written for and tested against.

That means jinja2's `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`
with the `loopcontrols` extension, a `tojson` filter that leaves non-ASCII as it is,
`raise_exception(message)`, `strftime_now(format)`, the vocabulary's `bos_token` and
`eos_token` as variables, and `add_generation_prompt=True` (the prompt ends where the
assistant's answer starts). `{% generation %}` blocks (HF's assistant-mask marker) render
their body unchanged.

`ChatTemplate` has the interface of `engine.templates.PromptTemplate` (`render_conversation`,
`stop`, `add_bos`, `parse_special`), so everything that prompts with a template can prompt
with the model's own: attached files go inside the user's message as the same text the
Alpaca `### Input:` block holds, and the rendered text is encoded with its special-token
text (`<|im_start|>`, BOS) parsed, without another BOS in front (as HF tokenizes it).

`resolve_template` picks the template for a model: the name `model` (the default) means the
file's chat template, or Alpaca for a file without one (the GGML v3 CodeUp files).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from .errors import CodeupError, UsageError, printable

MODEL_TEMPLATE = "model"  # the template name meaning "the model file's own chat template"
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
FALLBACK_TEMPLATE = "alpaca"  # for files that carry no chat template (as the CodeUp card says)

# Texts of tokens that end a turn in the formats chat templates write; the ones that appear
# in a template (besides the vocabulary's EOS) are its stop strings. Generation also stops
# at the vocabulary's end-of-generation tokens (engine/tokenizer/special_tokens.py).
END_OF_TURN_TEXTS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                     "<|END_OF_TURN_TOKEN|>", "<｜end▁of▁sentence｜>", "</s>")


class ChatTemplateError(CodeupError):
    """The template could not be compiled, or it raised (e.g. 'System role not supported')."""


def _jinja():
    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # a dependency, but say what is missing rather than a traceback
        raise UsageError("chat templates need the jinja2 package (pip install jinja2)") from None
    return jinja2, ImmutableSandboxedEnvironment


class _TemplateRaised(Exception):
    """What `raise_exception` raises inside a template."""


def _environment(now: Callable[[], datetime]):
    jinja2, Sandbox = _jinja()

    class GenerationBlock(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}`: HF marks the assistant's text with it;
        for rendering it is its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body, lineno=lineno)

    def raise_exception(message):
        raise _TemplateRaised(str(message))

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return now().strftime(fmt)

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def user_content(instruction: str, input_text: str | None) -> str:
    """The user's message: the instruction, then the attached files' text (path + fenced
    block, as the Alpaca `### Input:` holds it) after a blank line."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template, ready to render conversations."""

    source: str  # the Jinja text
    bos_token: str = ""
    eos_token: str = ""
    owner: str = "the model"  # named in error messages (the model file's name)
    name: str = MODEL_TEMPLATE
    description: str = "the model's own chat template"
    now: Callable[[], datetime] = datetime.now  # what strftime_now formats (tests fix it)
    add_bos: bool | None = False  # the template writes BOS itself when the model wants it
    parse_special: bool = True  # its <|im_start|>-style text is special tokens
    path: Path | None = None
    system: str = ""  # the system text sent when the caller gives none ("": the template's own default)

    def __post_init__(self) -> None:
        jinja2, _ = _jinja()
        try:
            compiled = _environment(self.now).from_string(self.source)
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"{self.owner}: its chat template cannot be read: {_one_line(e)}") from None
        object.__setattr__(self, "_compiled", compiled)

    @property
    def stop(self) -> tuple[str, ...]:
        """The end-of-turn texts the template writes (the model stops at its EOG tokens too)."""
        writes_eos = self.eos_token and (self.eos_token in self.source or "eos_token" in self.source)
        texts = [self.eos_token] if writes_eos else []
        texts += [t for t in END_OF_TURN_TEXTS if t in self.source and t not in texts]
        return tuple(texts)

    def wants_bos(self, model_default: bool) -> bool:
        return False

    def render_messages(self, messages: Sequence[Mapping[str, object]], add_generation_prompt: bool = True,
                        **extra) -> str:
        """The text of `messages` ([{"role", "content"}, ...]) as HF's apply_chat_template
        gives it. ChatTemplateError (one line, naming the model) when the template raises."""
        jinja2, _ = _jinja()
        values = dict(extra)
        values.update(messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt,
                      bos_token=self.bos_token, eos_token=self.eos_token)
        values.setdefault("tools", None)
        values.setdefault("documents", None)
        try:
            return self._compiled.render(**values)  # type: ignore[attr-defined]
        except _TemplateRaised as e:
            raise ChatTemplateError(f"{self.owner}: the chat template says: {_one_line(e)}") from None
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise ChatTemplateError(f"{self.owner}: the chat template failed: {_one_line(e)}") from None

    def messages(self, turns: Sequence, instruction: str, input_text: str | None = None,
                 system: str | None = None) -> list[dict[str, str]]:
        out = [{"role": "system", "content": system}] if system else []
        for instr, inp, response in turns:
            out += [{"role": "user", "content": user_content(instr, inp)},
                    {"role": "assistant", "content": response}]
        out.append({"role": "user", "content": user_content(instruction, input_text)})
        return out

    def render_conversation(self, turns: Sequence, instruction: str, input_text: str | None = None,
                            system: str | None = None) -> str:
        """The prompt for `instruction` after the earlier (instruction, input, answer) `turns`.

        `system`: None for `self.system` (left out when the template has no system role),
        "" for none (the template's own default, if it has one), else the system message.
        """
        if system is None:
            system = self.system if self.system and self.supports_system else ""
        return self.render_messages(self.messages(turns, instruction, input_text, system))

    @property
    def supports_system(self) -> bool:
        """Whether the template accepts a system message (gemma's raises on one)."""
        try:
            self.render_messages([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
        except ChatTemplateError:
            return False
        return True

    def render(self, instruction: str, input_text: str | None = None, system: str | None = None) -> str:
        return self.render_conversation((), instruction, input_text, system)


def _one_line(e: BaseException) -> str:
    return printable(" ".join(str(e).split()) or type(e).__name__)


def special_token_texts(tokenizer_data) -> tuple[str, str]:
    """(bos_token, eos_token) texts from a file's vocabulary ("" where absent)."""
    if tokenizer_data is None:
        return "", ""
    tokens = tokenizer_data.tokens

    def text(i):
        return tokens[i] if i is not None and 0 <= i < len(tokens) else ""

    return text(tokenizer_data.bos_id), text(tokenizer_data.eos_id)


def model_chat_template(model_file, now: Callable[[], datetime] = datetime.now) -> ChatTemplate | None:
    """The file's own chat template, or None when it carries none."""
    source = model_file.metadata.get(CHAT_TEMPLATE_KEY) if model_file.metadata else None
    if not isinstance(source, str) or not source.strip():
        return None
    bos, eos = special_token_texts(model_file.tokenizer)
    return ChatTemplate(source, bos, eos, owner=printable(Path(str(model_file.path)).name), now=now)


def read_chat_template_file(path: str | Path, model_file=None) -> ChatTemplate:
    """A Jinja chat template from a file (--chat-template-file), with the model's BOS/EOS."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise UsageError(f"chat template file {printable(str(path))}: cannot be read: {why}") from None
    bos, eos = special_token_texts(getattr(model_file, "tokenizer", None))
    return ChatTemplate(source, bos, eos, owner=printable(str(path)), name=Path(path).name,
                        description=f"chat template from {printable(str(path))}", path=Path(path))


def resolve_template(name: str | None, model_file=None, system: str = ""):
    """The template `name` stands for with this model file: `model` (or None) is the file's
    chat template, Alpaca when it has none; any other name is a TOML template. `system`:
    the system text a chat template sends by default ("": the template's own)."""
    from .templates import load_template

    if name in (None, MODEL_TEMPLATE):
        own = model_chat_template(model_file) if model_file is not None else None
        if own is None:
            return load_template(FALLBACK_TEMPLATE)
        return replace(own, system=system) if system else own
    return load_template(name)


# Marks of the common chat formats, to name a model's template to the user (first match).
FORMAT_MARKS = (("<|im_start|>", "ChatML"), ("<|start_header_id|>", "Llama 3"), ("<start_of_turn>", "Gemma"),
                ("<|user|>", "Phi"), ("<｜User｜>", "DeepSeek"), ("[INST]", "[INST]"))


def format_label(template) -> str:
    """How the template in use is named to the user: `alpaca`, `model: ChatML`."""
    if isinstance(template, ChatTemplate) and template.name == MODEL_TEMPLATE:
        family = next((label for mark, label in FORMAT_MARKS if mark in template.source), "chat template")
        return f"{MODEL_TEMPLATE}: {family}"
    return template.name
