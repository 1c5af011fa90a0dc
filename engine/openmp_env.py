"""How long numba's OpenMP workers spin before they sleep, set before libgomp loads.

A generated token is ~200 small `prange` kernels, each a fork/join over numba's OpenMP pool,
with a few microseconds of Python between them. A worker that has gone to sleep in between
costs a futex wake-up per kernel. Measured on the 2-core Xeon VM (SmolLM2 Q4_1, 2 threads):

| GOMP_SPINCOUNT | quiet machine | 4 busy processes, adaptive threads |
|---|---|---|
| 1000 | 24.7 ms/token | 53 ms/token |
| 20000 | 9.6 ms/token | 51 ms/token |
| 300000 (libgomp's default) | 10.2 ms/token | — |

20000 spins cover the gaps inside a token and stop soon after it (an idle TUI burns no
CPU); with other programs busy, threads.ThreadPolicy drops to the free cores, where the
spin count no longer matters. libgomp reads the variable once, when numba first loads it,
so `engine/__init__` applies this before anything compiles. A user's own
GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.

Other programs we start (llama.cpp in the benchmarks) get the environment as the user had
it: `environ_for_other_programs`, which also tells a child that imports this package (the
benchmark's llama.cpp worker runs `python -m codeup_tui.engine.bench`) to leave the settings alone.
"""

from __future__ import annotations

import os

SPIN_COUNT = "20000"

_USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
_LEAVE_ALONE = "CODEUP_LEAVE_OPENMP_ENV"  # set for children that must run as their users run them
_set_here: dict[str, str] = {}


def apply_defaults() -> None:
    """Set GOMP_SPINCOUNT for this process unless the user set either OpenMP wait setting."""
    if os.environ.get(_LEAVE_ALONE) == "1":
        return
    if not any(name in os.environ for name in _USER_SETTINGS):
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
        _set_here["GOMP_SPINCOUNT"] = SPIN_COUNT


def environ_for_other_programs() -> dict[str, str]:
    """os.environ without what apply_defaults added: llama.cpp runs as its users run it."""
    env = dict(os.environ)
    for name, value in _set_here.items():
        if env.get(name) == value:
            del env[name]
    env[_LEAVE_ALONE] = "1"
    return env
