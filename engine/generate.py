"""Generation in a background thread: prompt (with prompt-cache reuse), sampling, streaming.

    gen = Generator(model)
    handle = gen.start("### Instruction: ...", SamplingParams(temperature=0), max_tokens=200,
                       stop=["### Instruction:"])
    for piece in handle:          # text as it is produced (or pass on_piece=callback)
        print(piece, end="")
    handle.result.stop_reason, handle.timings()

The worker thread owns the model while it runs; the handle is the only thing another thread
(the TUI's, the CLI's main thread) touches, and every method of it is thread-safe.
`cancel()` is honoured between two generated tokens and between two chunks of the prompt;
the prompt is evaluated in chunks sized to take about CHUNK_SECONDS each.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from .errors import UsageError
from .generation import Prompt, PromptTokens
from .model import Model
from .sampling import Sampler, SamplingParams
from .speculative import DraftParams, PromptLookupDrafter, accept
from .tokenizer import IncrementalDecoder

CHUNK_SECONDS = 0.2  # prompt evaluation checks for cancel at least this often (roughly)
MAX_CHUNK = 64


class StopReason(str, enum.Enum):
    EOS = "eos"  # the model ended its answer
    STOP_STRING = "stop"  # a stop string appeared (it is not part of the text)
    LIMIT = "limit"  # max_tokens reached
    CONTEXT_FULL = "context"  # no room left and no context shift asked for
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class Timings:
    prompt_tokens: int = 0  # tokens in the prompt
    prompt_evaluated: int = 0  # of which evaluated now (the rest came from the prompt cache)
    prompt_seconds: float = 0.0
    generated_tokens: int = 0
    generation_seconds: float = 0.0
    drafted_tokens: int = 0  # tokens guessed by speculative drafting and verified
    accepted_tokens: int = 0  # of which the model agreed with (each one saved a forward pass)

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_evaluated / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    @property
    def generation_tokens_per_second(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds > 0 else 0.0

    @property
    def acceptance(self) -> float | None:
        """The share of drafted tokens that were accepted; None when nothing was drafted."""
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None

    def summary(self) -> str:
        cached = self.prompt_tokens - self.prompt_evaluated
        reuse = f" ({cached} reused from the cache)" if cached else ""
        drafts = (
            f"; drafts: {self.accepted_tokens} of {self.drafted_tokens} accepted ({100 * self.acceptance:.0f}%)"
            if self.drafted_tokens else ""
        )
        return (
            f"prompt: {self.prompt_evaluated} tokens{reuse} in {self.prompt_seconds:.2f} s "
            f"({self.prompt_tokens_per_second:.1f} tok/s); generation: {self.generated_tokens} tokens "
            f"in {self.generation_seconds:.2f} s ({self.generation_tokens_per_second:.1f} tok/s){drafts}"
        )


@dataclass
class GenerationResult:
    text: str = ""  # everything streamed, stop string excluded
    tokens: list[int] = field(default_factory=list)  # generated tokens
    stop_reason: StopReason | None = None
    timings: Timings = field(default_factory=Timings)
    error: BaseException | None = None


_END = object()


class StopStringFilter:
    """Holds back text that could be the start of a stop string, so a stop string split
    across tokens is caught and never shown."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to show now, and whether a stop string was found."""
        buf = self.held + text
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return buf[: min(hits)], True
        keep = 0
        for s in self.stops:  # the longest tail of buf that begins some stop string
            for n in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:n]):
                    keep = n
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


class GenerationHandle:
    """A running (or finished) generation. Iterate for text pieces; all methods thread-safe."""

    def __init__(self, on_piece: Callable[[str], None] | None) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._timings = Timings()
        self._on_piece = on_piece
        self.result = GenerationResult()
        self.thread: threading.Thread | None = None
        self.sampler: Sampler | None = None  # the local engine's (its `logprobs`, when asked for)
        self._ended = False

    # ---- for the consumer -----------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def timings(self) -> Timings:
        """The timings so far (live while running, final when done)."""
        with self._lock:
            return self._timings

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def next_piece(self, timeout: float | None = None) -> str | None:
        """The next piece of text; "" if none came within `timeout`; None once finished.
        Safe to call again after an interrupted call (nothing is lost)."""
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return ""
        if item is _END:
            self._ended = True
            return None
        return item

    def __iter__(self):
        while (piece := self.next_piece()) is not None:
            yield piece
        if self.result.error is not None:
            raise self.result.error

    def text(self) -> str:
        """Wait for the end and return the whole text."""
        for _ in self:
            pass
        return self.result.text

    # ---- for the worker ----------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        if text:
            self.result.text += text
            self._queue.put(text)
            if self._on_piece is not None:
                self._on_piece(text)

    def _set_timings(self, **changes) -> None:
        with self._lock:
            self._timings = replace(self._timings, **changes)

    def _finish(self, reason: StopReason, error: BaseException | None = None) -> None:
        self.result.stop_reason = reason
        self.result.error = error
        self.result.timings = self.timings()
        self._done.set()
        self._queue.put(_END)


