"""codeup-tui's tests: engine/ (the headless runtime and `codeup`), tui/ (the app, driven
in process), e2e/ (the app in a real terminal, tmux), helpers/ (shared builders, fakes
and fixture paths), bench/ (benchmarks, never run by pytest)."""
