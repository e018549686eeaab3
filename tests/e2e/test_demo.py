"""`make demo` works: the seed article's SPC, then one file per key and a .pgpass, checked, mounted, polled."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_mounts_the_seed_spc_and_the_per_key_spc() -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    done = subprocess.run([sys.executable, "tools/demo.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ROOT / "demo-out" / "db-password").read_text() == "db-secret-password"
    config = ROOT / "demo-out-config"
    assert sorted(p.name for p in (config / "db").iterdir()) == ["dbname", "host", "password", "port", "username"]
    assert (config / ".pgpass").read_text() == "db.internal:5432:app:app:db-config-password\n"
    assert stat.S_IMODE(os.stat(config / ".pgpass").st_mode) == 0o600
    out = done.stdout
    assert "1 file(s) checked: 0 error(s), 0 warning(s)" in out
    assert out.index("wrote: ") < out.index("unchanged: ")  # the second poll wrote nothing new
    first = out.split("==> Mount it for the same pod")[1].split("==> Mount it again")[0]
    second = out.split("==> Mount it again")[1].split("==> The mounted files")[0]
    tables = [[line.split() for line in block.splitlines() if line.startswith(("db/", ".pgpass"))]
              for block in (first, second)]
    assert len(tables[0]) == 6 and tables[0] == tables[1]  # path, mode, size, object, version: all the same
    # Dynamic secrets: the rotation poll got the same certificate and versions, from one lease.
    sections = out.split("\n==> ")
    mounted = [next(s for s in sections if s.startswith(start)) for start in ("Mount it for pod", "Poll again")]
    rows = [[line.split() for line in s.splitlines() if line.startswith(("tls.", "ca.crt"))] for s in mounted]
    assert len(rows[0]) == 3 and rows[0] == rows[1] and "unchanged: " in mounted[1]
    leases = next(s for s in sections if s.startswith("One lease")).splitlines()
    assert len(leases[leases.index("----") + 1:]) == 1
    new = set(os.listdir(tempfile.gettempdir())) - before
    assert {n for n in new if n.startswith("sscsi-demo-")} == set()
