"""Putting generated code into the user's files, safely (plain Python, no Textual).

``code_blocks`` finds the fenced blocks of an answer; ``patch`` applies a unified diff;
``file_write`` writes atomically, keeping the file's mode, line endings and final newline;
``undo`` keeps a snapshot per write; ``insert`` plans an insertion (the exact bytes and the
diff shown before anything is written) and carries it out.
"""

from .code_blocks import CodeBlock, find_code_blocks
from .file_write import TextFile, WriteError, atomic_write, read_text
from .insert import InsertError, InsertMode, InsertPlan, apply_plan, plan_insert
from .patch import PatchError, apply_patch, parse_patch
from .undo import UndoEntry, UndoError, UndoStore

__all__ = [
    "CodeBlock",
    "InsertError",
    "InsertMode",
    "InsertPlan",
    "PatchError",
    "TextFile",
    "UndoEntry",
    "UndoError",
    "UndoStore",
    "WriteError",
    "apply_patch",
    "apply_plan",
    "atomic_write",
    "find_code_blocks",
    "parse_patch",
    "plan_insert",
    "read_text",
]
