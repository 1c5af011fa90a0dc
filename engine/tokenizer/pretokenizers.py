"""Pre-tokenizers of byte-level BPE vocabularies: cut text into words before merging.

llama.cpp names the pre-tokenizer in `tokenizer.ggml.pre` and applies a list of regexes **in
sequence**: each regex re-splits every current chunk, and the text between matches becomes a
chunk of its own. It runs two of those regexes (GPT-2's and Llama 3's) through hand-written
splitters in unicode.cpp; the others through std::regex on "collapsed" text, where every
non-ASCII codepoint is replaced by a placeholder for its Unicode category.

We do the same without the `regex` package: the two splitters are written out below, and the
other regexes run through stdlib `re` on the same collapsed text (see `unicode_data`), with
`\\p{..}` rewritten into ASCII ranges plus the placeholder, exactly as llama.cpp rewrites them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from . import unicode_data as ud

# ---- the regexes, as llama.cpp spells them (llama-vocab.cpp, llm_tokenizer_bpe) ---------------
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
DEFAULT = (r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]")
FALCON = (r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]")
DIGITS_THEN_GPT2 = (r"\p{N}", GPT2)  # HF Digits(individual_digits) + ByteLevel
CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
DEEPSEEK_CODER = ("[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}")


@dataclass(frozen=True)
class PreTokenizerSpec:
    """What a `tokenizer.ggml.pre` name means to llama.cpp (llama_vocab::impl::load)."""

    kind: str  # llama.cpp's pre-type, e.g. "llama3"
    regexes: tuple[str, ...]
    clean_spaces: bool = True  # detokenize removes the space before ?!., (HF clean_up_...)
    ignore_merges: bool = False  # a word that is a whole token skips the merges
    add_bos: bool | None = None  # forced default, before the file's add_bos_token
    no_bos: bool = False  # the vocabulary has no BOS (chatglm)


def _spec(kind, regexes, **kw) -> PreTokenizerSpec:
    return PreTokenizerSpec(kind, tuple(regexes) if isinstance(regexes, tuple) else (regexes,), **kw)


_LLAMA3_SPEC = _spec("llama3", LLAMA3, ignore_merges=True, add_bos=True)

# Names llama.cpp knows and we implement. Names it knows that are missing here (poro-chat,
# bloom, gpt3-finnish, viking, tekken, chameleon, deepseek-llm, deepseek-v3) fall back to the
# default pre-tokenizer with a warning.
PRE_TOKENIZERS: dict[str, PreTokenizerSpec] = {
    "default": _spec("default", DEFAULT),
    "llama3": _LLAMA3_SPEC,
    "llama-v3": _LLAMA3_SPEC,
    "llama-bpe": _LLAMA3_SPEC,
    "falcon3": _LLAMA3_SPEC,
    "dbrx": _spec("dbrx", LLAMA3),
    "smaug-bpe": _spec("smaug", LLAMA3),
    "chatglm-bpe": _spec("chatglm4", LLAMA3, no_bos=True),
    "falcon": _spec("falcon", FALCON),
    "mpt": _spec("mpt", GPT2),
    "olmo": _spec("olmo", GPT2),
    "jais": _spec("jais", GPT2),
    **{
        name: _spec("gpt2", GPT2)
        for name in (
            "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es",
            "jina-v2-de", "jina-v2-code", "roberta-bpe",
        )
    },
    "starcoder": _spec("starcoder", DIGITS_THEN_GPT2),
    "refact": _spec("refact", DIGITS_THEN_GPT2),
    "command-r": _spec("command-r", DIGITS_THEN_GPT2, clean_spaces=False),
    "smollm": _spec("smollm", DIGITS_THEN_GPT2, clean_spaces=False),
    "codeshell": _spec("codeshell", DIGITS_THEN_GPT2),
    "exaone": _spec("exaone", DIGITS_THEN_GPT2),
    "minerva-7b": _spec("minerva", DIGITS_THEN_GPT2),
    "qwen2": _spec("qwen2", QWEN2, clean_spaces=False),
    "deepseek-r1-qwen": _spec("qwen2", QWEN2, clean_spaces=False),
    "stablelm2": _spec("stablelm2", QWEN2),
    "megrez": _spec("qwen2", QWEN2),
    "deepseek-coder": _spec("deepseek-coder", DEEPSEEK_CODER, clean_spaces=False),
}


def resolve_pre_tokenizer(name: str | None) -> tuple[PreTokenizerSpec, str | None]:
    """The spec for a `tokenizer.ggml.pre` value, and a warning when it is not the named one.

    llama.cpp uses "default" when the key is missing (and warns that quality degrades); for
    a name it does not know it refuses the file. We fall back to "default" in both cases
    and say so, so the caller can show it instead of tokenizing silently wrong.
    """
    if not name:
        return PRE_TOKENIZERS["default"], (
            "the model file names no BPE pre-tokenizer (tokenizer.ggml.pre): using 'default', "
            "as llama.cpp does; generation quality may be degraded"
        )
    spec = PRE_TOKENIZERS.get(name)
    if spec is not None:
        return spec, None
    return PRE_TOKENIZERS["default"], (
        f"BPE pre-tokenizer {name!r} is not supported: using 'default' instead, so "
        "tokenization may differ from llama.cpp's"
    )


# ---- the splitters -----------------------------------------------------------------------------
# Both read collapsed text (ASCII kept, other codepoints replaced by class placeholders) and
# append the end offset of each word to `out`. Letter/number/whitespace tests and the "runs"
# below are the flags of llama.cpp's unicode_cpt_flags.
_LETTERS = "A-Za-z" + ud.LETTER
_DIGITS = "0-9" + ud.NUMBER
_SPACES = "\t\n\x0b\x0c\r "  # ASCII White_Space; non-ASCII whitespace is collapsed to \x0b
_L_RUN = re.compile(f"[{_LETTERS}]+")
_N_RUN = re.compile(f"[{_DIGITS}]+")
_W_RUN = re.compile(f"[{_SPACES}]+")
_O_RUN = re.compile(f"[^{_LETTERS}{_DIGITS}{_SPACES}]+")  # anything else (\p{P}, \p{S}, ...)
_RN_RUN = re.compile("[\r\n]+")

_KIND: dict[str, str] = {}
for _cp in range(128):
    _c = chr(_cp)
    _KIND[_c] = "L" if _c.isascii() and _c.isalpha() else "N" if _c in "0123456789" else "W" if _c in _SPACES else "O"
_KIND[ud.LETTER] = "L"
_KIND[ud.NUMBER] = "N"
for _c in (ud.OTHER, ud.PUNCT, ud.MARK, ud.SYMBOL):
    _KIND[_c] = "O"


def split_gpt2(col: str, start: int, end: int, out: list[int]) -> None:
    """'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    kind = _KIND
    append = out.append
    pos = start
    while pos < end:
        c = col[pos]
        if c == "'" and pos + 1 < end:
            if col[pos + 1] in "stmd":
                pos += 2
                append(pos)
                continue
            if pos + 2 < end and col[pos + 1 : pos + 3] in ("re", "ve", "ll"):
                pos += 3
                append(pos)
                continue
        if c == " ":
            # " ?X+": the class is decided by the character after the space.
            k2 = kind[col[pos + 1]] if pos + 1 < end else ""
            p = pos + 1
        else:
            k2 = kind[c]
            p = pos
        if k2 == "L":
            pos = _L_RUN.match(col, p, end).end()
        elif k2 == "N":
            pos = _N_RUN.match(col, p, end).end()
        elif k2 == "O":
            pos = _O_RUN.match(col, p, end).end()
        else:
            m = _W_RUN.match(col, pos, end)
            n = m.end() - pos if m else 0
            if n > 1 and pos + n < end:
                pos += n - 1  # \s+(?!\S): leave the last space to the word after it
            elif n > 0:
                pos += n
            else:
                pos += 1
        append(pos)


