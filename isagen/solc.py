"""Compile Solidity with the repository's pinned compiler (the npm ``solc`` package).

``compile_solidity(sources, contract) -> bytes`` runs ``node tools/solc_compile.js`` with a
standard-JSON input (optimizer on with fixed runs, evmVersion pinned, no metadata hash, so
the bytecode is a pure function of the sources) and returns the deployable (creation)
bytecode. Results are cached on disk keyed by sha256(sources + settings + compiler), so a
test session compiles once.

Where things are found:

* ``node``: ``$OPMLC_NODE`` or ``node`` on PATH;
* ``node_modules``: ``$OPMLC_NODE_MODULES`` or ``<repo root>/node_modules`` (the parent of
  the ``isagen`` folder), installed by ``scripts/dev setup`` (``npm ci``);
* the cache: ``$OPMLC_SOLC_CACHE`` or ``$XDG_CACHE_HOME/opmlc/solc`` (``~/.cache``);
  set ``OPMLC_SOLC_CACHE=off`` to disable it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "EVM_VERSION",
    "OPTIMIZER_RUNS",
    "SOLC_VERSION",
    "SolcError",
    "compile_solidity",
    "standard_json_input",
]

SOLC_VERSION = "0.8.28"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 1_000_000  # deployed once, called often: optimise for call gas

_REPO_ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = _REPO_ROOT / "tools" / "solc_compile.js"
_SETUP_HINT = "run `scripts/dev setup` (it runs `npm ci` for the pinned solc)"


class SolcError(RuntimeError):
    """The Solidity compiler is missing, failed, or rejected the sources.

    Its message says what to do; the CLI prints it on one line."""


def standard_json_input(sources: dict[str, str]) -> dict:
    """The compiler input: sources plus the pinned settings (sorted, deterministic)."""
    return {
        "language": "Solidity",
        "sources": {name: {"content": sources[name]} for name in sorted(sources)},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "metadata": {"bytecodeHash": "none", "appendCBOR": False},
            "outputSelection": {"*": {"*": ["evm.bytecode.object"]}},
        },
    }


def _node() -> str:
    node = os.environ.get("OPMLC_NODE") or shutil.which("node")
    if not node:
        raise SolcError(f"node (Node.js) is not on PATH; install Node.js 20 and {_SETUP_HINT}")
    return node


def _node_modules() -> Path:
    env = os.environ.get("OPMLC_NODE_MODULES")
    path = Path(env) if env else _REPO_ROOT / "node_modules"
    pkg = path / "solc" / "package.json"
    if not pkg.is_file():
        raise SolcError(f"the pinned Solidity compiler is not installed ({pkg} missing); "
                        f"{_SETUP_HINT}, or set OPMLC_NODE_MODULES")
    version = json.loads(pkg.read_text())["version"]
    if version != SOLC_VERSION:
        raise SolcError(f"{path / 'solc'} is solc {version}, opmlc pins {SOLC_VERSION}; "
                        f"{_SETUP_HINT}")
    return path


def _cache_dir() -> Path | None:
    env = os.environ.get("OPMLC_SOLC_CACHE")
    if env == "off":
        return None
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opmlc" / "solc"


def _run_solc(std_input: dict) -> dict:
    cmd = [_node(), str(_SCRIPT), str(_node_modules())]
    try:
        proc = subprocess.run(cmd, input=json.dumps(std_input).encode(), capture_output=True,
                              check=False, timeout=600)
    except OSError as err:
        raise SolcError(f"cannot run {cmd[0]}: {err}; {_SETUP_HINT}") from err
    if proc.returncode != 0:
        raise SolcError(f"solc failed (exit {proc.returncode}): "
                        f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")
    return json.loads(proc.stdout)


def compile_solidity(sources: dict[str, str], contract: str) -> bytes:
    """Creation bytecode of ``contract`` (``"Name"`` or ``"File.sol:Name"``) in ``sources``.

    Raises :class:`SolcError` with the compiler's messages on errors.
    """
    std_input = standard_json_input(sources)
    key_src = json.dumps([SOLC_VERSION, contract, std_input], sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()
    cache = _cache_dir()
    hit = cache / f"{key}.bin" if cache else None
    if hit is not None and hit.is_file():
        return bytes.fromhex(hit.read_text().strip())

    out = _run_solc(std_input)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        msgs = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise SolcError(f"solc rejected the sources:\n{msgs}")
    file_name, _, name = contract.rpartition(":")
    found = [(f, c) for f, cs in sorted(out.get("contracts", {}).items()) for c in sorted(cs)
             if c == name and (not file_name or f == file_name)]
    if len(found) != 1:
        raise SolcError(f"contract {contract!r} {'not found' if not found else 'ambiguous'} "
                        f"in the compiler output")
    f, c = found[0]
    code = out["contracts"][f][c]["evm"]["bytecode"]["object"]
    if not code:
        raise SolcError(f"contract {contract!r} has no bytecode (abstract or interface?)")
    if hit is not None:
        try:  # best effort: a read-only cache only costs a recompile
            hit.parent.mkdir(parents=True, exist_ok=True)
            tmp = hit.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(code)
            tmp.replace(hit)
        except OSError:
            pass
    return bytes.fromhex(code)
