"""A backend for testing the daemon itself: its SPC parameters say what files to return. Never shipped.

It is also the proof that a backend is one package-like module with its declaration and fetch, plus one
registry line (tests/support/serve.py), touching no core module. Its parameters, as the declaration says:
objects, delaySeconds, failWith, crash, requireAudience, echoPod, echoSecret.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import yaml

from provider.contract import Declaration, Flag, ObjectField, Parameter
from provider.deadline import time_left
from provider.errors import ErrorKind, ProviderError, invalid
from provider.files import SecretFile
from provider.findings import Findings
from provider.request import MountContext

declaration = Declaration(
    name="test",
    parameters=(
        Parameter("objects", "YAML list of {objectName, path, value | valueBase64, repeat, filePermission}."),
        Parameter("delaySeconds", "Sleep this long in fetch, inside the deadline.", default="0"),
        Parameter("failWith", "An ErrorKind name: fail the mount with it."),
        Parameter("crash", "\"true\": raise an unexpected exception (a bug), which the server answers INTERNAL."),
        Parameter("requireAudience", "Fail UNAUTHENTICATED unless the driver sent a token for this audience."),
        Parameter("echoPod", "\"true\": add a file `pod-info` with the pod's namespace/name/uid/service account."),
        Parameter("echoSecret", "A nodePublishSecretRef key whose raw value becomes the file `secret-value`."),
    ),
    object_fields=tuple(ObjectField(name, "") for name in
                        ("objectName", "path", "value", "valueBase64", "repeat", "filePermission")),
    flags=(Flag("--test-delay-cap", "the longest delaySeconds the test backend sleeps (default: no cap)",
                default=None, type=float),),
)


@dataclass(frozen=True)
class ScriptedPlan:
    files: tuple[SecretFile, ...]
    delay: float


class ScriptedBackend:
    declaration = declaration

    def __init__(self, delay_cap: float | None = None) -> None:
        self.delay_cap = delay_cap

    def check(self, ctx: MountContext, findings: Findings) -> ScriptedPlan | None:
        try:
            plan = self._plan(ctx)
        except ProviderError as exc:
            findings.error(exc)
            return None
        return plan

    def _plan(self, ctx: MountContext) -> ScriptedPlan:
        params = ctx.parameters
        if params.get("failWith"):
            raise ProviderError(ErrorKind[params["failWith"]], f"planted {params['failWith']} failure")
        if params.get("crash") == "true":
            raise RuntimeError("planted bug in the test backend")
        audience = params.get("requireAudience")
        if audience is not None and ctx.token_for(audience) is None:
            raise ProviderError(ErrorKind.UNAUTHENTICATED, f"no service-account token for audience {audience!r}")
        try:
            objects: Any = yaml.safe_load(params.get("objects", "")) or []
        except yaml.YAMLError:
            raise invalid("objects is not valid YAML") from None
        files = [self._file(o) for o in objects]
        if params.get("echoPod") == "true":
            pod = ctx.pod
            text = f"{pod.namespace}/{pod.name}/{pod.uid}/{pod.service_account}"
            files.append(SecretFile("pod-info", text.encode(), "pod-info", "pod-info"))
        if params.get("echoSecret"):
            value = ctx.secrets.get(params["echoSecret"], "")
            files.append(SecretFile("secret-value", value.encode(), "secret-value", "secret-value"))
        delay = float(params.get("delaySeconds", "0"))
        return ScriptedPlan(tuple(files), delay if self.delay_cap is None else min(delay, self.delay_cap))

    def _file(self, obj: dict[str, Any]) -> SecretFile:
        contents = base64.b64decode(obj["valueBase64"]) if "valueBase64" in obj else str(obj.get("value", "")).encode()
        contents *= int(obj.get("repeat", 1))  # large files from a small request
        mode = obj.get("filePermission")
        if isinstance(mode, str):
            mode = int(mode, 8)
        spec = json.dumps({k: v for k, v in obj.items() if k not in ("value", "valueBase64")}, sort_keys=True)
        return SecretFile(
            path=str(obj.get("path", obj["objectName"])),
            contents=contents,
            object_id=str(obj["objectName"]),
            object_spec=spec,
            mode=mode,
        )

    def fetch(self, plan: ScriptedPlan, deadline: float) -> list[SecretFile]:
        end = time.monotonic() + plan.delay
        while time.monotonic() < end:
            time.sleep(min(0.05, time_left(deadline, "the test backend finished its delay")))
        return list(plan.files)


def create(args: argparse.Namespace) -> ScriptedBackend:
    return ScriptedBackend(declaration.flag_values(args)["test_delay_cap"])
