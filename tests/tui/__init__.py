"""Tests of codeup_tui.tui, the app driven in process (Textual's pilot)."""
