"""Codepoint classes as llama.cpp's pre-tokenizers see them.

llama.cpp does not use the Unicode database of the platform: `unicode-data.cpp` holds its own
table (generated from UnicodeData.txt of Unicode 15.1) that gives every codepoint one flag
(letter, number, punctuation, mark, symbol, separator, control, undefined) and a separate
whitespace set. We derive the same flags from `unicodedata`, patch the codepoints that
Python's (older) database leaves unassigned, and use the same whitespace set, so that the
splitters in `pretokenizers.py` cut text exactly where llama.cpp does.

Text is "collapsed" the way llama.cpp's `unicode_regex_split` does it: ASCII stays itself and
every other codepoint becomes one placeholder character per class, so that stdlib `re`
patterns written with ASCII classes plus placeholders (no `regex` package) match categories.
"""

from __future__ import annotations

import unicodedata

# Placeholders for non-ASCII codepoints; the byte values llama.cpp uses in its collapsed
# text (0xD0 fallback, 0xD1 \p{N}, 0xD2 \p{L}, 0xD3 \p{P}, 0xD4 \p{M}, 0xD5 \p{S}).
OTHER = "\xd0"
NUMBER = "\xd1"
LETTER = "\xd2"
PUNCT = "\xd3"
MARK = "\xd4"
SYMBOL = "\xd5"
# llama.cpp maps every non-ASCII whitespace to a vertical tab, which `\s` matches.
WHITESPACE = "\x0b"

# White_Space of PropList.txt, as in llama.cpp's `unicode_set_whitespace`. Note that
# U+001C..U+001F are *not* whitespace here, although Python's str.isspace() says they are.
WHITESPACE_CODEPOINTS = frozenset(
    list(range(0x09, 0x0E))
    + list(range(0x2000, 0x200B))
    + [0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

# General category (first letter) -> placeholder.
_BY_CATEGORY = {"N": NUMBER, "L": LETTER, "P": PUNCT, "M": MARK, "S": SYMBOL}

# Codepoints assigned in Unicode 15.0/15.1 that Python 3.11's database (Unicode 14) leaves
# unassigned, with their major category as in llama.cpp's table: (first, last, category).
# Used only where unicodedata says "Cn", so a newer Python needs none of it.
_UNICODE_15_ADDITIONS = (
    (0x0CF3, 0x0CF3, "M"), (0x0ECE, 0x0ECE, "M"), (0x2FFC, 0x2FFF, "S"), (0x31EF, 0x31EF, "S"),
    (0x10EFD, 0x10EFF, "M"), (0x1123F, 0x11240, "L"), (0x11241, 0x11241, "M"),
    (0x11B00, 0x11B09, "P"), (0x11F00, 0x11F01, "M"), (0x11F02, 0x11F02, "L"),
    (0x11F03, 0x11F03, "M"), (0x11F04, 0x11F10, "L"), (0x11F12, 0x11F33, "L"),
    (0x11F34, 0x11F3A, "M"), (0x11F3E, 0x11F42, "M"), (0x11F43, 0x11F4F, "P"),
    (0x11F50, 0x11F59, "N"), (0x1342F, 0x1342F, "L"), (0x13439, 0x1343F, "C"),
    (0x13440, 0x13440, "M"), (0x13441, 0x13446, "L"), (0x13447, 0x13455, "M"),
    (0x1B132, 0x1B132, "L"), (0x1B155, 0x1B155, "L"), (0x1D2C0, 0x1D2D3, "N"),
    (0x1DF25, 0x1DF2A, "L"), (0x1E030, 0x1E06D, "L"), (0x1E08F, 0x1E08F, "M"),
    (0x1E4D0, 0x1E4EB, "L"), (0x1E4EC, 0x1E4EF, "M"), (0x1E4F0, 0x1E4F9, "N"),
    (0x1F6DC, 0x1F6DC, "S"), (0x1F774, 0x1F776, "S"), (0x1F77B, 0x1F77F, "S"),
    (0x1F7D9, 0x1F7D9, "S"), (0x1FA75, 0x1FA77, "S"), (0x1FA87, 0x1FA88, "S"),
    (0x1FAAD, 0x1FAAF, "S"), (0x1FABB, 0x1FABD, "S"), (0x1FABF, 0x1FABF, "S"),
    (0x1FACE, 0x1FACF, "S"), (0x1FADA, 0x1FADB, "S"), (0x1FAE8, 0x1FAE8, "S"),
    (0x1FAF7, 0x1FAF8, "S"), (0x2B739, 0x2B739, "L"), (0x2EBF0, 0x2EE5D, "L"),
    (0x31350, 0x323AF, "L"),
)


def major_category(cp: int) -> str:
    """One letter, as llama.cpp's flags group them: L N P M S Z C, or "U" (unassigned)."""
    cat = unicodedata.category(chr(cp))
    if cat == "Cn":
        for first, last, major in _UNICODE_15_ADDITIONS:
            if first <= cp <= last:
                return major
        return "U"
    return cat[0]


def collapse_codepoint(cp: int) -> int:
    """The codepoint that stands for `cp` in collapsed text."""
    if cp < 128:
        return cp
    if cp in WHITESPACE_CODEPOINTS:  # whitespace wins over the category (as in llama.cpp)
        return ord(WHITESPACE)
    return ord(_BY_CATEGORY.get(major_category(cp), OTHER))


class _CollapseTable(dict):
    """A `str.translate` table that classifies each codepoint once, on first sight."""

    def __missing__(self, cp: int) -> int:
        value = collapse_codepoint(cp)
        self[cp] = value
        return value


_COLLAPSE = _CollapseTable({cp: cp for cp in range(128)})


def collapse(text: str) -> str:
    """`text` with every non-ASCII codepoint replaced by its class placeholder (same length)."""
    return text.translate(_COLLAPSE)


class _WhitespaceTable(dict):
    def __missing__(self, cp: int) -> int:
        value = ord(WHITESPACE) if cp >= 128 and cp in WHITESPACE_CODEPOINTS else cp
        self[cp] = value
        return value


_WS_ONLY = _WhitespaceTable({cp: cp for cp in range(128)})


def collapse_whitespace(text: str) -> str:
    """`text` with only non-ASCII whitespace replaced (llama.cpp's input to std::wregex)."""
    return text.translate(_WS_ONLY)
