"""codeup-tui: the Textual front end.

Layout of the package (posting/harlequin style):

- ``cli.py``: argument parsing and validation, then runs the app.
- ``app.py`` + ``app.tcss``: the App (bindings, model lifecycle, CSS).
- ``screens/``: one module per screen.
- ``widgets/``: one widget per module.
- ``messages.py``: ``@dataclass`` Messages posted between workers and widgets.
- ``model_loader.py``: resolves and loads the model; plain Python, no Textual.
- ``config.py``: the settings and key remapping of the TOML config file (load, check,
  atomic save); plain Python, no Textual.
- ``backend.py``: loading a model (``Backend``: it hands over the engine's generation interface,
  ``engine.generation.TextGenerator``) and its local implementation;
  ``remote_backend.py``: the same on an OpenAI-compatible server (``--endpoint``, over
  ``engine.remote``); tests use a fake (tests/helpers/tui_fakes.py).
- ``project/``: .gitignore matching, the project walk, file checks, fuzzy matching.
- ``context.py``: the files chosen as context; ``prompt.py``: prompt building and budget.
  (All plain Python, no Textual.)

The package installs as ``codeup_tui.tui`` (the engine as ``codeup_tui.engine``; below, module
names are given without the ``codeup_tui.`` prefix). ``tui`` talks to the engine only through ``engine.errors``, ``engine.default_model``,
``engine.load_model``, ``engine.templates``, ``engine.chat_template``, ``engine.sampling``,
``engine.settings``, ``engine.generation`` and (lazily, inside ``LocalBackend``) ``engine.generate``; ``engine``
never imports Textual.
"""

from __future__ import annotations

from importlib import metadata

DIST_NAME = "codeup-tui"


def _version() -> str:
    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown (not installed)"


__version__ = _version()
