"""`codeup serve` in a subprocess on a free loopback port (--port 0), for the server tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from .paths import REPO

START_SECONDS = 180  # loading the model (and numba's first compile on a cold cache)


class ServeProcess:
    def __init__(self, model: Path, *args: str, env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codeup_tui.engine.cli", "serve", "-m", str(model), "--port", "0", *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env=env,
        )
        self.first_line = self._read_first_line()
        match = re.search(r"http://([\d.]+):(\d+)/v1", self.first_line)
        if match is None:
            self.stop()
            raise AssertionError(f"codeup serve did not start: {self.first_line!r} {self.stderr_text()}")
        self.host, self.port = match[1], int(match[2])
        self.url = f"http://{self.host}:{self.port}"

    def _read_first_line(self) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_SECONDS)
        return box[0] if box else ""

    def stderr_text(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "/health", timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode


def env_with(**values: str) -> dict:
    env = dict(os.environ)
    env.update(values)
    return env
