"""The conversation area on the right of the screen."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll

from ..edits.code_blocks import CodeBlock
from ..model_loader import ModelStatus
from .exchange import Exchange
from .welcome_panel import WelcomePanel


class SelectedBlock(NamedTuple):
    """The code block the block keys act on."""

    exchange: Exchange
    block: CodeBlock
    index: int
    """Its place in the exchange's answer (from 0)..."""
    count: int
    """...of this many blocks."""


class Conversation(VerticalScroll):
    """A scrolling column: the welcome panel, then one ``Exchange`` per instruction.

    While an answer streams the view is anchored to the end; scrolling up releases the
    anchor (Textual's ``anchor``), and scrolling back to the end takes it again.

    With the focus here, plain keys walk the answers' code blocks and act on the selected
    one (the main screen's alt+ keys do the same from anywhere; these need no alt key,
    which some terminals do not send).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right_square_bracket", "screen.next_block", "Next block", id="conversation-next-block",
                tooltip="Select the next code block of the answers."),
        Binding("left_square_bracket", "screen.previous_block", "Previous block", id="conversation-previous-block",
                tooltip="Select the previous code block of the answers."),
        Binding("i", "screen.insert_block", "Insert", id="conversation-insert-block",
                tooltip="Insert the selected code block into a file (preview first)."),
        Binding("y", "screen.copy_block", "Copy block", id="conversation-copy-block",
                tooltip="Copy the selected code block to the clipboard (OSC 52)."),
    ]

    def __init__(
        self,
        project_dir: Path,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.project_dir = project_dir
        self.border_title = "Conversation"
        self._selection: tuple[int, int] | None = None  # (exchange id, block index)

    def compose(self) -> ComposeResult:
        yield WelcomePanel(self.project_dir)

    async def show_model_status(self, status: ModelStatus) -> None:
        await self.query_one(WelcomePanel).show_model_status(status)

    @property
    def exchanges(self) -> list[Exchange]:
        return list(self.query(Exchange))

    async def add_exchange(self, exchange: Exchange) -> Exchange:
        await self.mount(exchange)
        self.anchor()
        return exchange

    def get_exchange(self, exchange_id: int) -> Exchange | None:
        for exchange in self.query(Exchange):
            if exchange.exchange_id == exchange_id:
                return exchange
        return None

    async def clear_exchanges(self) -> None:
        await self.query(Exchange).remove()

    async def show_exchanges(self, exchanges: list[Exchange]) -> None:
        """Replace the exchanges shown (a conversation resumed from history), the end in view."""
        await self.clear_exchanges()
        if exchanges:
            await self.mount_all(exchanges)
        self.scroll_end(animate=False)
        self.anchor()

    def all_blocks(self) -> list[tuple[Exchange, int]]:
        """(exchange, block index) of every selectable code block, top to bottom."""
        return [(exchange, index) for exchange in self.query(Exchange)
                for index in range(len(exchange.code_blocks()))]

    # -- the selected code block --------------------------------------------------------------

    def selected_block(self) -> SelectedBlock | None:
        """The selection, if it still names a block on screen."""
        if self._selection is None:
            return None
        exchange = self.get_exchange(self._selection[0])
        blocks = exchange.code_blocks() if exchange is not None else []
        index = self._selection[1]
        if exchange is None or not 0 <= index < len(blocks):
            self._selection = None
            return None
        return SelectedBlock(exchange, blocks[index], index, len(blocks))

    def select_block(self, step: int, keys_hint: str = "") -> SelectedBlock | None:
        """Move the selection ``step`` blocks on, wrapping around (0, or no selection yet:
        the last block of all). ``keys_hint`` is shown on the selected block. None: no blocks."""
        blocks = self.all_blocks()
        if not blocks:
            return None
        current = None
        if self.selected_block() is not None:
            current = next((n for n, (exchange, index) in enumerate(blocks)
                            if (exchange.exchange_id, index) == self._selection), None)
        position = len(blocks) - 1 if current is None else (current + step) % len(blocks)
        self.clear_block_selection()
        exchange, index = blocks[position]
        exchange.select_block(index, keys_hint)
        self._selection = (exchange.exchange_id, index)
        self.scroll_to_widget(exchange.fence_widget(index) or exchange, animate=False, top=False)
        return self.selected_block()

    def clear_block_selection(self) -> None:
        self._selection = None
        for exchange in self.exchanges:
            if exchange.selected_block is not None:
                exchange.select_block(None)
