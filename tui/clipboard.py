"""Copy to the user's clipboard from a terminal, locally or over SSH: OSC 52.

The terminal emulator on the user's side puts the text on the clipboard when it reads
ESC ] 52 ; c ; <base64> BEL. Inside tmux the sequence must be wrapped in tmux's DCS
passthrough (and tmux needs `set -g allow-passthrough on`; with `set-clipboard on` tmux also
keeps it in its own buffer). Terminals cap what they accept, so a text over the limit is
written to a file instead and the user is told where.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

OSC52_MAX_BASE64 = 100_000  # xterm's default limit is about this; larger copies get dropped


def osc52_sequence(text: str, in_tmux: bool) -> str | None:
    """The escape sequence that copies `text`, or None when it is too large to send."""
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    if len(data) > OSC52_MAX_BASE64:
        return None
    sequence = f"\x1b]52;c;{data}\a"
    if in_tmux:
        # DCS tmux; <sequence with every ESC doubled> ST
        sequence = "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence


def save_to_file(text: str, folder: Path) -> Path:
    """Write `text` to folder/clipboard.txt atomically; return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "clipboard.txt"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".clipboard-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
