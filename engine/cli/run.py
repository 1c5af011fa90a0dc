"""`codeup run`: generate from a prompt, or chat (-i --instruct) in the model's own prompt
format (its chat template; Alpaca for files without one), with llama.cpp main's flags.
Text streams to stdout; timings go to stderr. With --endpoint the model is an
OpenAI-compatible server's (engine/remote.py); everything else is the same."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ..errors import CodeupError, UsageError, printable
from ..terminal_text import VisibleStream, is_terminal

YELLOW, GREEN, RESET = "\x1b[33m", "\x1b[1;32m", "\x1b[0m"


def add_parser(sub) -> None:
    from ..settings import RUN, add_flags
    from .options import add_draft_options, add_llama_cpp_options, add_lora_options, add_model_overrides

    p = sub.add_parser(
        "run",
        help="generate text from a prompt, or chat with -i --instruct",
        description="Generate with a model, like llama.cpp's main. Without -m, the default model.",
    )
    p.add_argument("-m", "--model", metavar="PATH", help="GGUF or GGML v3 model (default: the default model)")
    p.add_argument("--endpoint", metavar="URL",
                   help="generate on an OpenAI-compatible server (llama.cpp's, `codeup serve`) instead "
                   "(default without -m: $OPENAI_BASE_URL if set); API key from $CODEUP_API_KEY, else "
                   "$OPENAI_API_KEY; $HTTPS_PROXY / $HTTP_PROXY / $NO_PROXY honoured")
    p.add_argument("--remote-model", metavar="NAME",
                   help="with --endpoint: the server's model to use (default: the first it lists)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="with --endpoint: seconds the server may stay silent (default 300)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-p", "--prompt", help="the prompt (raw text; with --template, an instruction); "
                     "\\n, \\t, \\xNN ... are processed unless --no-escape")
    src.add_argument("-f", "--file", metavar="PATH", help="read the prompt from a file (-: standard input)")
    p.add_argument("--no-escape", action="store_true",
                   help="keep backslashes in -p, -r, --in-prefix and --in-suffix as written")
    p.add_argument("--no-parse-special", action="store_true",
                   help="keep special-token text in -p/-f (<|im_start|>, </s>) as plain text, not its token")
    g = p.add_argument_group("generation and sampling (engine/settings.py; the same ranges as the config file and the server)")
    add_flags(g, RUN)
    p.add_argument("--template", "--chat-template", metavar="NAME",
                   help="prompt template: model (the model file's own chat template, alpaca for a file without "
                   "one; the default of -i), alpaca, chatml, llama-2-chat (llama2), or your own (templates/)")
    p.add_argument("--chat-template-file", metavar="FILE", help="a Jinja chat template to use instead")
    p.add_argument("--stop", "-r", "--reverse-prompt", action="append", default=None, metavar="TEXT",
                   help="stop string (repeatable; default: the template's)")
    p.add_argument("--keep", type=int, metavar="N", help="on a full context keep the first N tokens and drop half the rest, instead of stopping")
    p.add_argument("--color", action="store_true", help="colour the prompt and your input")
    p.add_argument("--no-display-prompt", action="store_true", help="do not echo the prompt")
    p.add_argument("-i", "--interactive", action="store_true", help="chat: type instructions, answered in the template's format")
    p.add_argument("-ins", "--instruct", action="store_true", help="instruction mode (with -i; implies it)")
    p.add_argument("-cnv", "--conversation", action="store_true", help="chat (as -i)")
    p.add_argument("--multiline-input", action="store_true",
                   help="in a chat, Enter continues the instruction; a line ending in / sends it")
    p.add_argument("--in-prefix", default="", metavar="TEXT", help="text put before each instruction in a chat")
    p.add_argument("--in-suffix", default="", metavar="TEXT", help="text put after each instruction in a chat")
    add_model_overrides(p, context_length=False)
    add_lora_options(p)
    add_draft_options(p)
    add_llama_cpp_options(p)
    p.set_defaults(run=run)


def _sampling(args):
    from ..sampling import SamplingParams
    from ..settings import RUN, flag_values, sampling_values

    return SamplingParams(**sampling_values(flag_values(args, RUN)))


def _check(args) -> None:
    if args.endpoint is None and args.model is None:
        from ..remote import base_url_from_env

        args.endpoint = base_url_from_env()  # OpenAI's clients' variable: the server to use
    # -n, -c, -t and the sampling flags were checked as they were parsed (engine/settings.py)
    if args.endpoint is not None:
        if args.model is not None:
            raise UsageError("-m and --endpoint: give one (a model file here, or a server)")
        if args.threads is not None:
            raise UsageError("-t applies to a model run here, not with --endpoint")
        if args.lora:
            raise UsageError("--lora applies to a model run here, not with --endpoint (give it to codeup serve)")
        if args.timeout is not None and not 0 < args.timeout <= 86400:
            raise UsageError(f"--timeout {args.timeout:g}: give seconds, more than 0")
    elif args.timeout is not None:
        raise UsageError("--timeout applies only with --endpoint")
    elif args.remote_model is not None:
        raise UsageError("--remote-model applies only with --endpoint (a server)")


def _read_prompt(args) -> str | None:
    if args.file is None:
        return args.prompt
    if args.file == "-":  # llama.cpp's -f -: the prompt from standard input
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise UsageError("the prompt on standard input is not UTF-8 text") from None
    try:
        with open(args.file, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise UsageError(f"prompt file {args.file} is not UTF-8 text") from None
    except OSError as e:
        raise UsageError(f"cannot read prompt file {args.file}: {e.strerror or e}") from None


class Console:
    """Where the prompt echo and the answer go. On a terminal they are shown through
    `terminal_text` (an escape sequence from the model or a prompt file is shown, never acted
    on); redirected, they are written exactly (`codeup run > out.py` keeps the model's text)."""

    def __init__(self, color: bool, terminal: bool | None = None) -> None:
        self.color = color and "NO_COLOR" not in os.environ
        self.terminal = is_terminal(sys.stdout) if terminal is None else terminal
        self._visible = VisibleStream()

    def out(self, text: str, style: str = "") -> None:
        if self.terminal:
            text = self._visible.feed(text)
        if self.color and style and text:
            text = f"{style}{text}{RESET}"
        sys.stdout.write(text)
        sys.stdout.flush()

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def stream(handle, console: Console) -> bool:
    """Print the answer as it comes; Ctrl+C stops it. True if the user interrupted.

    While the answer streams, SIGINT only asks the handle to cancel: a KeyboardInterrupt raised
    wherever the signal happened to land (inside a print, say) would end the whole chat instead
    of the one answer."""
    interrupted = False

    def on_interrupt(signum, frame):
        nonlocal interrupted
        interrupted = True
        handle.cancel()  # honoured within a token; the pieces before it still come

    previous = _sigint_handler(on_interrupt)
    try:
        while True:
            piece = handle.next_piece(timeout=0.1)
            if piece is None:
                break
            console.out(piece)
    finally:
        _sigint_handler(previous if previous is not None else signal.default_int_handler)
    if handle.result.error is not None:
        raise handle.result.error
    return interrupted


def _sigint_handler(handler):
    """Install a SIGINT handler and return the one it replaces (None off the main thread, where
    Python cannot install one; Ctrl+C then behaves as before)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, handler)


def _escapes(args) -> None:
    """llama.cpp's escape processing of the texts given on the command line."""
    from .options import process_escapes

    if args.no_escape:
        return
    if args.prompt is not None:
        args.prompt = process_escapes(args.prompt)
    if args.stop is not None:
        args.stop = [process_escapes(s) for s in args.stop]
    args.in_prefix = process_escapes(args.in_prefix)
    args.in_suffix = process_escapes(args.in_suffix)


def choose_template(args, model_file=None):
    """The prompt template: --chat-template-file, --template NAME, else the model's own
    (for a chat, or `--template model`); None for a raw one-shot prompt."""
    from ..chat_template import MODEL_TEMPLATE, read_chat_template_file, resolve_template
    from .options import LLAMA_CPP_TEMPLATE_NAMES

    if args.chat_template_file is not None:
        if args.template is not None:
            raise UsageError("--template and --chat-template-file: give one")
        return read_chat_template_file(args.chat_template_file, model_file)
    name = LLAMA_CPP_TEMPLATE_NAMES.get(args.template, args.template)
    if name is None and not _interactive(args):
        return None
    return resolve_template(name or MODEL_TEMPLATE, model_file)


def _interactive(args) -> bool:
    return args.interactive or args.instruct or args.conversation


def run(args: argparse.Namespace) -> int:
    from ..templates import load_template
    from .loading import load_model_for
    from .options import draft_params, llama_cpp_notices

    _check(args)
    llama_cpp_notices(args)
    draft = draft_params(args)  # a bad value fails before the model loads
    _escapes(args)
    sampling = _sampling(args)
    if args.template not in (None, "model") and args.chat_template_file is None:
        from .options import LLAMA_CPP_TEMPLATE_NAMES

        load_template(LLAMA_CPP_TEMPLATE_NAMES.get(args.template, args.template))  # a bad name fails first
    prompt = _read_prompt(args)
    interactive = _interactive(args)
    if prompt is None and not interactive:
        raise UsageError("give a prompt with -p or -f, or chat with -i --instruct")
    if args.endpoint is not None:
        generator = connect(args)
        template = choose_template(args)  # no model file here: `model` is alpaca
        bos_default = None  # None: the server's model decides
    else:
        model = load_model_for(args)
        from ..generate import Generator

        generator = Generator(model, draft=draft)
        template = choose_template(args, model.file)
        bos_default = model.tokenizer.add_bos
    console = Console(args.color)
    if not interactive and template is None:  # a raw prompt, tokenized as llama-cli does
        from ..templates import DEFAULT_TEMPLATE

        # as before: a raw Alpaca prompt ends where the model starts the next instruction
        stops = tuple(args.stop) if args.stop is not None else load_template(DEFAULT_TEMPLATE).stop
        return _one_shot(generator, console, args, prompt, sampling, stops, bos_default,
                         not args.no_parse_special)
    add_bos = template.add_bos if bos_default is None else template.wants_bos(bos_default)
    stops = tuple(args.stop) if args.stop is not None else template.stop
    if not interactive:
        return _one_shot(generator, console, args, template.render(prompt), sampling, stops, add_bos,
                         template.parse_special)
    return _chat(generator, console, args, template, prompt, sampling, stops, add_bos)


def connect(args):
    """The server of --endpoint, probed (its model and context size said on stderr): the
    generation interface (engine/generation.py) as the local Generator is."""
    from ..remote import RemoteClient, api_key_from_env

    options = {"read_timeout": args.timeout} if args.timeout is not None else {}
    client = RemoteClient(args.endpoint, api_key_from_env(), n_ctx=args.ctx_size, model=args.remote_model,
                          **options)
    info = client.probe()
    note = "" if info.n_ctx_known else f", context {info.n_ctx} assumed (-c sets it)"
    print(f"remote: {printable(info.model)} on {client.endpoint.url}{note}", file=sys.stderr, flush=True)
    return client


def _one_shot(generator, console, args, text, sampling, stops, add_bos, parse_special) -> int:
    handle = generator.start(
        text, sampling, max_tokens=args.n_predict, stop=stops, add_bos=add_bos,
        parse_special=parse_special, keep=args.keep,
    )
    if not args.no_display_prompt:
        console.out(text, YELLOW)
    interrupted = stream(handle, console)
    console.out("\n")
    result = handle.result
    console.note(f"[{result.stop_reason.value}] {result.timings.summary()}")
    return 130 if interrupted else 0


def _read_instruction(console: Console, multiline: bool = False) -> str | None:
    """One instruction; a line ending in '\\' continues on the next (with multiline, every
    line does, until one ending in '/', as llama.cpp's --multiline-input). None at EOF."""
    lines = []
    console.out("\n> ")
    while True:
        line = sys.stdin.readline()
        if not line:
            return None if not lines else "\n".join(lines)
        line = line.rstrip("\n")
        if line.endswith("/") and multiline:
            lines.append(line[:-1])
            return "\n".join(lines)
        if line.endswith("\\"):
            lines.append(line[:-1])
            continue
        lines.append(line)
        if not multiline:
            return "\n".join(lines)


def _chat(generator, console, args, template, first, sampling, stops, add_bos) -> int:
    turns: list[tuple[str, str | None, str]] = []
    from ..chat_template import format_label

    enter = ("Enter adds a line, end one with / to send" if args.multiline_input
             else "type an instruction and Enter (end a line with \\ to continue it)")
    console.note(f"chat ({format_label(template)}): {enter}; "
                 "Ctrl+C stops an answer; Ctrl+D or Ctrl+C at the prompt quits")
    pending = first
    while True:
        if pending is None:
            try:
                pending = _read_instruction(console, args.multiline_input)
            except KeyboardInterrupt:
                console.out("\n")
                return 0
            if pending is None:
                console.out("\n")
                return 0
        instruction, pending = pending, None
        if not instruction.strip():
            continue
        instruction = f"{args.in_prefix}{instruction}{args.in_suffix}"
        def encode(turns_kept):
            text = template.render_conversation(turns_kept, instruction)
            return generator.tokenize_prompt(text, add_bos=add_bos, parse_special=template.parse_special)

        tokens = encode(turns)
        while turns and len(tokens) + 16 > generator.n_ctx:
            turns.pop(0)  # never silently: say so
            console.note("(the conversation is longer than the context: dropped the oldest turn)")
            tokens = encode(turns)
        try:
            # the tokenized prompt, not the text: it is tokenized once per turn (once asked of a server)
            handle = generator.start(tokens, sampling, max_tokens=args.n_predict, stop=stops, keep=args.keep,
                                     parse_special=template.parse_special)
            interrupted = stream(handle, console)
        except CodeupError as e:  # a bad prompt, or the server failed: the chat goes on
            console.note(f"\ncodeup: error: {printable(str(e))}")
            console.note("(the answer so far is shown above but not kept; send the instruction again to retry)")
            continue
        if interrupted:
            console.note("\n[stopped]")
        turns.append((instruction, None, handle.result.text))
        console.note(f"\n[{handle.result.stop_reason.value}] {handle.result.timings.summary()}")
