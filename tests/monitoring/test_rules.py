"""deploy/monitoring: the alert rules pass `promtool check rules` and `promtool test rules`, every alert is
tested both ways and can be acted on (summary, description, a runbook section that exists), the
PrometheusRule and the dashboard are what `make monitoring` generates, and the kustomization builds into
objects that validate.

promtool comes from `make tools` (Debian's prometheus package, unpacked into .venv/bin). Without it the
promtool tests are skipped, but only when they cannot have it: as root (as in CI), `make test` installs it,
so a missing promtool fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv

from tests.deploy.manifests import DEPLOY, ROOT
from tools.gen_monitoring import (
    DASHBOARD_FILE,
    PROMETHEUS_RULE_FILE,
    RULES_FILE,
    dashboard,
    prometheus_rule,
)

MONITORING = DEPLOY / "monitoring"
ALERTS_TEST = Path(__file__).with_name("alerts_test.yaml")
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
RUNBOOK_PREFIX = "docs/troubleshooting.md#"
SEVERITIES = {"warning", "critical"}
NAME = "secrets-store-csi-provider"


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


RULES = _rules()
ALERTS = [rule for rule in RULES if "alert" in rule]


def promtool() -> str:
    beside_python = Path(sys.executable).with_name("promtool")
    found = str(beside_python) if beside_python.exists() else shutil.which("promtool")
    if found:
        return found
    if os.geteuid() == 0:
        pytest.fail("promtool is missing: `make tools` installs it (as root it can, so this is a failure)")
    pytest.skip("promtool is missing and only root can install it: run `make tools` as root, or put promtool on PATH")


def run_promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


# ------------------------------------------------------------------------------------------- promtool


def test_promtool_checks_the_rules() -> None:
    output = run_promtool("check", "rules", str(RULES_FILE.relative_to(ROOT)))
    assert f"SUCCESS: {len(RULES)} rules found" in output


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    output = run_promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))
    assert "SUCCESS" in output


def _alert_cases() -> dict[str, dict[str, int]]:
    """For each alert: how many promtool cases expect it to fire, and how many expect it not to."""
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    assert tests["rule_files"] == [os.path.relpath(RULES_FILE, ALERTS_TEST.parent)]
    cases: dict[str, dict[str, int]] = {}
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            counts = cases.setdefault(case["alertname"], {"fires": 0, "silent": 0})
            counts["fires" if case["exp_alerts"] else "silent"] += 1
    return cases


@pytest.mark.parametrize("alert", [a["alert"] for a in ALERTS])
def test_every_alert_has_a_case_that_fires_and_one_that_must_not(alert: str) -> None:
    counts = _alert_cases().get(alert, {"fires": 0, "silent": 0})
    assert counts["fires"] >= 1, f"no promtool case makes {alert} fire"
    assert counts["silent"] >= 1, f"no promtool case checks that {alert} stays silent"


def test_promtool_cases_name_only_existing_alerts() -> None:
    assert set(_alert_cases()) <= {a["alert"] for a in ALERTS}


# --------------------------------------------------------------------------------- alerts one can act on


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives headings: lower case, punctuation other than '-' and '_' dropped, spaces to
    hyphens, and -1, -2... for repeats."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"^#{1,6} (.+?)\s*#*$", line)
        if in_code or not heading:
            continue
        anchor = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        candidate, repeat = anchor, 0
        while candidate in anchors:
            repeat += 1
            candidate = f"{anchor}-{repeat}"
        anchors.add(candidate)
    return anchors


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("### SecretsStoreProviderDown", "secretsstoreproviderdown"),
        ("## Vault (`provider: vault`)", "vault-provider-vault"),
        ("### Time, builds and bugs", "time-builds-and-bugs"),
        ("### Templated files (`templates`)", "templated-files-templates"),
        ("### Reading the objects\n### Reading the objects", "reading-the-objects-1"),
    ],
)
def test_github_anchors(heading: str, anchor: str) -> None:
    assert anchor in github_anchors(heading)


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_can_be_acted_on(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"SecretsStoreProvider[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert len(annotations["summary"]) <= 120, "a summary is one line"
    assert "Likely cause" in annotations["description"], "the description must name the likely cause"
    runbook = annotations["runbook_url"]
    assert runbook.startswith(RUNBOOK_PREFIX)
    anchor = runbook.removeprefix(RUNBOOK_PREFIX)
    assert anchor in github_anchors(TROUBLESHOOTING.read_text()), f"{runbook}: no such section"
    assert anchor == rule["alert"].lower(), "the runbook section is named after the alert"


def test_every_alert_is_explained_in_metrics_md() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    listed = re.findall(r"^\| `(SecretsStoreProvider\w+)` \|", text, flags=re.MULTILINE)
    assert listed == [a["alert"] for a in ALERTS]


# ------------------------------------------------------------------------------------ generated files


def test_prometheus_rule_is_generated_from_the_rules_file() -> None:
    assert PROMETHEUS_RULE_FILE.read_text() == prometheus_rule(), "prometheusrule.yaml is stale: run `make monitoring`"
    generated = yaml.safe_load(PROMETHEUS_RULE_FILE.read_text())
    assert generated["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]


def test_dashboard_is_generated() -> None:
    assert DASHBOARD_FILE.read_text() == dashboard(), "dashboard.json is stale: run `make monitoring`"


# ------------------------------------------------------------------------- the kustomization and its kinds

KUSTOMIZE_TIMEOUT = 120


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for `kubectl kustomize`) is not on PATH")
    done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=KUSTOMIZE_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def prometheus_rule_problems(doc: dict[str, Any]) -> list[str]:
    """The PrometheusRule CRD's schema (monitoring.coreos.com/v1), strictly: unknown fields fail."""
    problems = _object_problems(doc, "PrometheusRule")
    groups = (doc.get("spec") or {}).get("groups")
    problems += _unknown(doc.get("spec") or {}, {"groups"}, "spec.")
    if not isinstance(groups, list) or not groups:
        return [*problems, "spec.groups must be a non-empty list"]
    for i, group in enumerate(groups):
        where = f"spec.groups[{i}]"
        problems += _unknown(group, {"name", "interval", "rules", "partial_response_strategy", "limit"}, f"{where}.")
        if not isinstance(group.get("name"), str) or not group["name"]:
            problems.append(f"{where}.name must be a non-empty string")
        for j, rule in enumerate(group.get("rules") or []):
            at = f"{where}.rules[{j}]"
            problems += _unknown(rule, {"alert", "record", "expr", "for", "keep_firing_for", "labels",
                                        "annotations"}, f"{at}.")
            if ("alert" in rule) == ("record" in rule):
                problems.append(f"{at} must have exactly one of alert and record")
            if not isinstance(rule.get("expr"), (str, int)) or rule.get("expr") == "":
                problems.append(f"{at}.expr must be set")
            if "for" in rule and not DURATION.match(str(rule["for"])):
                problems.append(f"{at}.for must be a duration")
            for mapping in ("labels", "annotations"):
                value = rule.get(mapping, {})
                if not isinstance(value, dict) or not all(
                    isinstance(k, str) and LABEL_NAME.match(k) and isinstance(v, str) for k, v in value.items()
                ):
                    problems.append(f"{at}.{mapping} must map label names to strings")
    return problems


