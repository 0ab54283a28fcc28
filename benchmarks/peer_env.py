"""The peer's private environment: `.venv-peer/` (a pip --target folder), created on first use."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_DIR = REPO / ".venv-peer"
REQUIREMENTS = Path(__file__).with_name("requirements-peer.txt")
STAMP = PEER_DIR / ".requirements.sha256"


class PeerEnvError(RuntimeError):
    pass


def _wanted() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def is_ready() -> bool:
    return STAMP.is_file() and STAMP.read_text().strip() == _wanted()


def ensure_peer_env(quiet: bool = False) -> Path:
    """Install benchmarks/requirements-peer.txt into .venv-peer unless it is there already; returns the folder."""
    if is_ready():
        return PEER_DIR
    print(f"bench: installing the fer-based peer into {PEER_DIR} (once; see {REQUIREMENTS.name})", flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade", "--target", str(PEER_DIR),
           "-r", str(REQUIREMENTS)]
    if quiet:
        cmd.insert(4, "-q")
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise PeerEnvError(f"installing the peer environment failed ({' '.join(cmd)}; exit {done.returncode}); "
                           "run the bench with --no-peer to skip the comparison")
    STAMP.write_text(_wanted() + "\n")
    return PEER_DIR


def peer_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a peer subprocess: the peer folder first on PYTHONPATH (its OpenCV 4.x shadows ours)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([str(PEER_DIR), str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p and p not in (str(PEER_DIR), str(REPO))])
    return env
