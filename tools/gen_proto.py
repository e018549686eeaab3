"""Generate provider/_proto from proto/ with grpcio-tools (`make proto`).

protoc writes `import v1alpha1_pb2` at the top level; we rewrite it to a package-relative import so
the generated modules live inside `provider._proto`.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GENERATED_NAMES = ("v1alpha1_pb2.py", "v1alpha1_pb2.pyi", "v1alpha1_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    """Write the generated modules into out_dir."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_DIR / "v1alpha1.proto"),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in GENERATED_NAMES:
            text = (Path(tmp) / name).read_text()
            text = re.sub(r"^import v1alpha1_pb2 as", "from . import v1alpha1_pb2 as", text, flags=re.M)
            (out_dir / name).write_text(text)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "provider" / "_proto")
