"""The app end to end in a real terminal (tmux): `python -m codeup_tui.tui` as a user runs it."""
