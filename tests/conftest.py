"""Shared test fixtures: one torch thread per test, and a real TensorBoard server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _serve(logdir: Path, log_path: Path):
    """Start ``tensorboard`` on a free loopback port; yield a GET-JSON function for its HTTP API."""
    port = _free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port",
                                   str(port), "--host", "127.0.0.1", "--reload_interval", "1"],
                                  stdout=log, stderr=subprocess.STDOUT)

        def get(path: str):
            assert server.poll() is None, log_path.read_text()[-2000:]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return json.loads(response.read())

        try:
            yield get
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


@pytest.fixture(autouse=True)
def one_thread():
    """Training tests run one torch thread, as sweep workers do: results don't depend on the core count, and the
    2-core CI machine is not oversubscribed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tensorboard(tmp_path: Path):
    """``tensorboard(logdir)`` starts a server; use it as a context manager yielding ``get(path) -> json``."""
    return lambda logdir: _serve(Path(logdir), tmp_path / "tensorboard.log")


def poll(fetch: Callable[[], object], done: Callable[[object], bool], seconds: float = 60):
    """Call ``fetch`` until ``done(result)`` or the time is up (connection errors while starting are retried)."""
    deadline, result = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        try:
            result = fetch()
            if done(result):
                return result
        except OSError:
            pass
        time.sleep(0.5)
    return result