def pod_monitor_problems(doc: dict[str, Any]) -> list[str]:
    """The PodMonitor CRD's fields that this one uses, strictly."""
    problems = _object_problems(doc, "PodMonitor")
    spec = doc.get("spec") or {}
    problems += _unknown(spec, {"jobLabel", "selector", "podMetricsEndpoints", "namespaceSelector",
                                "podTargetLabels"}, "spec.")
    if not (spec.get("selector") or {}).get("matchLabels"):
        problems.append("spec.selector.matchLabels must select the provider's pods")
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        return [*problems, "spec.podMetricsEndpoints must be a non-empty list"]
    for i, endpoint in enumerate(endpoints):
        at = f"spec.podMetricsEndpoints[{i}]"
        problems += _unknown(endpoint, {"port", "path", "interval", "scrapeTimeout", "relabelings",
                                        "metricRelabelings", "scheme"}, f"{at}.")
        if "interval" in endpoint and not DURATION.match(endpoint["interval"]):
            problems.append(f"{at}.interval must be a duration")
        for j, relabel in enumerate(endpoint.get("relabelings") or []):
            problems += _unknown(relabel, {"sourceLabels", "separator", "targetLabel", "regex", "modulus",
                                           "replacement", "action"}, f"{at}.relabelings[{j}].")
            if relabel.get("action", "replace") not in ("replace", "keep", "drop", "labelmap", "labeldrop",
                                                        "labelkeep", "hashmod", "lowercase", "uppercase"):
                problems.append(f"{at}.relabelings[{j}].action is unknown")
    return problems


