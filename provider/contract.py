"""The backend contract: what a backend declares, as data, and the two things it does.

A backend declares its SecretProviderClass parameters, its object fields, its daemon flags, the token
audiences and nodePublishSecretRef keys it reads (a Declaration), and supplies `check` (every check of
one mount, no I/O, each problem recorded) and `fetch` (the backend's I/O, as the pod). From the
declaration the core derives the unknown-name hints, `--help` of the flags, lint's placeholders and the
parameter tables of docs/; from `check` it derives both a mount's plan (the first error raised, the
warnings logged once) and `lint` (every finding), so the two can never disagree.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from provider.errors import echo
from provider.files import SecretFile
from provider.findings import Finding, Findings, nearest, warn_once
from provider.request import DRIVER_ADDED_KEYS, MountContext
from provider.scalars import GO_BOOL, BoolSyntax
from provider.templates import TEMPLATES_PARAMETER

PlanT = TypeVar("PlanT")
PlanT_co = TypeVar("PlanT_co", covariant=True)


@dataclass(frozen=True)
class Parameter:
    """One SPC parameter. `default` is what an unset parameter means, in the docs' words."""

    name: str
    doc: str
    default: str = ""
    required: bool = False
    example: str = ""
    aliases: tuple[str, ...] = ()  # other spellings, read when the name itself is empty (tenantId)
    booleans: BoolSyntax | None = None  # a boolean parameter: the texts it takes (GO_BOOL for the usual)
    ignored: str = ""  # accepted and ignored; the warning says why (as by the official provider...)
    row_of: str = ""  # documented in the row of that parameter (a pair such as a certificate and its key)

    def boolean(self, text: str) -> bool | None:
        """text read with the parameter's booleans (Go's strconv.ParseBool unless it declares others);
        None when text is not one of them."""
        return (self.booleans or GO_BOOL).parse(text)

    def read(self, params: Mapping[str, str]) -> str:
        """Its value, trimmed, or its first alias's that is set; "" when none is."""
        for name in (self.name, *self.aliases):
            value = params.get(name, "").strip()
            if value:
                return value
        return ""


@dataclass(frozen=True)
class ObjectField:
    """One field of an object in the `objects` parameter."""

    name: str
    doc: str
    default: str = ""


@dataclass(frozen=True)
class Flag:
    """A daemon flag, as argparse takes it; its help line is the `--help` text."""

    option: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    action: str | None = None
    nargs: str | None = None
    const: Any = None

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")

    def add_to(self, parser: Any) -> None:
        options = {"default": self.default, "help": self.help, "type": self.type, "choices": self.choices,
                   "metavar": self.metavar, "action": self.action, "nargs": self.nargs, "const": self.const}
        parser.add_argument(self.option, **{k: v for k, v in options.items() if v is not None or k == "default"})


