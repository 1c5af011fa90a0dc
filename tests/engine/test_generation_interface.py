"""The one generation interface (engine/generation.py): the local Generator, the remote
client and the TUI's test fake all have its signature; a prompt is tokenized once per send,
here and with a server (the budget's ids are the ones sent, and no second /tokenize)."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

from tests.helpers.paths import FIXTURES
from tests.helpers.fault_server import FaultServer, json_answer
from tests.helpers.tui_fakes import FakeBackend

from codeup_tui.engine.generate import Generator
from codeup_tui.engine.generation import GenerationHandle, PromptTokens, TextGenerator
from codeup_tui.engine.remote import RemoteClient
from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.engine.templates import load_template
from codeup_tui.tui.backend import Backend, LocalBackend
from codeup_tui.tui.project import ProjectFiles
from codeup_tui.tui.remote_backend import RemoteBackend
from codeup_tui.tui.session import Session

GREEDY = SamplingParams(temperature=0)
ALPACA = load_template("alpaca")
TINY_Q4_0 = FIXTURES / "tiny-llama" / "tiny-llama-Q4_0.gguf"
WAIT = 30  # seconds: only a bound on a hang


def same_parameters(interface, implementation) -> list[str]:
    """How `implementation`'s signature departs from `interface`'s: each of the interface's
    parameters must be there, of the same kind, with the same default; any extra one must be
    keyword-only with a default (so every call written against the interface works)."""
    wanted = inspect.signature(interface).parameters
    have = inspect.signature(implementation).parameters
    problems = []
    for name, param in wanted.items():
        got = have.get(name)
        if got is None:
            problems.append(f"no parameter {name!r}")
        elif got.kind != param.kind or got.default != param.default:
            problems.append(f"{name!r} is {got}, the interface's is {param}")
    for name, got in have.items():
        if name not in wanted and (got.kind is not got.KEYWORD_ONLY or got.default is got.empty):
            problems.append(f"extra parameter {got} is not keyword-only with a default")
    positional = [n for n, p in wanted.items() if p.kind is not p.KEYWORD_ONLY]
    if [n for n, p in have.items() if p.kind is not p.KEYWORD_ONLY] != positional:
        problems.append(f"positional parameters differ from the interface's {positional}")
    return problems


@pytest.mark.parametrize("implementation", [Generator, RemoteClient, FakeBackend], ids=lambda c: c.__name__)
def test_each_implementation_has_the_interfaces_signature(implementation):
    for method in ("start", "tokenize_prompt"):
        assert same_parameters(getattr(TextGenerator, method), getattr(implementation, method)) == [], method
    assert isinstance(inspect.getattr_static(implementation, "n_ctx"), property)


def test_instances_are_text_generators_and_backends_hand_one_over():
    class NoModel:
        n_ctx = 0

    for generator in (Generator(NoModel()), RemoteClient("http://127.0.0.1:9"), FakeBackend()):  # type: ignore[arg-type]
        assert isinstance(generator, TextGenerator)
    for backend in (LocalBackend(), RemoteBackend("http://127.0.0.1:9"), FakeBackend()):
        assert all(hasattr(backend, name) for name in ("load", "generator", "close"))
        assert backend.generator is None  # nothing before load
    fake: Backend = FakeBackend()  # a type checker holds the fake to both protocols
    fake.load(lambda stage, text: None, None)  # type: ignore[arg-type]
    assert fake.generator is fake


# ---- tokenized once: here ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_generator():
    if not TINY_Q4_0.exists():
        pytest.skip(f"reference fixtures not found at {TINY_Q4_0} (../shared is absent)")
    from codeup_tui import engine

    with engine.load_model(TINY_Q4_0, n_ctx=256) as model:
        yield Generator(model)


def test_the_budget_and_the_send_use_one_tokenization_here(tiny_generator, tmp_path: Path, monkeypatch):
    tokenizer = tiny_generator.model.tokenizer
    encoded: list[str] = []
    encode = tokenizer.encode

    def counting(text, *args, **kwargs):
        encoded.append(text)
        return encode(text, *args, **kwargs)

    monkeypatch.setattr(tokenizer, "encode", counting)
    session = Session(ProjectFiles(tmp_path))
    budget = session.prepare(ALPACA, "Say hi.", [], counter=tiny_generator, max_tokens=4)  # the budget shown
    sent = session.prepare(ALPACA, "Say hi.", [], counter=tiny_generator, max_tokens=4)  # the send
    assert sent is budget and sent.tokens is not None
    handle = tiny_generator.start(sent.tokens, GREEDY, max_tokens=4, stop=ALPACA.stop)
    handle.wait(WAIT)
    assert handle.done and handle.result.error is None
    assert encoded == [sent.prompt]  # one tokenization of the prompt, for the budget and the send
    assert handle.timings().prompt_tokens == len(sent.tokens) == sent.budget.prompt_tokens
    assert list(tiny_generator.model.tokens[: len(sent.tokens)]) == list(sent.tokens.ids)  # the very ids


# ---- tokenized once: with a server ------------------------------------------------------------------

def tokenize_words(handler, body: dict) -> None:
    """llama.cpp's /tokenize, a token per word."""
    json_answer(200, {"tokens": list(range(len(body["content"].split())))})(handler, body)


