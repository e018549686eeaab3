"""`make demo-azure` works: the fake, the sandboxed daemon and the mount command, stopped cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.azure_fake.fixtures import require_sandbox

ROOT = Path(__file__).resolve().parents[2]


def test_demo_azure_mounts_the_seed_spc() -> None:
    require_sandbox()
    before = set(os.listdir(tempfile.gettempdir()))
    done = subprocess.run([sys.executable, "tools/demo_azure.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    target = ROOT / "demo-out" / "azure"
    assert (target / "secret1").read_text() == "Hello from Key Vault (the fake one)"
    assert (target / "key1").read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    assert "secret/secret1" in done.stdout and "key/key1" in done.stdout
    new = set(os.listdir(tempfile.gettempdir())) - before
    leftovers = {n for n in new if n.startswith(("sscsi-demo-azure-", "azfake-"))}
    assert leftovers == set()
