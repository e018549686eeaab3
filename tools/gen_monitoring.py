"""Generate deploy/monitoring's PrometheusRule and Grafana dashboard (`make monitoring`).

prometheus-rules.yaml (a plain Prometheus rules file) is the one source of the alerts: the PrometheusRule
holds the same groups for the Prometheus Operator. The dashboard is written from the panel list below,
which lays the panels out on Grafana's grid. Tests fail when the committed files differ from what this
writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
RULES_FILE = MONITORING / "prometheus-rules.yaml"
PROMETHEUS_RULE_FILE = MONITORING / "prometheusrule.yaml"
DASHBOARD_FILE = MONITORING / "dashboard.json"

NAME = "secrets-store-csi-provider"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": NAME}
HEADER = """\
# Generated from prometheus-rules.yaml by `make monitoring`: edit that file, then regenerate this one.
# The same alerts for the Prometheus Operator. Its Prometheus picks PrometheusRules by label
# (`ruleSelector`; kube-prometheus-stack wants `release: <its release name>`): add that label in
# kustomization.yaml (docs/metrics.md, "Alerts").
"""


# --------------------------------------------------------------------------------------- PrometheusRule


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as literal blocks, as they are written in the source."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def prometheus_rule() -> str:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "namespace": NAME, "labels": dict(LABELS)},
        "spec": {"groups": groups},
    }
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=False)
    return HEADER + body


# ------------------------------------------------------------------------------------------- dashboard

# The provider's series on the dashboard: the job the PodMonitor sets, and the chosen nodes and backends.
SELECTOR = 'job="$job", node=~"$node", backend=~"$backend"'
PROCESS = 'job="$job", node=~"$node"'
RATE = "[$__rate_interval]"
WIDTH = 24


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": {"type": "prometheus", "uid": "${datasource}"}, "expr": expr, "legendFormat": legend,
            "refId": ref}


def _panel(title: str, description: str, unit: str, targets: list[tuple[str, str]], width: int = 12,
           kind: str = "timeseries", stack: bool = False) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if kind == "timeseries":
        defaults["custom"] = {"fillOpacity": 10, "stacking": {"mode": "normal" if stack else "none"}}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}} if kind == "timeseries" else {},
        "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
        "gridPos": {"w": width, "h": 8},
    }


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": WIDTH, "h": 1}}


def _quantiles(metric: str, by: str, selector: str) -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}{{{selector}}}{RATE})))",
         f"p{round(q * 100)} {{{{{by.replace(', ', '}} {{')}}}}}")
        for q in (0.5, 0.9, 0.99)
    ]


def _panels() -> list[dict[str, Any]]:
    return [
        _row("Mounts"),
        _panel("Mounts per second", "Mount calls answered, by backend and outcome (empty error kind: success).",
               "reqps", [(f"sum by (backend, error_kind) (rate(provider_mounts_total{{{SELECTOR}}}{RATE}))",
                          "{{backend}} {{error_kind}}")], stack=True),
        _panel("Mount errors per second", "Failed mounts by backend and error kind (docs/troubleshooting.md).",
               "reqps", [(f'sum by (backend, error_kind) (rate(provider_mounts_total{{{SELECTOR}, error_kind!=""}}'
                          f"{RATE}))", "{{backend}} {{error_kind}}")], stack=True),
        _panel("Mount time", "Percentiles of the time to answer a mount; kubelet gives a mount about 2 minutes.",
               "s", _quantiles("provider_mount_duration_seconds_bucket", "backend", SELECTOR)),
        _panel("Mounts in flight", "Mount calls being answered, per node: staying high means a slow backend.",
               "short", [(f"sum by (node, backend) (provider_mounts_in_flight{{{SELECTOR}}})",
                          "{{node}} {{backend}}")]),
        _panel("Failed remounts per second", "Failed rotation polls: the volume keeps its previous files.",
               "reqps", [(f"sum by (node, backend, error_kind) (rate(provider_remount_failures_total{{{SELECTOR}}}"
                          f"{RATE}))", "{{node}} {{backend}} {{error_kind}}")]),
        _panel("Mount error ratio", "Share of mounts that failed, per node and backend.", "percentunit",
               [(f'sum by (node, backend) (rate(provider_mounts_total{{{SELECTOR}, error_kind!=""}}{RATE}))'
                 f" / sum by (node, backend) (rate(provider_mounts_total{{{SELECTOR}}}{RATE}))",
                 "{{node}} {{backend}}")]),
        _row("Backends"),
        _panel("Backend requests per second", "Requests to Vault, Entra ID and Key Vault by operation and status "
               "class (error: no answer).", "reqps",
               [(f"sum by (backend, operation, status_class) (rate(provider_backend_requests_total{{{SELECTOR}}}"
                 f"{RATE}))", "{{backend}} {{operation}} {{status_class}}")], stack=True),
        _panel("Throttled requests per second (HTTP 429)", "Backend answers with HTTP 429, by operation.",
               "reqps", [(f"sum by (backend, operation) (rate(provider_backend_throttled_total{{{SELECTOR}}}"
                          f"{RATE}))", "{{backend}} {{operation}}")]),
        _panel("Backend request time", "Percentiles of the duration of backend requests, by operation.", "s",
               _quantiles("provider_backend_request_duration_seconds_bucket", "backend, operation", SELECTOR)),
        _panel("Cache hit ratio", "Share of cache lookups that saved a login or a request.", "percentunit",
               [(f'sum by (backend, cache) (rate(provider_cache_lookups_total{{{SELECTOR}, result="hit"}}{RATE}))'
                 f" / sum by (backend, cache) (rate(provider_cache_lookups_total{{{SELECTOR}}}{RATE}))",
                 "{{backend}} {{cache}}")]),
        _row("Process"),
        _panel("Memory", "Resident memory of each provider pod, and the DaemonSet's memory limit "
               "(from kube-state-metrics).", "bytes",
               [(f"process_resident_memory_bytes{{{PROCESS}}}", "{{node}} {{pod}}"),
                ('max(kube_pod_container_resource_limits{namespace="secrets-store-csi-provider", '
                 'container="provider", resource="memory"})', "limit")], width=8),
        _panel("CPU", "CPU time used per second by each provider pod.", "percentunit",
               [(f"rate(process_cpu_seconds_total{{{PROCESS}}}{RATE})", "{{node}} {{pod}}")], width=8),
        _panel("Audit records not written", "Audit records that could not be written, per node.", "short",
               [(f"sum by (node) (increase(provider_audit_write_failures_total{{{PROCESS}}}{RATE}))",
                 "{{node}}")], width=8),
    ]


def _layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    x = y = row_height = 0
    for number, panel in enumerate(panels, start=1):
        grid = panel["gridPos"]
        if x + grid["w"] > WIDTH or panel["type"] == "row":
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        panel["id"] = number
    return panels


def _variable(name: str, label: str, query: str, include_all: bool) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "name": name, "label": label, "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name}, "definition": query, "refresh": 2, "sort": 1,
        "includeAll": include_all, "multi": include_all,
        "current": {"selected": True, "text": "All", "value": "$__all"} if include_all else {},
    }
    if include_all:
        variable["allValue"] = ".*"
    return variable


def dashboard() -> str:
    document = {
        "uid": "secrets-store-csi-provider",
        "title": "Secrets Store CSI provider",
        "description": "Mounts, backends and the process of the Secrets Store CSI provider (docs/metrics.md).",
        "tags": ["secrets-store-csi-provider", "kubernetes"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            _variable("job", "Job", "label_values(provider_mounts_total, job)", include_all=False),
            _variable("node", "Node", 'label_values(provider_mounts_total{job="$job"}, node)', include_all=True),
            _variable("backend", "Backend", 'label_values(provider_mounts_total{job="$job"}, backend)',
                      include_all=True),
        ]},
        "annotations": {"list": []},
        "links": [],
        "panels": _layout(_panels()),
    }
    return json.dumps(document, indent=2) + "\n"


GENERATED = {PROMETHEUS_RULE_FILE: prometheus_rule, DASHBOARD_FILE: dashboard}


def main() -> int:
    for path, render in GENERATED.items():
        path.write_text(render())
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
