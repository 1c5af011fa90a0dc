"""GPT-2's byte <-> printable-character mapping used by byte-level BPE vocabularies.

Byte-level BPE stores every token as text in which each byte is one printable character:
bytes that are already printable (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for themselves and the
other 68 bytes map, in byte order, to U+0100, U+0101, ... (so space is 'Ġ' U+0120 and '\\n'
is 'Ċ' U+010A).
"""

from __future__ import annotations

_PRINTABLE = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]


def _build() -> list[str]:
    chars = [""] * 256
    for b in _PRINTABLE:
        chars[b] = chr(b)
    n = 0
    for b in range(256):
        if not chars[b]:
            chars[b] = chr(0x100 + n)
            n += 1
    return chars


BYTE_TO_CHAR: list[str] = _build()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in enumerate(BYTE_TO_CHAR)}

# str.translate table from latin-1 text (one char per byte) to the byte-level alphabet.
_ENCODE_TABLE = {b: c for b, c in enumerate(BYTE_TO_CHAR)}


def bytes_to_unicode_text(data: bytes) -> str:
    """UTF-8 bytes -> the byte-level alphabet ("Hello world" -> "HelloĠworld")."""
    # latin-1 turns each byte into the codepoint of the same value; translate does the rest
    # in C, which matters because every pre-tokenized word goes through here.
    return data.decode("latin-1").translate(_ENCODE_TABLE)


def unicode_text_to_bytes(text: str) -> bytes:
    """The inverse of `bytes_to_unicode_text`, as llama.cpp's `llama_decode_text` does it.

    A character outside the alphabet cannot come from a byte-level vocabulary built by a
    converter; llama.cpp then writes "[UNK_BYTE_0x<utf8 hex><text>]" and so do we.
    """
    try:
        return bytes([CHAR_TO_BYTE[c] for c in text])
    except KeyError:
        pass
    out = bytearray()
    for c in text:
        b = CHAR_TO_BYTE.get(c)
        if b is not None:
            out.append(b)
        else:
            # llama.cpp reads the token as UTF-8, so a broken byte shows as U+FFFD.
            raw = "\ufffd".encode() if "\ud800" <= c <= "\udfff" else c.encode()
            out += b"[UNK_BYTE_0x" + raw.hex().encode() + text.encode("utf-8", "surrogateescape") + b"]"
    return bytes(out)
