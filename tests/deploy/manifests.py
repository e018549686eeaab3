"""Loading deploy/ and checking what kubernetes-validate cannot: SecretProviderClass, a CRD.

The SecretProviderClass check follows the essentials of the driver's `secrets-store.csi.x-k8s.io/v1`
CRD schema, made stricter where the driver would fail later anyway: parameters must be a non-empty map
of strings (the driver refuses empty parameters; an unquoted `true` would be rejected by the CRD), the
provider name must be a valid socket name, and every secretObject needs secretName, type and data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

SPC_API_VERSION = "secrets-store.csi.x-k8s.io/v1"
SPC_KIND = "SecretProviderClass"
DRIVER_NAME = "secrets-store.csi.k8s.io"
# The driver's rule for provider names, which are also socket file names (contract §4).
PROVIDER_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,30}$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
TLS_KEYS = frozenset({"tls.key", "tls.crt"})
# deploy/monitoring: a plain Prometheus rules file (not a Kubernetes object), and the Prometheus Operator's
# kinds, which kubernetes-validate has no schema for (tests/monitoring checks them).
PROMETHEUS_RULES_FILE = DEPLOY / "monitoring" / "prometheus-rules.yaml"
MONITORING_KINDS = frozenset({"PodMonitor", "PrometheusRule"})


@dataclass(frozen=True)
class Manifest:
    path: Path
    index: int
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        return (self.doc.get("metadata") or {}).get("namespace")

    @property
    def label(self) -> str:
        return f"{self.path.relative_to(ROOT)}#{self.index}:{self.kind}/{self.name}"


def yaml_files(root: Path = DEPLOY) -> list[Path]:
    """Every YAML file of Kubernetes objects under root (kustomization files included)."""
    return sorted(
        p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file() and p != PROMETHEUS_RULES_FILE
    )


def load_manifests(root: Path = DEPLOY) -> list[Manifest]:
    """Every Kubernetes object under root, one per YAML document; kustomization files excluded."""
    found: list[Manifest] = []
    for path in yaml_files(root):
        if path.name in ("kustomization.yaml", "kustomization.yml"):
            continue
        with path.open() as handle:
            for index, doc in enumerate(yaml.safe_load_all(handle)):
                if doc is not None:
                    found.append(Manifest(path, index, doc))
    return found


def spc_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a SecretProviderClass; empty when it is well formed."""
    problems: list[str] = []
    if doc.get("apiVersion") != SPC_API_VERSION:
        problems.append(f"apiVersion must be {SPC_API_VERSION}")
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata.get("name"), str) or not DNS_SUBDOMAIN.match(metadata["name"]):
        problems.append("metadata.name must be a DNS subdomain")
    problems += _unknown(doc, {"apiVersion", "kind", "metadata", "spec"}, "")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec must be an object"]
    problems += _unknown(spec, {"provider", "parameters", "secretObjects"}, "spec.")
    provider = spec.get("provider")
    if not isinstance(provider, str) or not PROVIDER_NAME.match(provider):
        problems.append("spec.provider must match ^[a-zA-Z0-9_-]{1,30}$")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        problems.append("spec.parameters must be a non-empty map (the driver refuses empty parameters)")
    else:
        problems += _string_map(parameters, "spec.parameters")
    secret_objects = spec.get("secretObjects", [])
    if not isinstance(secret_objects, list):
        return [*problems, "spec.secretObjects must be a list"]
    for i, item in enumerate(secret_objects):
        problems += _secret_object_problems(item, f"spec.secretObjects[{i}]")
    return problems


def _secret_object_problems(item: Any, where: str) -> list[str]:
    if not isinstance(item, dict):
        return [f"{where} must be an object"]
    problems = _unknown(item, {"secretName", "type", "labels", "annotations", "data"}, f"{where}.")
    for required in ("secretName", "type"):
        if not isinstance(item.get(required), str) or not item[required]:
            problems.append(f"{where}.{required} must be a non-empty string")
    for mapping in ("labels", "annotations"):
        if mapping in item:
            problems += _string_map(item[mapping], f"{where}.{mapping}")
    data = item.get("data")
    if not isinstance(data, list) or not data:
        return [*problems, f"{where}.data must be a non-empty list"]
    for j, entry in enumerate(data):
        at = f"{where}.data[{j}]"
        if not isinstance(entry, dict):
            problems.append(f"{at} must be an object")
            continue
        problems += _unknown(entry, {"objectName", "key"}, f"{at}.")
        for required in ("objectName", "key"):
            if not isinstance(entry.get(required), str) or not entry[required]:
                problems.append(f"{at}.{required} must be a non-empty string")
        if item.get("type") == "kubernetes.io/tls" and entry.get("key") not in TLS_KEYS:
            problems.append(f"{at}.key must be tls.key or tls.crt in a kubernetes.io/tls secret")
    return problems


def _unknown(value: dict[str, Any], allowed: set[str], prefix: str) -> list[str]:
    return [f"unknown field {prefix}{key}" for key in value if key not in allowed]


def _string_map(value: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where} must be a map of strings"]
    return [
        f"{where}[{key!r}] must be a string (quote it in YAML)"
        for key, item in value.items()
        if not isinstance(key, str) or not isinstance(item, str)
    ]


def pod_specs(manifest: Manifest) -> Iterator[dict[str, Any]]:
    """The pod spec of a Pod or of a workload's template."""
    doc = manifest.doc
    if manifest.kind == "Pod":
        yield doc.get("spec") or {}
    elif manifest.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    elif manifest.kind == "CronJob":
        job = ((doc.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        yield (job.get("template") or {}).get("spec") or {}


def secrets_store_volumes(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for volume in pod_spec.get("volumes") or []:
        csi = volume.get("csi")
        if csi and csi.get("driver") == DRIVER_NAME:
            yield volume