@dataclass(frozen=True)
class Declaration:
    """Everything about a backend that is data; the package exposes it as `declaration`."""

    name: str  # also the socket name, `<provider-dir>/<name>.sock`
    parameters: tuple[Parameter, ...] = ()
    object_fields: tuple[ObjectField, ...] = ()
    flags: tuple[Flag, ...] = ()
    # Flags limiting what an SPC may name: listed with the core's under "what SecretProviderClasses may name".
    policy_flags: tuple[Flag, ...] = ()
    # Service-account token audiences the backend reads, and parameters whose value names one: lint stands
    # in placeholder tokens for them.
    token_audiences: tuple[str, ...] = ()
    audience_parameters: tuple[str, ...] = ()
    # nodePublishSecretRef keys the backend reads (lint stands in placeholders), and those whose values
    # identify rather than authenticate (kept readable in logs and errors).
    secret_keys: tuple[str, ...] = ()
    public_secret_keys: frozenset[str] = frozenset()
    # How a plan may say whom the backend asks as (its `identity_mode`): the metric label's fixed set.
    identity_modes: tuple[str, ...] = ()
    # Object fields of old releases, and what became of them: the hint for an unknown field of that name.
    former_fields: Mapping[str, str] = field(default_factory=dict)
    # The columns of the docs' tables (docs/<name>.md), in their order.
    parameter_columns: tuple[str, ...] = ("Parameter", "Required", "Default", "Meaning")
    field_columns: tuple[str, ...] = ("Field", "Default", "Meaning")
    # Warnings `serve` logs at start when the operator left this backend's policy open.
    serve_warnings: Callable[[argparse.Namespace], list[str]] | None = None

    # Derived once (every mount asks): a frozen dataclass's cached_property writes its own __dict__.
    @functools.cached_property
    def known_parameters(self) -> tuple[str, ...]:
        return tuple(name for p in self.parameters if not p.ignored for name in (p.name, *p.aliases))

    @functools.cached_property
    def _ignored(self) -> dict[str, str]:
        return {p.name: p.ignored for p in self.parameters if p.ignored}

    @functools.cached_property
    def _by_name(self) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters}

    @functools.cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.object_fields)

    def parameter(self, name: str) -> Parameter:
        return self._by_name[name]

    def unknown_parameters(self, params: Mapping[str, str], findings: Findings) -> None:
        """A warning for each parameter that is neither the backend's, the driver's nor the core's (templates):
        ignored, as by the official providers, but reported with the nearest known name."""
        known, ignored = self.known_parameters, self._ignored
        for name in params:
            if name in known or name in DRIVER_ADDED_KEYS or name == TEMPLATES_PARAMETER:
                continue
            if name in ignored:
                findings.warn(f"parameter {echo(name)} is ignored ({ignored[name]})", key=name, parameter=name)
                continue
            guess = nearest(name, known)
            hint = f"; did you mean {echo(guess)}?" if guess else ""
            findings.warn(f"unknown parameter {echo(name)} is ignored{hint}", key=name, parameter=name,
                          suggestion=guess)

    def field_suggestion(self, name: str) -> str:
        """What an unknown object field probably meant: what it became, else the nearest field ('' if none)."""
        return self.former_fields.get(name) or nearest(name, self.field_names)

    def add_flags(self, parser: Any) -> None:
        for flag in self.flags:
            flag.add_to(parser)

    def flag_values(self, args: argparse.Namespace) -> dict[str, Any]:
        """Each flag's value by its dest, the declared default where `args` lacks it."""
        return {f.dest: getattr(args, f.dest, f.default) for f in (*self.flags, *self.policy_flags)}


class Backend(Protocol[PlanT]):
    """A backend as the core sees it. `check` makes every check of one mount without I/O, recording each
    problem (and each warning) in `findings`, and returns the plan when there is no error."""

    declaration: Declaration

    def check(self, ctx: MountContext, findings: Findings) -> PlanT | None: ...

    def fetch(self, plan: PlanT, deadline: float) -> list[SecretFile]:
        """Read every object of the plan as the pod, before `deadline` (time.monotonic())."""
        ...


def spc_label(ctx: MountContext) -> str:
    """"<namespace>/<name>" of the mount's SecretProviderClass, for messages and logs."""
    return f"{ctx.pod.namespace}/{ctx.spc_name}" if ctx.spc_name else ctx.pod.namespace or "(unnamed)"


def plan_mount(backend: Backend[PlanT], ctx: MountContext) -> PlanT:
    """The mount's plan: the first error `check` found is raised, its warnings are logged once per SPC."""
    findings = Findings()
    plan = backend.check(ctx, findings)
    spc = spc_label(ctx)
    for warning in findings.warnings:
        warn_once(spc, warning.key, f"SecretProviderClass {spc}: {warning.message}", warning.fields)
    findings.raise_first()
    assert plan is not None, "a check that recorded no error returns its plan"
    return plan


def lint_mount(backend: Backend[Any], ctx: MountContext) -> list[Finding]:
    """Every problem a mount would find (it raises only the first), and every warning it would log."""
    findings = Findings()
    backend.check(ctx, findings)
    return findings.items
