"""``python -m tui``: same as the ``codeup-tui`` command."""

from tui.cli import main

raise SystemExit(main())
