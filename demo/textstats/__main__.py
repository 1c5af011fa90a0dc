"""python -m textstats [FILE]: print a report about FILE (or standard input)."""

from __future__ import annotations

import argparse
import sys

from textstats.report import format_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textstats", description=__doc__)
    parser.add_argument("file", nargs="?", help="a text file (default: standard input)")
    parser.add_argument("--top", type=int, default=5, help="how many frequent words to list")
    args = parser.parse_args(argv)
    if args.file is None:
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    print(format_report(text, top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
