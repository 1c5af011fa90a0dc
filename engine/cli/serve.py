"""`codeup serve`: the model behind an OpenAI-compatible HTTP API (engine/server.py).

Listens on 127.0.0.1 only unless told otherwise: another address needs --allow-external,
and then a warning is printed (anyone who can reach the port can use the model; set
--api-key). The first line on stdout says where it listens (with --port 0, the port the
system picked)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..errors import UsageError, printable

API_KEY_ENV = "CODEUP_SERVE_API_KEY"
DEFAULT_PARALLEL = 4  # llama.cpp's -np default (batching.DEFAULT_SLOTS; not imported: it loads numba)


def add_parser(sub) -> None:
    from ..settings import SERVE, add_flags
    from .options import add_draft_options, add_llama_cpp_options, add_lora_options, add_model_overrides

    p = sub.add_parser(
        "serve",
        help="serve the model over an OpenAI-compatible HTTP API",
        description="Serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, "
        "/v1/models, /tokenize, /detokenize, /apply-template, /completion, /infill, /health, /slots), several "
        "generations at once, batched (-np). Without -m, the default model.",
    )
    p.add_argument("-m", "--model", metavar="PATH", help="GGUF or GGML v3 model (default: the default model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    p.add_argument("--allow-external", action="store_true",
                   help="allow --host to be an address other machines can reach")
    p.add_argument("--api-key", metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set, else no key)")
    p.add_argument("--template", "--chat-template", metavar="NAME",
                   help="prompt template for /v1/chat/completions (default: model, the model file's own chat "
                   "template, alpaca for a file without one)")
    p.add_argument("--chat-template-file", metavar="FILE", help="a Jinja chat template to use instead")
    add_flags(p, SERVE)  # -c, -t, --draft-max: engine/settings.py
    p.add_argument("-np", "--parallel", type=int, metavar="N",
                   help=f"requests generated at once, batched in one pass, each in its slot with its share of -c "
                   f"(default {DEFAULT_PARALLEL}, sharing all of -c as with --kv-unified)")
    p.add_argument("--kv-unified", action="store_true",
                   help="the slots share one pool of -c positions: any request may use the whole context")
    p.add_argument("--max-queue", type=int, default=64, metavar="N",
                   help="requests that may wait for a free slot; more get 503 (default 64)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from ORIGIN (e.g. http://localhost:3000; * for any) call the server "
                   "(repeatable; default none: requests with an Origin header are refused)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    add_model_overrides(p, context_length=False)
    add_lora_options(p)
    add_draft_options(p)
    add_llama_cpp_options(p)
    p.set_defaults(run=run)


def _check(args) -> str | None:
    """The API key; UsageError for a bad option."""
    from ..server import is_loopback

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: use 0 (any free port) to 65535")
    if args.max_queue < 0:
        raise UsageError(f"--max-queue {args.max_queue}: use 0 or more")
    if args.parallel is not None and not 1 <= args.parallel <= 256:
        raise UsageError(f"-np {args.parallel}: the number of parallel sequences must be between 1 and 256")
    split = args.parallel is not None and not args.kv_unified
    if split and args.ctx_size is not None and args.ctx_size < args.parallel:
        raise UsageError(f"-c {args.ctx_size} is too small to split over -np {args.parallel} slots")
    if not is_loopback(args.host) and not args.allow_external:
        raise UsageError(f"--host {args.host} can be reached from other machines: add --allow-external to "
                         "serve them (and set --api-key)")
    for origin in args.cors_origin:
        if origin != "*" and not origin.startswith(("http://", "https://")) or any(c in origin for c in " \r\n,"):
            raise UsageError(f"--cors-origin {printable(origin)!r}: give an origin like http://localhost:3000, or *")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV)
    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key is empty")
    return api_key.strip() if api_key else None


def run(args: argparse.Namespace) -> int:
    from ..chat_template import MODEL_TEMPLATE, read_chat_template_file, resolve_template
    from ..server import CodeupServer, is_loopback, make_http_server
    from ..templates import load_template
    from .options import draft_params, llama_cpp_notices
    from .loading import load_model_for
    from .options import LLAMA_CPP_TEMPLATE_NAMES

    api_key = _check(args)
    llama_cpp_notices(args)
    draft = draft_params(args)  # a bad value fails before the model loads
    name = LLAMA_CPP_TEMPLATE_NAMES.get(args.template, args.template) or MODEL_TEMPLATE
    if args.chat_template_file is not None and args.template is not None:
        raise UsageError("--template and --chat-template-file: give one")
    if name != MODEL_TEMPLATE:
        load_template(name)  # a bad name fails before the model loads
    # Bind before loading: a port in use fails at once. Connections made while the model
    # loads wait in the listen backlog.
    httpd = make_http_server(None, args.host, args.port)
    try:
        model = load_model_for(args)
    except BaseException:
        httpd.server_close()
        raise
    try:
        if args.chat_template_file is not None:
            template = read_chat_template_file(args.chat_template_file, model.file)
        else:
            template = resolve_template(name, model.file)
    except BaseException:
        httpd.server_close()
        model.close()
        raise
    log = (lambda line: print(f"codeup serve: {line}", file=sys.stderr, flush=True)) if args.verbose else None
    try:
        # as llama.cpp: -np not given, 4 slots sharing the context; -np N, -c split over N
        # (unless --kv-unified); -np 1, one at a time with speculative drafting
        app = httpd.app = CodeupServer(model, template, api_key=api_key, max_queue=args.max_queue, log=log,
                                       draft=draft, cors_origins=tuple(args.cors_origin),
                                       n_parallel=args.parallel or DEFAULT_PARALLEL,
                                       kv_unified=args.kv_unified or args.parallel is None)
    except BaseException:
        httpd.server_close()
        model.close()
        raise
    host, port = httpd.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback(args.host):
        print(f"codeup serve: warning: listening on {shown}:{port}, reachable from other machines"
              + ("" if api_key else " by anyone, with no API key (--api-key)"), file=sys.stderr, flush=True)

    def stop(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    from ..chat_template import format_label

    slots = app.scheduler
    if slots is None:
        shown_slots = "1 slot"
    else:
        shown_slots = f"{len(slots.slots)} slots " + ("sharing it" if slots.unified else f"of {slots.n_ctx_slot}")
    print(f"codeup serve: {printable(app.model_id)} (context {model.n_ctx}, {shown_slots}, chat template "
          f"{format_label(template)}) on "
          f"http://{shown}:{port}/v1" + (" (API key required)" if api_key else "") + " - Ctrl+C stops",
          flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("codeup serve: stopped", file=sys.stderr, flush=True)
    finally:
        app.close()
        httpd.server_close()
        model.close()
    return 0