def _object_problems(doc: dict[str, Any], kind: str) -> list[str]:
    problems = _unknown(doc, {"apiVersion", "kind", "metadata", "spec"}, "")
    if doc.get("apiVersion") != "monitoring.coreos.com/v1" or doc.get("kind") != kind:
        problems.append(f"must be a monitoring.coreos.com/v1 {kind}")
    metadata = doc.get("metadata") or {}
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(metadata.get("name", ""))):
        problems.append("metadata.name must be a DNS label")
    return problems


def _unknown(value: dict[str, Any], allowed: set[str], prefix: str) -> list[str]:
    return [f"unknown field {prefix}{key}" for key in value if key not in allowed]


CHECKS = {"PrometheusRule": prometheus_rule_problems, "PodMonitor": pod_monitor_problems}


def test_monitoring_kustomization_builds_into_valid_objects() -> None:
    built = kustomize_build(MONITORING)
    kinds = sorted(doc["kind"] for doc in built)
    assert kinds == ["ConfigMap", "PodMonitor", "PrometheusRule"]
    for doc in built:
        assert doc["metadata"]["namespace"] == NAME
        if doc["kind"] in CHECKS:
            assert CHECKS[doc["kind"]](doc) == [], doc["kind"]
        else:
            kv.validate(doc, kv.major_minor(kv.latest_version()), strict=True)
    rule = next(doc for doc in built if doc["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]
    config_map = next(doc for doc in built if doc["kind"] == "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = config_map["data"].values()
    assert json.loads(content) == json.loads(DASHBOARD_FILE.read_text())


def test_monitoring_is_not_part_of_the_install() -> None:
    install = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert not any("monitoring" in resource for resource in install["resources"])


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "exp"], "up", "unknown field"),
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "for"], "ten minutes", "must be a duration"),
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "labels"], {"severity": 1}, "label names to strings"),
        ("PrometheusRule", ["apiVersion"], "monitoring.coreos.com/v1beta1", "must be a monitoring.coreos.com/v1"),
        ("PodMonitor", ["spec", "podMetricsEndpoints", 0, "prot"], "metrics", "unknown field"),
        ("PodMonitor", ["spec", "podMetricsEndpoints", 0, "relabelings", 0, "action"], "rename", "is unknown"),
    ],
)
def test_custom_resource_checks_catch_mistakes(kind: str, path: list[Any], value: Any, expected: str) -> None:
    source = PROMETHEUS_RULE_FILE if kind == "PrometheusRule" else MONITORING / "podmonitor.yaml"
    doc = yaml.safe_load(source.read_text())
    assert CHECKS[kind](doc) == []
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert any(expected in problem for problem in CHECKS[kind](doc)), CHECKS[kind](doc)


def test_podmonitor_scrapes_the_daemonset_port_with_the_job_the_rules_select() -> None:
    monitor = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    daemonset = yaml.safe_load((DEPLOY / "daemonset.yaml").read_text())
    template = daemonset["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]}
    assert template["metadata"]["labels"][monitor["spec"]["jobLabel"]] == NAME
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"} in (
        endpoint["relabelings"]
    )
    # The alerts on restarts and memory select the provider by the namespace and container name.
    install = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for rule in ALERTS:
        if 'container="provider"' in rule["expr"]:
            assert f'namespace="{install["namespace"]}"' in rule["expr"]
            assert container["name"] == "provider"
        elif "provider_" in rule["expr"] or "up{" in rule["expr"]:
            assert f'job="{NAME}"' in rule["expr"], rule["alert"]
