"""A local Hardhat node for the JSON-RPC game tests and benches (npm ``hardhat``, pinned in
package-lock.json; config tools/hardhat/hardhat.config.js). Listens on 127.0.0.1 only and
is stopped by the context manager."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "node_modules" / "hardhat" / "internal" / "cli" / "cli.js"
CONFIG = ROOT / "tools" / "hardhat" / "hardhat.config.js"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    req = urllib.request.Request(url, b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId",'
                                 b'"params":[]}', {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return b"result" in r.read()
    except OSError:
        return False


@contextlib.contextmanager
def hardhat_node(timeout: float = 120.0) -> Iterator[str]:
    """Start ``hardhat node`` on a free loopback port; yield its URL; stop it."""
    if not CLI.is_file():
        raise FileNotFoundError(f"{CLI} is missing: run `scripts/dev setup` (npm ci)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true", CI="true")
    proc = subprocess.Popen(["node", str(CLI), "node", "--hostname", "127.0.0.1", "--port",
                             str(port), "--config", str(CONFIG)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        t0 = time.monotonic()
        while not _answers(url):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"hardhat node exited ({proc.returncode}): {err}")
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"hardhat node did not answer at {url} in {timeout} s")
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
