"""How many threads the kernels run on, and backing off when other programs want the CPUs.

Every kernel is a fork/join over numba's thread pool, and a generated token is ~200 of
them. When another program keeps a core busy, each join waits for a worker the scheduler
has not run yet: with 2 threads on 2 busy cores, SmolLM2 generates at 15 tok/s against
50 tok/s on 1 thread (measured in docs/benchmarks.md). So with no thread count given, the
engine watches how much CPU other processes use (Linux /proc/stat minus this process's own
time) and runs on the cores they leave free, at least one; with an explicit count it uses
that count, always (benchmarks, users who know their machine).

numba's thread count is per calling thread: `Model.eval` applies it on the thread that
evaluates (the TUI's and the generator's worker threads included).
"""

from __future__ import annotations

import os
import time

import numba

# How often the CPU use of others is sampled, and how strongly one sample counts.
SAMPLE_EVERY_S = 0.5
# A batch's row-by-row kernels (activation rounding, SwiGLU, RMS norm) split their rows over
# the threads from this many rows on: fewer are not worth waking the threads for. Each row is
# computed by itself, so the split never changes a bit.
PARALLEL_ROWS = 8
_SMOOTHING = 0.5
# Another program counts as holding a core from this much of one core's time on.
_BUSY_CORE = 0.6


def max_threads() -> int:
    """Threads numba can run (NUMBA_NUM_THREADS, by default the CPUs this process may use)."""
    return numba.config.NUMBA_NUM_THREADS


class _CpuUse:
    """CPU time used by other processes between two samples, in cores."""

    def __init__(self) -> None:
        self._ticks_per_s = os.sysconf("SC_CLK_TCK")
        self._last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", "rb") as f:
                fields = f.readline().split()[1:]
        except OSError:
            return None
        if len(fields) < 5:
            return None
        ticks = [int(v) for v in fields[:8]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        busy_s = (sum(ticks) - idle) / self._ticks_per_s
        own = os.times()
        return time.monotonic(), busy_s, own.user + own.system

    def sample(self) -> float | None:
        """Cores busy with other processes since the previous sample (None: unknown)."""
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[0] - last[0] <= 0:
            return None
        others = (now[1] - last[1]) - (now[2] - last[2])
        return max(0.0, others / (now[0] - last[0]))


class ThreadPolicy:
    """The thread count for the next evaluation: `requested` as given, or (None) as many as
    the other processes leave free."""

    def __init__(self, requested: int | None = None) -> None:
        limit = max_threads()
        self.adaptive = requested is None
        self.limit = limit if requested is None else max(1, min(int(requested), limit))
        self._cpu = _CpuUse() if self.adaptive else None
        self._others = 0.0
        self._next_sample = 0.0
        self.current = self.limit

    def threads(self) -> int:
        """The count to use now (sampling the machine at most every SAMPLE_EVERY_S)."""
        if self._cpu is None:
            return self.limit
        now = time.monotonic()
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_EVERY_S
            others = self._cpu.sample()
            if others is not None:
                self._others = _SMOOTHING * others + (1 - _SMOOTHING) * self._others
                n_cpus = os.cpu_count() or self.limit
                held = int(self._others / _BUSY_CORE) if self._others >= _BUSY_CORE else 0
                self.current = max(1, min(self.limit, n_cpus - held))
        return self.current

    def apply(self) -> int:
        """Set numba's thread count for the calling thread; returns it."""
        n = self.threads()
        numba.set_num_threads(n)
        return n


def by_rows(n_rows: int, serial, parallel):
    """The kernel for a batch of `n_rows` rows: `parallel` (its rows over the threads) from
    PARALLEL_ROWS rows on, else `serial`."""
    return serial if n_rows < PARALLEL_ROWS else parallel
