"""One instruction and the model's answer, in the conversation."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownStream


class Exchange(Vertical):
    """The instruction (and the files sent with it), the answer as Markdown, a state line.

    The answer streams through Textual's ``MarkdownStream`` (``append``), which coalesces
    fragments when they come faster than they can be rendered. ``state`` is "generating",
    "done", "stopped" or "error"; the CSS class ``-<state>`` follows it. A turn resumed from
    history is built finished: its ``answer``, ``state`` and ``state_text`` given at once.
    """

    def __init__(
        self,
        exchange_id: int,
        instruction: str,
        files: tuple[str, ...] = (),
        *,
        answer: str = "",
        state: str = "generating",
        state_text: str = "processing the prompt…",
    ) -> None:
        super().__init__(id=f"exchange-{exchange_id}")
        self.exchange_id = exchange_id
        self.instruction = instruction
        self.files = files
        self.answer = answer
        """The answer text shown so far."""
        self.state = state
        self.state_text = state_text
        self._stream: MarkdownStream | None = None

    def compose(self) -> ComposeResult:
        head = "› " + self.instruction.replace("\n", "\n  ")
        if self.files:
            head += "\n  files: " + ", ".join(self.files)
        yield Static(Content(head), classes="instruction", markup=False)
        yield Markdown(self.answer, classes="answer")
        yield Static(Content(self.state_text), classes="state", markup=False)

    def on_mount(self) -> None:
        self.add_class(f"-{self.state}")

    @property
    def markdown(self) -> Markdown:
        return self.query_one(".answer", Markdown)

    async def append(self, text: str) -> None:
        if not text:
            return
        if self._stream is None:
            self._stream = Markdown.get_stream(self.markdown)
        self.answer += text
        await self._stream.write(text)

    async def flush(self) -> None:
        """Wait until everything appended is rendered."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.stop()

    def set_state(self, state: str, text: str) -> None:
        self.remove_class(f"-{self.state}")
        self.state = state
        self.state_text = text
        self.add_class(f"-{state}")
        self.query_one(".state", Static).update(Content(text))
