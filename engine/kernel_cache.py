"""The first run compiles the numba kernels (a minute or more on a small machine); later runs
load them from numba's cache. `warm_up` makes that first compile visible: when the cache
lacks the kernels every model uses, it evaluates two tokens and then one (the prompt and
the generation paths) before the real work, saying "compiling kernels, first run only"
with the count compiled so far (numba writes an index file per kernel it caches) and the
time taken, twice a second, instead of a silent first answer.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Kernels every model's forward pass runs: their cache index missing means a cold cache.
CORE_KERNELS = ((f"{__package__}.attention", "_attention_tiles"), (f"{__package__}.rope", "_rotate"),
                (f"{__package__}.ggml_vector_math", "_swiglu_rows"))
REPORT_SECONDS = 0.5


def _dispatchers():
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # numba missing: nothing is compiled ahead
        return
    for name, module in list(sys.modules.items()):
        if name == __package__ or name.startswith(f"{__package__}."):
            for attr, obj in list(vars(module).items()):
                if isinstance(obj, Dispatcher) and getattr(obj, "_cache", None) is not None:
                    yield name, attr, obj


def _index_path(dispatcher) -> Path | None:
    path = getattr(getattr(dispatcher._cache, "_cache_file", None), "_index_path", None)
    return Path(path) if path else None


def cache_folders() -> set[Path]:
    """Where numba keeps the engine's compiled kernels (NUMBA_CACHE_DIR respected)."""
    return {p.parent for _m, _a, d in _dispatchers() if (p := _index_path(d)) is not None}


def index_files() -> set[Path]:
    found: set[Path] = set()
    for folder in cache_folders():
        try:
            found.update(folder.glob("*.nbi"))
        except OSError:
            pass
    return found


def kernels_cold() -> bool:
    """Whether the kernels every model runs are missing from the cache (a first run)."""
    from . import attention  # noqa: F401 - the modules of CORE_KERNELS, so their dispatchers are seen
    from . import ggml_vector_math  # noqa: F401
    from . import rope  # noqa: F401

    core = {(m, a): d for m, a, d in _dispatchers() if (m, a) in CORE_KERNELS}
    for dispatcher in core.values():
        path = _index_path(dispatcher)
        if path is not None and not path.exists():
            return True
    return False


def warm_up(model, say: Callable[[str], None]) -> bool:
    """Compile the kernels before the first answer, saying so, when the cache is cold.
    Returns whether it compiled. `model` is an engine Model; its cache is emptied after."""
    if not kernels_cold():
        return False
    before = index_files()
    start = time.monotonic()
    token = model.tokenizer.bos_id if model.tokenizer.bos_id is not None else 0
    failure: list[BaseException] = []

    def compile_all() -> None:
        try:
            model.eval([token, token])  # the prompt path (a batch)
            model.eval([token])  # the generation path (one token)
        except BaseException as e:  # reported on the caller's thread
            failure.append(e)
        finally:
            model.reset()

    worker = threading.Thread(target=compile_all, name="compile kernels", daemon=True)
    worker.start()
    try:
        say("compiling kernels, first run only…")
        while True:
            worker.join(REPORT_SECONDS)
            compiled = len(index_files() - before)
            elapsed = time.monotonic() - start
            if not worker.is_alive():
                say(f"compiling kernels, first run only: done, {compiled} kernels in {elapsed:.0f} s")
                break
            say(f"compiling kernels, first run only: {compiled} compiled, {elapsed:.0f} s")
    except BaseException:  # `say` gave up (a cancelled load): the model stays open until it is done
        worker.join()
        raise
    if failure:
        raise failure[0]
    return True
