"""One instruction and the model's answer, in the conversation."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownFence, MarkdownStream

from ..edits.code_blocks import CodeBlock, find_code_blocks
from ..history import StoredTurn
from ..session import resumed_state
from ..visible import VisibleStream, visible, visible_content


class Exchange(Vertical):
    """The instruction (and the files sent with it), the answer as Markdown, a state line.

    The answer streams through Textual's ``MarkdownStream`` (``append``), which coalesces
    fragments when they come faster than they can be rendered. ``state`` is "generating",
    "done", "stopped" or "error"; the CSS class ``-<state>`` follows it. A turn resumed from
    history is built finished: its ``answer``, ``state`` and ``state_text`` given at once.

    The answer's fenced code blocks can be selected (``select_block``): the block's fence is
    outlined (class ``-selected-block``) and a line under the answer names it and the keys.
    ``file_digests`` are the (path -> digest) of the files the prompt was built from, and
    ``file_texts`` their text then (for showing what changed before an insert).

    Everything shown goes through ``tui.visible``: an escape sequence in the answer (or an
    instruction pasted from elsewhere) is shown as text, never sent to the terminal. ``answer``
    keeps the exact text: code blocks are inserted and copied from it.
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
        file_digests: dict[str, str] | None = None,
        file_texts: dict[str, str] | None = None,
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
        self._visible = VisibleStream()
        self.file_digests: dict[str, str] = dict(file_digests or {})
        self.file_texts: dict[str, str] = dict(file_texts or {})
        self.selected_block: int | None = None

    @classmethod
    def resumed(cls, exchange_id: int, turn: StoredTurn) -> Exchange:
        """A saved turn shown again (a resumed conversation), as it ended."""
        state, state_text = resumed_state(turn)
        return cls(exchange_id, turn.instruction, tuple(path for path, _ in turn.files), answer=turn.answer,
                   state=state, state_text=state_text, file_digests=dict(turn.files))

    def compose(self) -> ComposeResult:
        head = "› " + self.instruction.replace("\n", "\n  ")
        if self.files:
            head += "\n  files: " + ", ".join(self.files)
        yield Static(visible_content(head), classes="instruction", markup=False)
        yield Markdown(visible(self.answer), classes="answer")
        yield Static("", classes="block-bar", markup=False)
        yield Static(visible_content(self.state_text), classes="state", markup=False)

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
        shown = self._visible.feed(text)
        if shown:
            await self._stream.write(shown)

    async def flush(self) -> None:
        """Wait until everything appended is rendered."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            rest = self._visible.end()  # a final CR held back
            if rest:
                await stream.write(rest)
            await stream.stop()

    def set_state(self, state: str, text: str) -> None:
        self.remove_class(f"-{self.state}")
        self.state = state
        self.state_text = text
        self.add_class(f"-{state}")
        self.query_one(".state", Static).update(visible_content(text))

    # -- code blocks ------------------------------------------------------------------------

    def code_blocks(self) -> list[CodeBlock]:
        """The answer's blocks; while it streams, only those already closed."""
        blocks = find_code_blocks(self.answer)
        if self.state == "generating":
            blocks = [block for block in blocks if block.closed]
        return blocks

    def fence_widget(self, index: int) -> MarkdownFence | None:
        """The rendered fence of block ``index`` (None when the rendering differs)."""
        fences = list(self.markdown.query(MarkdownFence))
        if len(fences) != len(find_code_blocks(self.answer)) or not 0 <= index < len(fences):
            return None
        return fences[index]

    def select_block(self, index: int | None, keys: str = "") -> CodeBlock | None:
        """Select block ``index`` (None: no selection); ``keys`` is the hint shown with it."""
        for fence in self.markdown.query(MarkdownFence):
            if fence.has_class("-selected-block"):
                fence.remove_class("-selected-block")
                fence.border_title = fence.border_subtitle = None
        bar = self.query_one(".block-bar", Static)
        blocks = self.code_blocks()
        if index is None or not 0 <= index < len(blocks):
            self.selected_block = None
            bar.update("")
            self.remove_class("-has-selection")
            return None
        self.selected_block = index
        block = blocks[index]
        fence = self.fence_widget(index)
        title = f"▶ block {index + 1}/{len(blocks)} · {visible(block.label())}"
        if fence is not None:
            # Named on its own border too: the line under the answer may be out of view.
            fence.add_class("-selected-block")
            fence.border_title = title
            fence.border_subtitle = keys or None
        bar.update(Content(title + (f" · {keys}" if keys else "")))
        self.add_class("-has-selection")
        return block
