"""Loading the model a `codeup` subcommand runs (`run`, `serve`): the file, the default
model's download and the kernels' first compile, with progress on stderr."""

from __future__ import annotations

import sys


class StatusLine:
    """Progress on stderr: one line rewritten in place on a terminal; elsewhere (a log, a
    pipe) a line each time the news changes, not each time the seconds do."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = ""
        self.open = False

    def __call__(self, text: str) -> None:
        import re

        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self.open = True
        else:
            news = re.sub(r"(, [\d.]+ [KMG]?B/s)?(, \d+ s)?$", "", text)
            if news != self.last:
                self.stream.write(text + "\n")
            self.last = news
        self.stream.flush()

    def end(self) -> None:
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


def load_model_for(args):
    """The model of `-m` (else the default model, downloaded on first use) with the command
    line's context size, threads, LoRA adapters and overrides; its kernels warmed up with the
    progress on stderr, and a warning when it may not fit in memory."""
    from ..default_model import ensure_default_model
    from ..kernel_cache import warm_up
    from ..model import load_model
    from .options import load_options, model_overrides

    status = StatusLine()
    try:
        path = args.model or ensure_default_model(progress=status)
    finally:
        status.end()
    model = load_model(path, n_ctx=args.ctx_size, n_threads=args.threads, lora=getattr(args, "lora", None),
                       **model_overrides(args), **load_options(args))
    try:
        warm_up(model, status)  # a first run: the kernels compile here, visibly
    except BaseException:
        model.close()
        raise
    finally:
        status.end()
    from ..memory import estimate, memory_warning

    # Weights being read into memory were found to fit before the copy began (and the copy
    # itself lowers what is available now). Mapped ones are not read yet: warn before the
    # first answer makes the system swap.
    warning = None if model.in_memory != "mapped" else memory_warning(estimate(model.file, model.n_ctx))
    if warning:
        print(f"codeup: {warning}", file=sys.stderr, flush=True)
    return model
