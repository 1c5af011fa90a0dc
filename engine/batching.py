"""Many sequences on one model at once: continuous batching for `codeup serve -np N`.

    scheduler = BatchScheduler(model, n_slots=4)
    handle = scheduler.submit(tokens, SamplingParams(temperature=0), max_tokens=200, stop=[...])
    for piece in handle: ...      # the same GenerationHandle as generate.Generator's

Each slot is one sequence with its own KV cache: a region of the model's (llama.cpp's split
of -c over the slots), or, unified, a cache of the whole context for each slot, the slots
together held to -c positions (idle slots' caches are given up for running requests, and a
request waits while the pool has no room for its prompt). One thread runs every step: a
single forward pass (`forward_many`) evaluates the next token of every generating sequence
together with chunks of the prompts being read, so each weight matrix is read once per step
for all of them — what a memory-bound CPU gains. Prompts are read in chunks sized to keep a
step short, so running streams keep flowing while a long prompt comes in. A request takes the idle slot whose cache
shares the longest prefix with its prompt (at least half of it; else the least recently
used one); a cancelled request frees its slot at the next step.

Batch invariance: a request's greedy text does not depend on what runs beside it. Every
row of the step goes through the same row-wise kernels as it would alone (projections,
norms, RoPE: the matmul kernels give each row the same bits whatever the batch), attention
runs per sequence over that sequence's own cache, and attention sums every position in one
order whether it came in a chunk of a prompt, as a generated token, or alone (the default
summation_order.ENGINE). So the keys and values a slot holds are the same bits however the
prompt was chunked, and a cached prefix — generated tokens included — can be reused exactly.

Speculative decoding (engine/speculative.py): while one sequence is generating alone, its
step also evaluates tokens guessed from its context, as generate.Generator does; with several
sequences in the step the weights are already shared, and nothing is guessed.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .attention import KEY_TILE, key_cache_shape, key_tiles
from .errors import UsageError
from .generate import GenerationHandle, StopReason, StopStringFilter
from .llama import SequenceChunk, forward_many, shift_kv_cache
from .model import Model
from .sampling import Sampler, SamplingParams
from .speculative import DraftParams, PromptLookupDrafter, accept
from .tokenizer import IncrementalDecoder

DEFAULT_SLOTS = 4  # llama.cpp's -np default
# Prompt tokens per step. Beside streams, a step with a prompt chunk may take about three
# generating steps (the streams go on at a third of their speed or better while a prompt is
# read; bigger chunks would stall them, smaller ones leave the new sequences out of the
# batch longer and pay a whole reading of the weights for few tokens), and at least
# STEP_SECONDS; with no stream waiting, IDLE_STEP_SECONDS or four generating steps: prompts
# that arrive together are read in one step, so their answers start together (7B, 2 threads,
# four clients: the four prompts in one 2.4 s step instead of six steps over 5 s). Never
# fewer than MIN_PROMPT_PER_STEP tokens.
STEP_SECONDS = 0.25
IDLE_STEP_SECONDS = 4.0
# An idle server waits after a request for those sent with it: until none came for
# GATHER_QUIET_SECONDS, at most GATHER_MAX_SECONDS (a lone request waits the quiet time).
GATHER_QUIET_SECONDS = 0.01
GATHER_MAX_SECONDS = 0.05
MIN_PROMPT_PER_STEP = 8
MAX_PROMPT_PER_STEP = 256  # llama.cpp's n_batch-like cap on prompt tokens in one step
FIRST_PROMPT_PER_STEP = 16  # before a step has been timed
PROMPT_SIMILARITY = 0.5  # the share of a prompt a slot's cache must hold to be chosen for it
RATE_WINDOW_SECONDS = 10.0  # /health's tokens per second: over this last while


class QueueFull(Exception):
    """More requests wait for a slot than the scheduler accepts."""


class SlotCache:
    """One slot's keys and values, laid out as llama.KVCache's (values (n_layer, n_ctx_slot,
    n_head_kv, head_dim), keys in tiles of sixteen positions): views into the model's KV cache
    (split, where the slots' shares are whole tiles), or arrays of their own; each layer's part
    contiguous. The same attributes as llama.KVCache, so llama.shift_kv_cache works on it."""

    def __init__(self, k: np.ndarray, v: np.ndarray) -> None:
        self.k = k
        self.v = v
        self.n_ctx = v.shape[1]
        self.n_past = 0

    @classmethod
    def empty(cls, hp, n_ctx: int) -> "SlotCache":
        """A cache of its own for n_ctx positions: fresh zeroed pages, taken only as positions
        are written."""
        shape = (hp.n_layer, n_ctx, hp.n_head_kv, hp.head_dim)
        return cls(np.zeros(key_cache_shape(*shape), dtype=np.uint16), np.zeros(shape, dtype=np.uint16))


def _smooth(estimate: float, measured: float) -> float:
    """A running estimate of a step's cost, following changes (the machine is shared) but not
    one odd step."""
    return measured if estimate == 0.0 else 0.7 * estimate + 0.3 * measured


class SlotHandle(GenerationHandle):
    """A generation on the scheduler: generate.GenerationHandle, and whether it got a slot
    (a request cancelled while it waited never ran)."""

    def __init__(self, on_piece: Callable[[str], None] | None) -> None:
        super().__init__(on_piece)
        self.started = False
        self.slot: int | None = None


@dataclass
class _Job:
    """One request: its prompt, sampling and stopping, and where it has got to."""

    handle: SlotHandle
    prompt: list[int]
    sampler: Sampler
    max_tokens: int
    stops: StopStringFilter
    keep: int | None
    decoder: IncrementalDecoder
    arrived: float = field(default_factory=time.monotonic)
    prompt_done: int = 0  # prompt tokens the slot's cache holds
    generated: int = 0
    pending: int | None = None  # the sampled token the next step evaluates
    prompt_started: float = 0.0
    generation_started: float = 0.0


class Slot:
    """One sequence's place: its cache region and the tokens it holds."""

    def __init__(self, ident: int, cache: SlotCache) -> None:
        self.id = ident
        self.cache = cache
        self.tokens: list[int] = []  # the token at each cached position
        # leading positions whose keys and values are what a fresh evaluation of those tokens
        # gives (not a context shift's re-rotated ones): reusable
        self.exact = 0
        # unified: the most positions written since its cache was allocated (their memory is
        # taken, whatever the slot holds now)
        self.high_water = 0
        self.job: _Job | None = None
        self.last_used = 0.0

    def rewind(self, n_past: int) -> None:
        self.cache.n_past = n_past
        del self.tokens[n_past:]
        self.exact = min(self.exact, n_past)


class BatchScheduler:
    """Runs every request on `model` in `n_slots` parallel sequences, one thread doing the
    steps. `submit` is thread-safe; the handles it returns are generate.GenerationHandles."""

    def __init__(self, model: Model, n_slots: int = DEFAULT_SLOTS, max_waiting: int = 64, *,
                 unified: bool = False, draft: DraftParams | None = None) -> None:
        """`unified` False: the model's context is split evenly over the slots, each request
        gets its slot's share. True (llama.cpp's --kv-unified): the context is one pool of
        positions the slots share, and any request may use all of it; the idle slots' caches
        are given up, least recently used first, when the running ones need room."""
        if n_slots < 1:
            raise UsageError(f"the number of parallel sequences must be at least 1, got {n_slots}")
        per_slot = model.n_ctx if unified else model.n_ctx // n_slots
        if per_slot < 1:
            raise UsageError(f"a context of {model.n_ctx} cannot be split over {n_slots} slots")
        self.model = model
        self.unified = unified
        self.n_ctx_slot = per_slot  # the most positions one request may use
        if unified:
            self.slots = [Slot(i, self._empty_cache()) for i in range(n_slots)]
        else:
            # The model's own cache cut in one region per slot, where the regions are whole
            # tiles of keys; otherwise each slot its own cache of the same size.
            if per_slot % KEY_TILE == 0:
                cache = model.cache
                caches = [SlotCache(cache.k[:, i * per_slot // KEY_TILE : (i + 1) * per_slot // KEY_TILE],
                                    cache.v[:, i * per_slot : (i + 1) * per_slot]) for i in range(n_slots)]
            else:
                caches = [SlotCache.empty(model.weights.hp, per_slot) for _ in range(n_slots)]
            # Every region is written sooner or later: take the pages now rather than in the
            # first step of each slot (fresh memory is slow to hand out on some VMs: a new 7B
            # slot's first step took 1.4 s more; llama.cpp clears its cache at start too).
            for c in caches:
                c.k.fill(0)
                c.v.fill(0)
            self.slots = [Slot(i, c) for i, c in enumerate(caches)]
        model.rewind(0)  # the single-sequence view of the cache no longer describes it
        self.max_waiting = max_waiting
        self.most_waiting = 0
        self.most_in_step = 0  # the most sequences one step has evaluated together
        self.steps = 0  # forward passes run
        self._waiting: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        # running estimates that size the prompt chunks: the cost of a step of generated
        # tokens only, and the cost per token of a step with a prompt chunk
        self._decode_seconds = 0.0
        self._seconds_per_token = 0.0
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._rate_lock = threading.Lock()
        # guesses for a sequence generating alone: one drafter (its timing and acceptance
        # estimates carry over), indexing the context of the job it last drafted for
        draft = DraftParams() if draft is None else draft
        self._drafter = PromptLookupDrafter(draft) if draft.enabled else None
        self._draft_job: _Job | None = None
        self._draft_indexed = 0  # tokens of that job's slot the drafter has indexed
        self._thread = threading.Thread(target=self._loop, name="codeup-batch", daemon=True)
        self._thread.start()

    def _empty_cache(self) -> SlotCache:
        """A slot's own cache for the whole context (unified). Fresh zeroed pages: memory is
        taken only as positions are written, so the slots together hold no more than the
        pool's positions (the model's own cache, never written then, takes none)."""
        return SlotCache.empty(self.model.weights.hp, self.model.n_ctx)

    @staticmethod
    def _held(s: Slot) -> int:
        """Positions of the pool a slot takes: those written into its cache, or those it holds
        and will write (its request's prompt still to read, the sampled token next)."""
        wanted = len(s.tokens)
        if s.job is not None:
            wanted += len(s.job.prompt) - s.job.prompt_done + (s.job.pending is not None)
        return max(s.high_water, wanted)

    def _make_room(self, need: int, spare: Slot | None = None) -> bool:
        """Whether `need` more positions fit the pool, giving up idle slots' caches (least
        recently used first; never `spare`'s) until they do. Always True when split."""
        if not self.unified:
            return True
        free = self.model.n_ctx - sum(self._held(s) for s in self.slots)
        idle = sorted((s for s in self.slots if s.job is None and s.high_water and s is not spare),
                      key=lambda s: s.last_used)
        for s in idle:
            if free >= need:
                break
            free += self._held(s)
            s.tokens, s.exact, s.high_water = [], 0, 0
            s.cache = self._empty_cache()  # its written pages go back to the system
        return free >= need

    def _compact(self, s: Slot) -> None:
        """Give back the pages a slot wrote beyond what it holds: its cached prefix copied
        into a fresh cache."""
        n = len(s.tokens)
        fresh = self._empty_cache()
        fresh.k[:, : key_tiles(n)] = s.cache.k[:, : key_tiles(n)]
        fresh.v[:, :n] = s.cache.v[:, :n]
        fresh.n_past = n
        s.cache, s.high_water = fresh, n

    # ---- for request threads -----------------------------------------------------------------
    def submit(
        self,
        tokens: Sequence[int],
        params: SamplingParams | None = None,
        *,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        keep: int | None = None,
        on_piece: Callable[[str], None] | None = None,
        logprobs: int | None = None,
    ) -> SlotHandle:
        """Queue a generation; it starts when a slot is free. UsageError for a prompt that
        does not fit a slot, QueueFull when too many wait. `logprobs` (0 or more
        alternatives): the handle's `sampler.logprobs` gets each picked token's."""
        prompt = [int(t) for t in tokens]
        if not prompt:
            raise UsageError("the prompt is empty")
        if len(prompt) > self.n_ctx_slot:
            where = "" if self.unified else f" (-c {self.model.n_ctx} split over {len(self.slots)} slots)"
            raise UsageError(f"the prompt has {len(prompt)} tokens, more than the context of {self.n_ctx_slot}{where}")
        if keep is not None and not 0 <= keep < self.n_ctx_slot:
            raise UsageError(f"n_keep {keep} must be between 0 and the slot's context size {self.n_ctx_slot}")
        handle = SlotHandle(on_piece)
        handle.sampler = Sampler(params or SamplingParams(), top_logprobs=logprobs)
        tok = self.model.tokenizer
        job = _Job(handle, prompt, handle.sampler, max_tokens, StopStringFilter(stop), keep,
                   IncrementalDecoder(tok, strip_leading_space=False))
        with self._cond:
            if self._closing:
                raise UsageError("the server is shutting down")
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} requests are waiting for a slot")
            self._waiting.append(job)
            busy = sum(s.job is not None for s in self.slots)
            self.most_waiting = max(self.most_waiting, len(self._waiting) - (len(self.slots) - busy))
            self._cond.notify_all()
        return handle

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        return any(s.job is not None for s in self.slots)

    def tokens_per_second(self) -> float:
        """Generated tokens per second over the last RATE_WINDOW_SECONDS, all slots together."""
        now = time.monotonic()
        with self._rate_lock:
            while self._rate and self._rate[0][0] < now - RATE_WINDOW_SECONDS:
                self._rate.popleft()
            if not self._rate:
                return 0.0
            total = sum(n for _t, n in self._rate)
            span = max(now - self._rate[0][0], 1e-3)
        return total / max(span, 1.0)

    def slot_report(self) -> list[dict]:
        """Each slot as llama.cpp's /slots shows it (a snapshot; it changes every step)."""
        report = []
        for s in self.slots:
            job = s.job  # once: the stepping thread may change it meanwhile
            state = "idle" if job is None else "prompt" if job.prompt_done < len(job.prompt) else "generating"
            entry = {"id": s.id, "state": state, "is_processing": job is not None, "n_ctx": s.cache.n_ctx,
                     "n_past": s.cache.n_past}
            if job is not None:
                entry.update(prompt_tokens=len(job.prompt), prompt_processed=job.prompt_done,
                             generated_tokens=job.generated)
            report.append(entry)
        return report

    def close(self, wait: float = 5.0) -> None:
        """Cancel everything and stop the thread (the model may be closed next)."""
        with self._cond:
            self._closing = True
            for job in self._waiting:
                job.handle.cancel()
            for s in self.slots:
                if s.job is not None:
                    s.job.handle.cancel()
            self._cond.notify_all()
        self._thread.join(wait)

    # ---- the stepping thread -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._drop_cancelled_waiting()
                if self._waiting and all(s.job is None for s in self.slots):
                    self._gather()
                self._admit()
                active = [s for s in self.slots if s.job is not None]
                if not active:
                    if self._closing:
                        return
                    self._cond.wait(0.1)
                    continue
            try:
                self._step(active)
            except BaseException as e:  # every running request learns of it; the loop goes on
                for s in active:
                    if s.job is not None:
                        self._finish(s, StopReason.ERROR, e)
                        s.rewind(0)

    def _gather(self) -> None:
        """Requests sent together (an agent's, several editors') reach an idle server a few
        milliseconds apart: wait while they keep coming (GATHER_QUIET_SECONDS between two,
        GATHER_MAX_SECONDS in all) so their prompts share the first step. Holds the lock."""
        deadline = time.monotonic() + GATHER_MAX_SECONDS
        while True:
            seen = len(self._waiting)
            quiet_until = min(deadline, time.monotonic() + GATHER_QUIET_SECONDS)
            while (left := quiet_until - time.monotonic()) > 0 and len(self._waiting) == seen:
                self._cond.wait(left)
            if len(self._waiting) == seen or time.monotonic() >= deadline:
                return

    def _drop_cancelled_waiting(self) -> None:
        for job in [j for j in self._waiting if j.handle.cancelled]:
            self._waiting.remove(job)
            job.handle._finish(StopReason.CANCELLED)

    def _admit(self) -> None:
        """Give free slots to waiting requests, first come first served; each takes the idle
        slot sharing the longest prefix with its prompt (else the least recently used)."""
        while self._waiting:
            idle = [s for s in self.slots if s.job is None]
            if not idle:
                return
            job = self._waiting.popleft()
            try:
                if not self._place(job, idle):
                    self._waiting.appendleft(job)  # the pool is full: it waits for a request to end
                    return
            except Exception as e:  # noqa: BLE001 - (no memory for a cache) that request fails, not the server
                job.handle._finish(StopReason.ERROR, e)

    def _place(self, job: _Job, idle: list[Slot]) -> bool:
        """Give `job` one of the `idle` slots; False when the pool has no room for it yet."""
        prompt = job.prompt

        def shared(slot: Slot) -> int:
            n = 0
            for a, b in zip(slot.tokens[: slot.exact], prompt):
                if a != b:
                    break
                n += 1
            return n

        best = max(idle, key=lambda s: (shared(s), -s.last_used))
        # a slot whose cache holds little of the prompt is not worth emptying: the least
        # recently used one is taken instead (llama.cpp's --slot-prompt-similarity)
        if shared(best) >= PROMPT_SIMILARITY * len(prompt):
            slot = best
        else:
            slot = min(idle, key=lambda s: s.last_used)
        # the last prompt token is always evaluated again: its logits start the answer
        reuse = min(shared(slot), len(prompt) - 1)
        slot.rewind(reuse)
        before = self._held(slot)
        if not self._make_room(max(slot.high_water, len(prompt)) - before, spare=slot):
            if not self.unified or slot.high_water <= len(prompt):
                return False
            self._compact(slot)  # it wrote more than this prompt needs: that memory is given back
            if not self._make_room(len(prompt) - self._held(slot), spare=slot):
                return False
        slot.job = job
        job.prompt_done = reuse
        job.prompt_started = time.perf_counter()
        job.handle.started = True
        job.handle.slot = slot.id
        job.handle._set_timings(prompt_tokens=len(prompt), prompt_evaluated=0)
        return True

    def _step(self, active: list[Slot]) -> None:
        chunks: list[SequenceChunk] = []
        owners: list[Slot] = []
        for s in active:
            if s.job.handle.cancelled:
                self._end(s, StopReason.CANCELLED)
        active = [s for s in active if s.job is not None]
        streaming = [s for s in active if s.job.pending is not None]
        alone = len(active) == 1 and len(streaming) == 1
        draft = self._guess(streaming[0]) if alone else []
        for s in streaming:
            chunks.append(SequenceChunk(s.cache, np.array([s.job.pending, *draft]), s.cache.n_past, True,
                                        all_logits=bool(draft)))
            owners.append(s)
        if streaming:
            target = max(STEP_SECONDS, 3 * self._decode_seconds)
        else:
            target = max(IDLE_STEP_SECONDS, 4 * self._decode_seconds)
        budget = FIRST_PROMPT_PER_STEP
        if self._seconds_per_token > 0:
            budget = int(min(MAX_PROMPT_PER_STEP, max(MIN_PROMPT_PER_STEP, target / self._seconds_per_token)))
        for s in active:
            job = s.job
            left = len(job.prompt) - job.prompt_done
            if left <= 0 or job.pending is not None or budget <= 0:
                continue
            take = min(left, budget)
            part = np.array(job.prompt[job.prompt_done : job.prompt_done + take])
            chunks.append(SequenceChunk(s.cache, part, s.cache.n_past, job.prompt_done + take == len(job.prompt)))
            owners.append(s)
            budget -= take
        if not chunks:
            return
        self.most_in_step = max(self.most_in_step, len(chunks))
        self.steps += 1
        self.model.threads.apply()  # on this thread, and as the machine's other load allows now
        t0 = time.perf_counter()
        results = forward_many(self.model.weights, chunks)
        elapsed = time.perf_counter() - t0
        if alone and self._drafter is not None:
            self._drafter.observe(1 + len(draft), elapsed)
        n_prompt = sum(len(c.tokens) for c in chunks) - len(streaming) - len(draft)
        if n_prompt == 0 and not draft:
            self._decode_seconds = _smooth(self._decode_seconds, elapsed)
        elif n_prompt >= MIN_PROMPT_PER_STEP:  # smaller chunks cost more per token than they will
            self._seconds_per_token = _smooth(self._seconds_per_token, elapsed / (n_prompt + len(streaming)))
        now = time.perf_counter()
        generated = 0
        for s, c, logits in zip(owners, chunks, results):
            job = s.job
            s.tokens.extend(int(t) for t in c.tokens)
            s.last_used = now
            s.high_water = max(s.high_water, s.cache.n_past)
            if s.exact == c.start:
                s.exact = len(s.tokens)
            if job.pending is not None:
                job.pending = None
                if draft:
                    generated += self._verify(s, c, logits, draft)
                    continue
            else:
                job.prompt_done += len(c.tokens)
                job.handle._set_timings(prompt_evaluated=job.handle.timings().prompt_evaluated + len(c.tokens),
                                        prompt_seconds=now - job.prompt_started)
                if logits is None:
                    continue
                job.generation_started = now
            generated += self._next_token(s, logits)
        if generated:
            with self._rate_lock:
                self._rate.append((time.monotonic(), generated))

    def _guess(self, s: Slot) -> list[int]:
        """Tokens guessed to follow the lone generating slot's pending token ([] for none)."""
        drafter, job = self._drafter, s.job
        if drafter is None:
            return []
        context = s.tokens + [job.pending]
        if self._draft_job is not job or len(context) < self._draft_indexed:
            drafter.reset(context)  # another job, or its context was shifted
            self._draft_job = job
        else:
            for t in context[self._draft_indexed :]:
                drafter.push(t)
        self._draft_indexed = len(context)
        cache = s.cache
        room = cache.n_ctx - cache.n_past - 1
        if job.max_tokens >= 0:
            room = min(room, job.max_tokens - job.generated)
        guess = drafter.draft(room)
        # positions past the slot's high-water mark need room in a unified pool
        if guess and not self._make_room(max(0, cache.n_past + 1 + len(guess) - self._held(s)), spare=s):
            return []
        return guess

    def _verify(self, s: Slot, c: SequenceChunk, logits: np.ndarray, draft: list[int]) -> int:
        """Keep the guesses the sampler agrees with (speculative.accept), forget the cache
        positions of the rest, show the accepted tokens; the model's own next pick becomes
        the pending token. Returns the number of tokens generated."""
        job = s.job
        produced = accept(job.sampler, logits, draft, s.tokens[: c.start + 1])
        agreed = produced[:-1]
        s.rewind(c.start + 1 + len(agreed))
        self._drafter.feedback(len(draft), len(agreed))
        timings = job.handle.timings()
        job.handle._set_timings(drafted_tokens=timings.drafted_tokens + len(draft),
                                accepted_tokens=timings.accepted_tokens + len(agreed))
        generated = 0
        for token in agreed:
            taken = self._take(s, token, evaluated=True)
            generated += taken
            if s.job is None or not taken:
                return generated
        return generated + self._take(s, produced[-1])

    def _next_token(self, s: Slot, logits: np.ndarray) -> int:
        """Sample the slot's next token from `logits`, show it, and decide whether it goes on
        (as generate.Generator does for one sequence). Returns 1 if a token was generated."""
        return self._take(s, None, logits=logits)

    def _take(self, s: Slot, token: int | None, *, logits: np.ndarray | None = None, evaluated: bool = False) -> int:
        """Show `token` (or the one sampled from `logits`) unless the answer ends before it;
        a token not yet `evaluated` becomes the pending one. Returns 1 if it was generated."""
        job = s.job
        h = job.handle
        if h.cancelled:
            self._end(s, StopReason.CANCELLED)
            return 0
        if job.max_tokens >= 0 and job.generated >= job.max_tokens:
            self._end(s, StopReason.LIMIT)
            return 0
        if token is None:
            token = job.sampler.sample(logits[-1], s.tokens)
        if self.model.tokenizer.is_eog(token):
            self._end(s, StopReason.EOS)
            return 0
        job.generated += 1
        h.result.tokens.append(token)
        text, hit = job.stops.feed(job.decoder.push(token))
        h._emit(text)
        h._set_timings(generated_tokens=job.generated, generation_seconds=time.perf_counter() - job.generation_started)
        if hit:
            self._finish(s, StopReason.STOP_STRING)
            return 1
        if job.max_tokens >= 0 and job.generated >= job.max_tokens:
            self._end(s, StopReason.LIMIT)  # evaluating it would only give logits nobody samples
            return 1
        if evaluated:  # a guess the model agreed with: already in the cache
            return 1
        cache = s.cache
        if cache.n_past >= cache.n_ctx or not self._make_room(int(cache.n_past + 1 > s.high_water)):
            if job.keep is None:
                self._end(s, StopReason.CONTEXT_FULL)
                return 1
            n_keep = min(job.keep, cache.n_past)
            n_discard = max((cache.n_past - n_keep) // 2, 1)
            w = self.model.weights
            shift_kv_cache(w.hp, cache, n_keep, n_discard, w.rope_freqs)
            del s.tokens[n_keep : n_keep + n_discard]
            # the shifted keys are re-rotated, not what a fresh evaluation gives: not reusable
            s.exact = min(s.exact, n_keep)
        job.pending = token
        return 1

    def _end(self, s: Slot, reason: StopReason) -> None:
        """Finish, first showing what the decoder and the stop filter still hold (unless that
        ends in a stop string)."""
        job = s.job
        text, hit = job.stops.feed(job.decoder.flush())
        job.handle._emit(text if hit else text + job.stops.flush())
        if job.generation_started:
            job.handle._set_timings(generated_tokens=job.generated,
                                    generation_seconds=time.perf_counter() - job.generation_started)
        self._finish(s, reason)

    def _finish(self, s: Slot, reason: StopReason, error: BaseException | None = None) -> None:
        job = s.job
        s.job = None
        s.last_used = time.perf_counter()
        job.handle._finish(reason, error)
        with self._cond:
            self._cond.notify_all()
