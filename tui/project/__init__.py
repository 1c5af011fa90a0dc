"""The project on disk, in plain Python (no Textual): which files exist, which ``.gitignore``
hides, which cannot be used as context (binary, too large), and fuzzy matching of paths."""

from .files import (
    MAX_FILE_BYTES,
    FileRefusal,
    ProjectFiles,
    check_file,
    read_text_file,
)
from .fuzzy import fuzzy_filter, fuzzy_score
from .gitignore import IgnoreRules, ProjectIgnore

__all__ = [
    "MAX_FILE_BYTES",
    "FileRefusal",
    "IgnoreRules",
    "ProjectFiles",
    "ProjectIgnore",
    "check_file",
    "fuzzy_filter",
    "fuzzy_score",
    "read_text_file",
]