def split_llama3(col: str, start: int, end: int, out: list[int]) -> None:
    """(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}
    | ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"""
    kind = _KIND
    append = out.append
    pos = start
    while pos < end:
        c = col[pos]
        if c == "'" and pos + 1 < end:
            c1 = col[pos + 1]
            if c1 in "sStTmMdD":
                pos += 2
                append(pos)
                continue
            if pos + 2 < end and col[pos + 1 : pos + 3].lower() in ("re", "ve", "ll"):
                pos += 3
                append(pos)
                continue
        k = kind[c]
        # [^\r\n\p{L}\p{N}]?\p{L}+
        if c != "\r" and c != "\n" and k != "N":
            if k == "L" or (pos + 1 < end and kind[col[pos + 1]] == "L"):
                m = _L_RUN.match(col, pos + 1, end)
                pos = m.end() if m else pos + 1
                append(pos)
                continue
        # \p{N}{1,3}
        if k == "N":
            run_end = _N_RUN.match(col, pos, end).end()
            while pos + 3 <= run_end:
                pos += 3
                append(pos)
            if pos < run_end:
                pos = run_end
                append(pos)
            continue
        # " ?[^\s\p{L}\p{N}]+[\r\n]*" (llama.cpp tests the flags of the space itself, so a
        # lone space at the end of the chunk also lands here)
        k2 = (kind[col[pos + 1]] if pos + 1 < end else "") if c == " " else k
        if k2 != "W" and k2 != "L" and k2 != "N":
            p = pos + 1 if c == " " else pos
            m = _O_RUN.match(col, p, end)
            if m:
                p = m.end()
            m = _RN_RUN.match(col, p, end)
            pos = m.end() if m else p
            append(pos)
            continue
        m = _W_RUN.match(col, pos, end)
        n = m.end() - pos if m else 0
        if n:
            # \s*[\r\n]+: whitespace up to and including the last line break of the run
            last = max(col.rfind("\n", pos, pos + n), col.rfind("\r", pos, pos + n))
            if last >= 0:
                pos = last + 1
                append(pos)
                continue
        if n > 1 and pos + n < end:
            pos += n - 1
        elif n > 0:
            pos += n
        else:
            pos += 1
        append(pos)