@pytest.fixture
def server():
    s = FaultServer()
    s.on("/tokenize", tokenize_words)
    yield s
    s.close()


def test_a_send_asks_the_server_for_no_second_tokenization(server, tmp_path: Path):
    client = RemoteClient(server.url)
    client.probe()
    session = Session(ProjectFiles(tmp_path))
    budget = session.prepare(ALPACA, "Say hi.", [], counter=client)
    sent = session.prepare(ALPACA, "Say hi.", [], counter=client)
    assert sent is budget and sent.tokens is not None and not sent.tokens.estimated
    assert len(sent.tokens) == len(sent.prompt.split())
    handle = client.start(sent.tokens, GREEDY, max_tokens=8)
    assert "".join(handle) == "Hello world"
    assert [body["content"] for body in server.bodies("/tokenize")] == [sent.prompt]
    assert server.bodies("/v1/completions")[0]["prompt"] == sent.prompt
    # a server without /tokenize: an estimate, marked, and still one request at most
    server.on("/tokenize", json_answer(404, {"error": {"message": "no"}}))
    other = RemoteClient(server.url)
    guess = other.tokenize_prompt("four words of text")
    assert guess.estimated and guess.ids is None and len(guess) == 5  # 18 characters, 4 a token
    assert other.tokenize_prompt("again").estimated and len(server.bodies("/tokenize")) == 2


def test_token_ids_are_not_sent_to_a_server_as_text(server):
    client = RemoteClient(server.url)
    client.probe()
    from codeup_tui.engine.errors import UsageError

    with pytest.raises(UsageError, match="as text, not token ids"):
        client.start([1, 2, 3], GREEDY)


# ---- tokenized once: in the TUI --------------------------------------------------------------------

async def send_after_the_budget(app, instruction: str, counted):
    """Type `instruction`, wait until its budget is counted, send it, wait for the answer:
    `counted()` (the texts tokenized so far, a list) before the send and after it."""
    from codeup_tui.tui.widgets import InstructionEditor

    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + WAIT
        while app.backend.generator is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.press("ctrl+e", *instruction)
        editor = app.screen.query_one(InstructionEditor)
        # the budget of the whole instruction counted (not only of its first letters: on a
        # slow machine the count for the last key can come well after it)
        while not (
            "prompt" in str(editor.border_subtitle) and any(instruction in text for text in counted())
        ) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        counted_before = counted()
        await pilot.press("ctrl+j")
        while (not app.screen.history or app.screen.generating) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.screen.history, "no answer in time"
        return counted_before, counted()


async def test_the_tui_sends_the_ids_its_budget_counted(tmp_path: Path):
    from codeup_tui.tui.app import CodeupApp

    fake = FakeBackend()
    app = CodeupApp(tmp_path, backend=fake, template="alpaca")
    before, after = await send_after_the_budget(app, "hello", lambda: list(fake.tokenized))
    [sent] = fake.started_with
    assert isinstance(sent, PromptTokens) and sent.ids is not None and sent.text == fake.prompts[0]
    assert before.count(sent.text) == 1  # the budget tokenized this prompt, once
    # and the send did not tokenize it again (what may follow the answer is the next
    # instruction's budget, a longer prompt holding the answer)
    assert sent.text not in after[len(before):]


async def test_the_tui_on_a_server_makes_no_tokenize_request_per_send(server, tmp_path: Path):
    from codeup_tui.tui.app import CodeupApp

    app = CodeupApp(tmp_path, backend=RemoteBackend(server.url), template="alpaca")
    before, after = await send_after_the_budget(app, "hello", lambda: [b["content"] for b in server.bodies("/tokenize")])
    sent = server.bodies("/v1/completions")[0]["prompt"]
    assert sent in before  # counted for the budget, before the send
    assert sent not in after[len(before):]  # and not asked for again by the send


def test_the_handle_is_the_engines_everywhere():
    fake = FakeBackend()
    fake.load(lambda stage, text: None, None)  # type: ignore[arg-type]
    handle = fake.start("some prompt", GREEDY)
    assert isinstance(handle, GenerationHandle) and handle.text() == "Hello from the fake."
    assert handle.result.stop_reason == "eos" and handle.timings().prompt_tokens == 3
