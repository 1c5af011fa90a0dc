"""Tests of codeup_tui.engine and the `codeup` command."""