# ---- regexes through stdlib `re` ------------------------------------------------------------
# ASCII members of each category, as llama.cpp's k_ucat_map lists them (note: `~` is not in
# \p{S} there), followed by the category's placeholder.
_CATEGORY_CLASS = {
    "N": ud.NUMBER + "0-9",
    "L": ud.LETTER + "A-Za-z",
    "P": ud.PUNCT + r"!-#%-*,-/:-;?-@\[-\]_\{\}",
    "M": ud.MARK,
    "S": ud.SYMBOL + r"\$\+<->\^`\|",
}
_CATEGORY_RE = re.compile(r"\\p\{([NLPMS])\}")


def collapse_pattern(expr: str) -> str:
    """Rewrite `\\p{X}` into a character class over collapsed text, as llama.cpp does."""
    out = []
    inside = False
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == "[" and (i == 0 or expr[i - 1] != "\\"):
            inside = True
        elif ch == "]" and inside and expr[i - 1] != "\\":
            inside = False
        m = _CATEGORY_RE.match(expr, i)
        if m:
            cls = _CATEGORY_CLASS[m.group(1)]
            out.append(cls if inside else f"[{cls}]")
            i = m.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _Subjects:
    """The collapsed forms of one text, computed when a pass first needs them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._collapsed: str | None = None
        self._ws: str | None = None

    @property
    def collapsed(self) -> str:
        if self._collapsed is None:
            self._collapsed = ud.collapse(self.text)
        return self._collapsed

    @property
    def ws(self) -> str:
        if self._ws is None:
            self._ws = ud.collapse_whitespace(self.text)
        return self._ws


Pass = Callable[[_Subjects, list[int]], list[int]]


def _splitter_pass(splitter) -> Pass:
    def run(subjects: _Subjects, ends: list[int]) -> list[int]:
        col = subjects.collapsed
        out: list[int] = []
        start = 0
        for end in ends:
            splitter(col, start, end, out)
            start = end
        return out

    return run


def _regex_pass(expr: str) -> Pass:
    uses_categories = _CATEGORY_RE.search(expr) is not None
    # std::regex's `$` is the end of the chunk only; Python's also matches before a final \n.
    pattern = collapse_pattern(expr) if uses_categories else expr
    compiled = re.compile(pattern.replace("$", r"\Z"), re.ASCII)

    def run(subjects: _Subjects, ends: list[int]) -> list[int]:
        subject = subjects.collapsed if uses_categories else subjects.ws
        out: list[int] = []
        start = 0
        for end in ends:
            done = 0
            # Slice, so that the chunk's edges are the string's edges for lookaheads.
            for m in compiled.finditer(subject[start:end]):
                a, b = m.span()
                if a == b:
                    continue
                if a > done:
                    out.append(start + a)  # the unmatched gap is a word of its own
                out.append(start + b)
                done = b
            if start + done < end:
                out.append(end)
            start = end
        return out

    return run


def _make_pass(expr: str) -> Pass:
    # llama.cpp recognises these two regexes by their text and runs its own splitters.
    if expr == GPT2:
        return _splitter_pass(split_gpt2)
    if expr == LLAMA3:
        return _splitter_pass(split_llama3)
    return _regex_pass(expr)


class PreTokenizer:
    """Cuts text into the words that BPE merges separately."""

    def __init__(self, spec: PreTokenizerSpec) -> None:
        self.spec = spec
        self._passes = [_make_pass(expr) for expr in spec.regexes]

    def split(self, text: str) -> list[str]:
        if not text:
            return []
        subjects = _Subjects(text)
        ends = [len(text)]
        for run in self._passes:
            ends = run(subjects, ends)
        words = []
        start = 0
        for end in ends:
            words.append(text[start:end])
            start = end
        return words