class Generator:
    """Runs generations on one model, one at a time, reusing the KV cache between them.

    `draft` sets speculative decoding (engine/speculative.py), on by default: tokens guessed
    from the prompt and earlier answers are verified in one batch; the text is the same as
    without it (greedy, or sampling with the same seed). A start() may override it.
    """

    def __init__(self, model: Model, draft: DraftParams | None = None) -> None:
        self.model = model
        self.draft = DraftParams() if draft is None else draft
        self._drafter: PromptLookupDrafter | None = None
        self._busy = threading.Lock()

    @property
    def n_ctx(self) -> int:
        return self.model.n_ctx

    def tokenize(self, prompt: Prompt, add_bos: bool | None = None, parse_special: bool = False) -> list[int]:
        if isinstance(prompt, PromptTokens) and prompt.ids is not None:
            return list(prompt.ids)  # tokenized before: the same ids, not a second encoding
        if isinstance(prompt, PromptTokens):
            prompt = prompt.text
        if isinstance(prompt, str):
            tok = self.model.tokenizer
            return tok.encode(prompt, add_bos=tok.add_bos if add_bos is None else add_bos, parse_special=parse_special)
        return [int(t) for t in prompt]

    def tokenize_prompt(self, text: str, *, add_bos: bool | None = None, parse_special: bool = False) -> PromptTokens:
        """`text` as `start` would tokenize it (engine/generation.py's interface)."""
        return PromptTokens.of_ids(text, self.tokenize(text, add_bos, parse_special))

    def start(
        self,
        prompt: Prompt,
        params: SamplingParams | None = None,
        *,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        add_bos: bool | None = None,
        parse_special: bool = False,
        keep: int | None = None,
        on_piece: Callable[[str], None] | None = None,
        draft: DraftParams | None = None,
        messages: Sequence[dict] | None = None,
        logprobs: int | None = None,
    ) -> GenerationHandle:
        """Tokenize (text only: a `PromptTokens` keeps its ids) and check the prompt here
        (errors are raised now), then generate in a background thread. `max_tokens` -1 = until
        EOS, a stop string or the context is full; `keep` = on a full context, keep the first
        `keep` tokens and drop half of the rest (llama.cpp's --keep) instead of stopping.
        `messages` is a server's (engine/generation.py): the model here reads the prompt.
        `logprobs` (0 or more alternatives): the handle's `sampler.logprobs` gets each picked
        token's log probability."""
        params = params or SamplingParams()
        tokens = self.tokenize(prompt, add_bos, parse_special)
        n_ctx = self.model.n_ctx
        if not tokens:
            raise UsageError("the prompt is empty")
        if len(tokens) > n_ctx:
            raise UsageError(f"the prompt has {len(tokens)} tokens, more than the context of {n_ctx} (use -c to raise it)")
        if keep is not None and not 0 <= keep < n_ctx:
            raise UsageError(f"--keep {keep} must be between 0 and the context size {n_ctx}")
        if not self._busy.acquire(blocking=False):
            raise UsageError("a generation is already running on this model")
        handle = GenerationHandle(on_piece)
        handle.sampler = Sampler(params, top_logprobs=logprobs)
        drafter = self._drafter_for(self.draft if draft is None else draft)
        handle.thread = threading.Thread(
            target=self._run, args=(handle, tokens, handle.sampler, max_tokens, stop, keep, drafter),
            name="codeup-generate", daemon=True,
        )
        handle.thread.start()
        return handle

    def _drafter_for(self, params: DraftParams) -> PromptLookupDrafter | None:
        """The session's drafter (it remembers earlier answers), or None with drafting off."""
        if not params.enabled:
            return None
        if self._drafter is None or self._drafter.params != params:
            self._drafter = PromptLookupDrafter(params)
        return self._drafter

    # ---- the worker ------------------------------------------------------------------------------
    def _run(self, h: GenerationHandle, tokens: list[int], sampler: Sampler, max_tokens: int, stop, keep, drafter) -> None:
        try:
            reason = self._generate(h, tokens, sampler, max_tokens, stop, keep, drafter)
            if drafter is not None:
                drafter.remember_answer(h.result.tokens)
            h._finish(reason)
        except BaseException as e:  # reported through the handle; the thread never dies loudly
            h._finish(StopReason.ERROR, e)
        finally:
            self._busy.release()

    def _eval_prompt(self, h: GenerationHandle, tokens: list[int]):
        """Evaluate what the cache does not already hold; None if cancelled."""
        model = self.model
        cached = model.tokens
        common = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            common += 1
        # The last prompt token is always evaluated again: its logits start the answer.
        common = min(common, len(tokens) - 1)
        model.rewind(common)
        todo = tokens[common:]
        h._set_timings(prompt_tokens=len(tokens), prompt_evaluated=0)
        start = time.perf_counter()
        chunk, done, logits = 4, 0, None
        while done < len(todo):
            if h.cancelled:
                return None
            t0 = time.perf_counter()
            part = todo[done : done + chunk]
            logits = model.eval(part)
            done += len(part)
            per_token = (time.perf_counter() - t0) / len(part)
            chunk = max(1, min(MAX_CHUNK, int(CHUNK_SECONDS / max(per_token, 1e-6))))
            h._set_timings(prompt_evaluated=done, prompt_seconds=time.perf_counter() - start)
        return logits

    def _generate(self, h: GenerationHandle, tokens, sampler: Sampler, max_tokens: int, stop, keep, drafter) -> StopReason:
        model, tok = self.model, self.model.tokenizer
        logits = self._eval_prompt(h, tokens)
        if logits is None:
            return StopReason.CANCELLED
        decoder = IncrementalDecoder(tok, strip_leading_space=False)
        stops = StopStringFilter(stop)
        start = time.perf_counter()
        n = drafted = accepted_total = 0
        if drafter is not None:
            drafter.reset(tokens)

        def timings() -> None:
            h._set_timings(generated_tokens=n, generation_seconds=time.perf_counter() - start,
                           drafted_tokens=drafted, accepted_tokens=accepted_total)

        def end(reason: StopReason) -> StopReason:
            # Show what the decoder and the stop filter still hold, unless it ends in a stop.
            text, hit = stops.feed(decoder.flush())
            h._emit(text if hit else text + stops.flush())
            timings()
            return reason

        def take(token: int) -> StopReason | None:
            """One token the model chose, shown unless something ends the answer before it."""
            nonlocal n
            if h.cancelled:
                return end(StopReason.CANCELLED)
            if max_tokens >= 0 and n >= max_tokens:
                return end(StopReason.LIMIT)
            if tok.is_eog(token):
                return end(StopReason.EOS)
            n += 1
            h.result.tokens.append(token)
            text, hit = stops.feed(decoder.push(token))
            h._emit(text)
            timings()
            return StopReason.STOP_STRING if hit else None

        token = sampler.sample(logits[-1], model.tokens)
        while True:
            # `token` was chosen by the model and is not in the cache yet.
            if (reason := take(token)) is not None:
                return reason
            if model.n_past >= model.n_ctx:
                if keep is None:
                    return end(StopReason.CONTEXT_FULL)
                n_keep = min(keep, model.n_past)
                model.shift_context(n_keep, max((model.n_past - n_keep) // 2, 1))
            draft: list[int] = []
            if drafter is not None:
                drafter.push(token)
                room = model.n_ctx - model.n_past - 1
                if max_tokens >= 0:
                    room = min(room, max_tokens - n)
                draft = drafter.draft(room)
            if not draft:
                t0 = time.perf_counter()
                logits = model.eval([token])
                if drafter is not None:
                    drafter.observe(1, time.perf_counter() - t0)
                token = sampler.sample(logits[-1], model.tokens)
                continue
            # Verify: evaluate the token and the guesses in one batch, keep what the sampler
            # agrees with, forget the cache positions of the rest.
            base = model.n_past
            t0 = time.perf_counter()
            logits = model.eval([token, *draft], all_logits=True)
            drafter.observe(1 + len(draft), time.perf_counter() - t0)
            produced = accept(sampler, logits, draft, model.tokens[: base + 1])
            agreed = produced[:-1]
            model.rewind(base + 1 + len(agreed))
            drafter.feedback(len(draft), len(agreed))
            drafted += len(draft)
            accepted_total += len(agreed)
            for t in agreed:
                if (reason := take(t)) is not None:
                    return reason
                drafter.push(t)
            token = produced[-1]
