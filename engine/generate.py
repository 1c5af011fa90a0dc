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

import threading
import time
from typing import Callable, Sequence

from .errors import UsageError
from .generation import (  # the handle and its records are the interface's (engine/generation.py)
    GenerationHandle,
    GenerationResult,
    Prompt,
    PromptTokens,
    StopReason,
    StopStringFilter,
    Timings,
)
from .model import Model
from .sampling import Sampler, SamplingParams
from .speculative import DraftParams, PromptLookupDrafter, accept
from .tokenizer import IncrementalDecoder

CHUNK_SECONDS = 0.2  # prompt evaluation checks for cancel at least this often (roughly)
MAX_CHUNK = 64


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
