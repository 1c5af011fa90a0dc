"""A program in a real terminal for tests: tmux on a private socket, keys in, screen out."""

from __future__ import annotations

import subprocess
import time
import uuid


# A first run compiles the kernels before the model is ready: minutes on a slow two-core machine
# (82 s and counting on a noisy one); waiting longer only costs time when the test fails anyway.
MODEL_LOADED_TIMEOUT = 600
ANSWER_TIMEOUT = 300


class Tmux:
    def __init__(self, command: str, width: int = 120, height: int = 50) -> None:
        self.socket = f"codeup-test-{uuid.uuid4().hex[:8]}"
        self.run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)

    def run(self, *args) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t", "-S", "-200")

    def wait_for(self, predicate, timeout=60.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out; screen:\n{self.screen()}")

    def keys(self, *keys) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
