"""``python -m codeup_tui.tui``: same as the ``codeup-tui`` command."""

from .cli import main

raise SystemExit(main())
