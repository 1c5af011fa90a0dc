"""`codeup bench`: prompt-processing and generation speed, like llama.cpp's llama-bench,
optionally side by side with llama.cpp itself (llama-cpp-python, the `bench` extra)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure prompt and generation speed (tokens/s), optionally against llama.cpp",
        description=(
            "Measure prompt processing (pp: -p random tokens from an empty cache) and generation "
            "(tg: -n single-token evals after a short prompt) in tokens/s over -r repetitions, plus "
            "load time, warm start-to-first-token and peak RSS. With -d, both are measured with that "
            "many tokens already in the cache. -p, -n, -t and -d take lists as llama-bench does "
            "(1,2 or ranges 1-4, 0-2000+1000, 16-512*2): each thread count and depth is measured "
            "with each -p value as a pp test and each -n value as a tg test (0 leaves a test out). "
            "With --compare-llama-cpp the same measurement runs through llama-cpp-python, "
            "interleaved with ours, and the ratios are reported. Without -m, the default model."
        ),
    )
    p.add_argument("-m", "--model", metavar="PATH", help="GGUF or GGML v3 model (default: the default model)")
    p.add_argument("-p", "--n-prompt", default="512", metavar="N[,N...]", help="prompt tokens (default 512)")
    p.add_argument("-n", "--n-gen", default="128", metavar="N[,N...]", help="generated tokens (default 128)")
    p.add_argument("-t", "--threads", default=str(os.cpu_count() or 1), metavar="N[,N...]",
                   help=f"threads (default: all cores, {os.cpu_count()})")
    p.add_argument("-d", "--n-depth", default="0", metavar="N[,N...]",
                   help="tokens already in the cache when pp and tg are measured (llama-bench's depth; default 0)")
    p.add_argument("-r", "--repetitions", type=int, default=3, metavar="N", help="repetitions (default 3)")
    p.add_argument("-b", "--batch", type=int, default=512, metavar="N",
                   help="prompt tokens per evaluation (llama.cpp n_batch = n_ubatch; default 512)")
    p.add_argument("-c", "--ctx-size", type=int, metavar="N",
                   help="context size (default: just enough for the tests, as llama-bench)")
    p.add_argument("-s", "--seed", type=int, default=0, help="seed of the random token ids (default 0)")
    p.add_argument("--mmap", action="store_true",
                   help="keep our weights mapped from the file instead of reading them into memory")
    p.add_argument("--compare-llama-cpp", action="store_true",
                   help="run the same measurement through llama-cpp-python (install the bench extra)")
    p.add_argument("--llama-cpp-python", metavar="PYTHON",
                   help="with --compare-llama-cpp: a Python interpreter that has llama_cpp (default: this one)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import BenchParams, configurations, format_summary, format_table, parse_int_list, reports_json, run_bench
    from ..terminal_text import visible
    from ..errors import UsageError

    if args.llama_cpp_python and not args.compare_llama_cpp:
        raise UsageError("--llama-cpp-python goes with --compare-llama-cpp")
    base = BenchParams(model="", reps=args.repetitions, batch=args.batch, n_ctx=args.ctx_size, seed=args.seed,
                       mmap=args.mmap)
    # bad numbers fail before the default model is looked for
    configs = configurations(
        base, parse_int_list("-p", args.n_prompt), parse_int_list("-n", args.n_gen),
        parse_int_list("-t", args.threads), parse_int_list("-d", args.n_depth),
    )
    if args.model is None:
        from ..default_model import ensure_default_model

        model = str(ensure_default_model(progress=lambda msg: print(msg, file=sys.stderr)))
    else:
        model = args.model
    from dataclasses import replace

    def log(text: str) -> None:
        if not args.quiet:
            print(f"bench: {text}", file=sys.stderr, flush=True)

    reports = []
    for i, params in enumerate(configs):
        if len(configs) > 1:
            log(f"run {i + 1}/{len(configs)}: threads {params.threads}, depth {params.depth}, "
                f"pp {params.n_prompt or '-'}, tg {params.n_gen or '-'}")
        reports.append(run_bench(replace(params, model=model), compare_llama_cpp=args.compare_llama_cpp,
                                 llama_python=args.llama_cpp_python, log=log))
    if args.json:
        print(json.dumps(reports_json(reports), indent=2))
    elif len(reports) == 1:
        print(visible(format_table(reports[0])))  # the model's name comes from its file
    else:
        print(visible("\n\n".join(format_table(r) for r in reports)))
        print("\n" + format_summary(reports))
    return 0
