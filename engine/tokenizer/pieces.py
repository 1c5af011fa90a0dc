"""Token -> bytes, and llama.cpp's whole-text detokenize clean-up.

A token's piece (llama.cpp `token_to_piece` with special=true):
- control and unknown tokens: their text (the caller hides them unless special tokens are
  asked for), user-defined tokens: their text, verbatim;
- SPM normal tokens: the text with '▁' turned back into spaces; byte tokens `<0xXX>`: that
  one byte (so `<0x0A>` is "\\n", and consecutive byte tokens form a UTF-8 character);
- BPE normal tokens: the byte-level alphabet mapped back to bytes;
- anything else (unused, undefined types): nothing.
"""

from __future__ import annotations

from .byte_unicode import unicode_text_to_bytes
from .special_tokens import TokenAttr

_SPM_SPACE = "\u2581"
_SHOWN_VERBATIM = TokenAttr.UNKNOWN | TokenAttr.CONTROL | TokenAttr.USER_DEFINED


def _raw(text: str) -> bytes:
    # Token texts keep undecodable bytes as surrogate escapes; give the bytes back.
    return text.encode("utf-8", "surrogateescape")


def byte_token_value(text: str) -> int:
    """The byte of an SPM byte token "<0xXX>" (llama.cpp: strtol of characters 3..4)."""
    digits = ""
    for ch in text[3:5]:
        if ch not in "0123456789abcdefABCDEF":
            break
        digits += ch
    return int(digits, 16) if digits else 0


def render_piece(text: str, attr: int, is_spm: bool) -> bytes:
    """The piece of one token, as if special tokens were asked for."""
    if attr & _SHOWN_VERBATIM:
        return _raw(text)
    if attr & TokenAttr.NORMAL:
        if is_spm:
            return _raw(text.replace(_SPM_SPACE, " "))
        return unicode_text_to_bytes(text)
    if is_spm and attr & TokenAttr.BYTE:
        return bytes([byte_token_value(text)])
    return b""


def clean_up_spaces(data: bytes) -> bytes:
    """llama.cpp's `clean_spaces` pass of detokenize (HF clean_up_tokenization_spaces).

    Three passes over the bytes, each reading the original previous byte:
    1. drop the space before '?', '!', '.', ',';
    2. " ' " becomes "'" (both spaces go);
    3. drop the space before "'s", "'m", "'re", "'ve" (not before "'t", "'d", "'ll").
    """
    if b" " not in data:
        return data
    sp, quote = 0x20, 0x27

    # pass 1
    out = bytearray(data[:1])
    for i in range(1, len(data)):
        x = data[i]
        if data[i - 1] == sp and x in b"?!.,":
            out.pop()
        out.append(x)
    text = bytes(out)

    # pass 2 (llama.cpp marks the skipped space with NUL, so the byte after it sees NUL
    # as its predecessor)
    buf = bytearray(text)
    out = bytearray(buf[:1])
    n = len(buf)
    i = 1
    while i < n:
        x = buf[i]
        if x == quote and i + 1 < n and buf[i - 1] == sp and buf[i + 1] == sp:
            out.pop()
            i += 1
            buf[i] = 0
        out.append(x)
        i += 1
    text = bytes(out)

    # pass 3
    out = bytearray(text[:1])
    n = len(text)
    for i in range(1, n):
        x = text[i]
        if text[i - 1] == sp and x == quote and i + 1 < n:
            x1 = text[i + 1]
            if x1 in b"sm":
                out.pop()
            elif x1 not in b"td" and i + 2 < n:
                x2 = text[i + 2]
                if (x1, x2) in ((0x72, 0x65), (0x76, 0x65)):  # "re", "ve"
                    out.pop()
        out.append(x)
    return bytes(out)
