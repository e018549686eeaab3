"""`secrets-store-csi-provider lint SPC.yaml ...`: offline checks of SecretProviderClass manifests.

Each SPC goes through what a mount would do before any I/O: the driver's own preconditions, the request
parsing, the templates, and the backend's `plan`. A backend that has a `lint(ctx)` method reports every
finding at once (unknown parameters and fields with the nearest valid name, each bad object); otherwise
the first error its `plan` raises is the finding.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from provider.backends import BACKEND_MODULES, create_backend
from provider.errors import ProviderError
from provider.findings import ERROR, WARNING, Finding
from provider.localdriver import DriverRejection, PodIdentity, build_mount_request, spc_parts
from provider.output import path_problem
from provider.request import MountContext, parse_mount_request
from provider.templates import parse_templates

LINT_POD = PodIdentity.named("lint", "default", "default")
# Identity material comes from the cluster at mount time; lint stands in placeholders for it so that an
# SPC is judged on what its author wrote, not on the tokens the driver will send.
PLACEHOLDER_AUDIENCES = ("vault", "api://AzureADTokenExchange", "api://AKSIdentityBinding", "")
PLACEHOLDER = "lint-placeholder"
PLACEHOLDER_SECRETS = {"clientid": PLACEHOLDER, "clientsecret": PLACEHOLDER}


@dataclass(frozen=True)
class Problem:
    file: str
    spc: str
    object: str
    severity: str
    message: str

    def line(self) -> str:
        where = f"{self.file}: {self.spc or '<unnamed>'}"
        if self.object:
            where += f" object {self.object!r}"
        return f"{where}: {self.severity}: {self.message}"


def lint_file(path: str, args: argparse.Namespace) -> list[Problem]:
    try:
        with open(path) as handle:
            documents = [d for d in yaml.safe_load_all(handle) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        return [Problem(path, "", "", ERROR, f"cannot read the manifest: {exc}")]
    spcs = [d for d in documents if d.get("kind") == "SecretProviderClass"]
    if not spcs:
        return [Problem(path, "", "", WARNING, "no SecretProviderClass in this file")]
    return [problem for spc in spcs for problem in lint_spc(path, spc, args)]


def lint_spc(path: str, spc: dict[str, Any], args: argparse.Namespace) -> list[Problem]:
    name = str((spc.get("metadata") or {}).get("name") or "")

    # The line names the SPC already; a message's own "SecretProviderClass <placeholder ns>/<name>: " is noise.
    redundant = f"SecretProviderClass {LINT_POD.namespace}/{name}: "

    def problem(finding: Finding) -> Problem:
        return Problem(path, name, finding.object, finding.severity, finding.message.removeprefix(redundant))

    try:
        _, provider_name, parameters = spc_parts(spc)
        audiences = {*PLACEHOLDER_AUDIENCES, parameters.get("audience", "").strip()}
        request = build_mount_request(spc, LINT_POD, tokens={a: PLACEHOLDER for a in audiences},
                                      secrets=PLACEHOLDER_SECRETS)
        ctx = parse_mount_request(request.attributes, request.secrets, request.permission, request.target_path)
    except (DriverRejection, ProviderError) as exc:
        return [problem(Finding("", ERROR, str(exc)))]
    if provider_name not in BACKEND_MODULES:
        known = ", ".join(BACKEND_MODULES)
        return [problem(Finding("", ERROR, f"spec.provider {provider_name!r} is not served here (known: {known})"))]
    findings = list(_backend_findings(provider_name, ctx, args))
    findings += _template_findings(ctx)
    return [problem(f) for f in findings]


def _template_findings(ctx: MountContext) -> list[Finding]:
    """The templates' syntax, and each output name against the driver's path rules (checked at mount by
    output.py; references to other files can only be checked once the backend has produced them)."""
    try:
        templates = parse_templates(ctx.parameters)
    except ProviderError as exc:
        return [Finding("", ERROR, exc.message)]
    return [
        Finding(f"template {t.file_name}", ERROR, f"fileName {t.file_name!r} {problem}")
        for t in templates
        if (problem := path_problem(t.file_name)) is not None
    ]


def _backend_findings(name: str, ctx: MountContext, args: argparse.Namespace) -> Iterable[Finding]:
    backend = create_backend(name, args)
    own_lint = getattr(backend, "lint", None)
    if own_lint is not None:
        yield from own_lint(ctx)
        return
    try:
        backend.plan(ctx)
    except ProviderError as exc:
        yield Finding("", ERROR, exc.message)


def report(problems: Sequence[Problem], fmt: str, checked: int) -> str:
    if fmt == "json":
        return json.dumps({"files": checked, "problems": [asdict(p) for p in problems]}, indent=2)
    lines = [p.line() for p in problems]
    errors = sum(1 for p in problems if p.severity == ERROR)
    lines.append(f"{checked} file(s) checked: {errors} error(s), {len(problems) - errors} warning(s)")
    return "\n".join(lines)


def lint_command(args: argparse.Namespace) -> int:
    problems = [p for path in args.files for p in lint_file(path, args)]
    print(report(problems, args.format, len(args.files)))
    return 1 if any(p.severity == ERROR for p in problems) else 0
