"""Every metric name and label that the alert rules and the dashboard use is one the daemon really
exports: checked against a scrape of a running daemon after real mounts against OpenBao (successes, a
failed remount, throttled reads, audit records it cannot write). Histograms' `_bucket`, `_sum` and
`_count` series and the client's process metrics count as exported because they are in the scrape.

Series from elsewhere are allowed only from the documented list in docs/metrics.md ("Metrics from outside
the provider"), with the labels it names, and target labels only from the list there too."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from provider.localdriver import PodIdentity, build_mount_request, call_mount
from tests.deploy.manifests import ROOT
from tests.monitoring.promql import legend_labels, reads
from tests.support.daemon import Daemon, start_daemon
from tests.support.openbao import Cluster, daemon_env, vault_spc
from tools.gen_monitoring import DASHBOARD_FILE, RULES_FILE

METRICS_DOC = ROOT / "docs" / "metrics.md"
QUOTA = "sys/quotas/rate-limit/monitoring-scrape-test"


# ------------------------------------------------------------------------------ what the queries read


@dataclass(frozen=True)
class Query:
    where: str
    expr: str
    legend: str = ""


def queries() -> list[Query]:
    found = [Query(f"alert {rule['alert']}", rule["expr"])
             for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]
    board = json.loads(DASHBOARD_FILE.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found.append(Query(f"panel {panel['title']!r}", target["expr"], target.get("legendFormat", "")))
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        # label_values(<selector>, <label>): the selector is PromQL, the label must be one of its metric's.
        match = re.fullmatch(r"label_values\((.+), *([a-zA-Z_][a-zA-Z0-9_]*)\)", variable["query"]["query"])
        assert match, f"variable {variable['name']}: unexpected query"
        found.append(Query(f"variable {variable['name']}", match.group(1), "{{" + match.group(2) + "}}"))
    return found


def _table(heading: str) -> list[list[str]]:
    text = METRICS_DOC.read_text()
    section = text[text.index(heading):]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| `"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def external_metrics() -> dict[str, set[str]]:
    """The documented metrics from outside the provider, with the labels the queries may use on them."""
    return {
        re.sub(r"`", "", metric): set(re.findall(r"`([a-z_]+)`", labels))
        for metric, _source, labels in _table("### Metrics from outside the provider")
    }


def target_labels() -> set[str]:
    text = METRICS_DOC.read_text()
    sentence = re.search(r"also use the target labels that Prometheus\s+adds.*?\n\n", text, re.S)
    assert sentence, "docs/metrics.md must list the target labels the queries use"
    return set(re.findall(r"`([a-z_]+)`", sentence.group(0)))


def test_the_documented_lists_are_read() -> None:
    external = external_metrics()
    assert {"up", "kube_pod_container_status_restarts_total", "container_memory_working_set_bytes"} <= set(external)
    assert all(labels for labels in external.values())
    assert {"job", "instance", "namespace", "pod", "node"} == target_labels()


@pytest.mark.parametrize(
    ("expr", "metrics", "grouping"),
    [
        ('sum by (backend, le) (rate(provider_mount_duration_seconds_bucket{job="$job"}[$__rate_interval]))',
         {"provider_mount_duration_seconds_bucket": {"job"}}, {"backend", "le"}),
        ('a{x="1", y=~"b|c"} / on (pod) group_left (node) max without (z) (b) > bool 0.5',
         {"a": {"x", "y"}, "b": set()}, {"pod", "node", "z"}),
        ("increase(c_total[1h]) > 2 and time() - d offset 5m > 1e3",
         {"c_total": set(), "d": set()}, set()),
    ],
)
def test_queries_are_read_as_promql(expr: str, metrics: dict[str, set[str]], grouping: set[str]) -> None:
    read = reads(expr)
    assert dict(read.selectors) == metrics
    assert read.grouping == grouping


@pytest.mark.parametrize("expr", ['{job="x"}', "made_up_function(x)", 'a{b}', "a{b=c}"])
def test_queries_it_cannot_read_are_errors(expr: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        reads(expr)


# ---------------------------------------------------------------------------------------- the scrape


def _metrics_port(daemon: Daemon) -> int:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        for line in daemon.logs().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("message") == "metrics endpoint listening":
                    return int(record["port"])
        time.sleep(0.02)
    raise AssertionError(f"the daemon never logged its metrics port:\n{daemon.logs()}")


def _mount(daemon: Daemon, cluster: Cluster, spc: dict[str, Any], pod: PodIdentity) -> grpc.StatusCode:
    token = cluster.pod_token(pod.namespace, pod.service_account, pod.name, pod.uid, "vault")
    request = build_mount_request(spc, pod, tokens={"vault": token})
    try:
        call_mount(daemon.socket_path("vault"), request, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@dataclass
class Scrape:
    samples: dict[str, set[str]]  # sample name → every label name it was seen with
    families: set[str]


@pytest.fixture(scope="module")
def scrape(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    directory = tmp_path_factory.mktemp("monitoring-scrape")
    key = directory / "version.key"
    key.write_bytes(os.urandom(32))
    args = ["--vault-addr", cluster.bao.address, "--version-key-file", str(key), "--log-format", "json",
            "--metrics-addr", "127.0.0.1:0", "--audit-log", "/dev/full"]  # /dev/full: every audit write fails
    # Three secrets, read in parallel: under the quota below, at least two reads of a mount get a 429.
    objects = "".join(f"- objectName: {name}\n  secretPath: secret/data/{name}\n  secretKey: {key}\n"
                      for name, key in (("db-pass", "password"), ("db-config", "host"), ("marker", "value")))
    good = vault_spc(objects, roleName="kv-role")
    missing = vault_spc("- objectName: gone\n  secretPath: secret/data/no-such-secret\n  secretKey: x\n",
                        roleName="kv-role")
    pod = PodIdentity(f"nginx-{uuid.uuid4().hex[:6]}", "test", str(uuid.uuid4()), "nginx-kv")
    with start_daemon(directory / "providers", ["vault"], args, env=daemon_env(cluster, directory)) as daemon:
        assert _mount(daemon, cluster, good, pod) == grpc.StatusCode.OK
        assert _mount(daemon, cluster, good, pod) == grpc.StatusCode.OK  # a token cache hit
        # The SPC now names a secret that does not exist: a failed remount, the volume keeps its files.
        assert _mount(daemon, cluster, missing, pod) == grpc.StatusCode.NOT_FOUND
        # OpenBao's rate-limit quota answers 429 to reads past one a second; the provider retries them.
        cluster.bao.api("POST", QUOTA, {"path": "secret/", "rate": 1, "interval": "1s"})
        try:
            for _ in range(3):
                _mount(daemon, cluster, good, pod)
        finally:
            cluster.bao.api("DELETE", QUOTA)
        port = _metrics_port(daemon)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    samples: dict[str, set[str]] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    yield Scrape(samples, families)


def test_the_scrape_saw_every_kind_of_event(scrape: Scrape) -> None:
    """The mounts above produced the series the alerts need, each with its labels (not an empty family)."""
    for name in ("provider_mounts_total", "provider_remount_failures_total", "provider_backend_throttled_total",
                 "provider_audit_write_failures_total", "provider_cache_lookups_total",
                 "provider_mount_duration_seconds_bucket", "provider_backend_request_duration_seconds_bucket",
                 "provider_mounts_in_flight", "process_resident_memory_bytes"):
        assert name in scrape.samples, f"the scrape has no {name} sample"


def name_problems(found: list[Query], scrape: Scrape) -> list[str]:
    """What the queries use that neither the scrape nor the documented lists have."""
    external = external_metrics()
    targets = target_labels()
    problems: list[str] = []
    for query in found:
        read = reads(query.expr)
        if not read.selectors:
            problems.append(f"{query.where}: reads no metric")
        available: set[str] = set(targets)
        for metric, matchers in read.selectors:
            if metric in scrape.samples:
                labels = scrape.samples[metric]
            elif metric in external:
                labels = external[metric]
            else:
                problems.append(f"{query.where}: {metric} is neither exported nor a documented external metric")
                continue
            available |= labels
            problems += [f"{query.where}: {metric} has no label {label}"
                         for label in sorted(matchers - labels - targets)]
        used = read.grouping | legend_labels(query.legend)
        problems += [f"{query.where}: no metric it reads has the label {label}" for label in sorted(used - available)]
    return problems


def test_every_metric_and_label_in_the_rules_and_dashboard_is_exported(scrape: Scrape) -> None:
    found = queries()
    assert len(found) > 20
    problems = name_problems(found, scrape)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query("q", "rate(provider_mount_total[5m])"), "provider_mount_total is neither exported"),
        (Query("q", 'provider_mounts_total{kind="NotFound"}'), "provider_mounts_total has no label kind"),
        (Query("q", "sum by (operation) (provider_mounts_total)"), "no metric it reads has the label operation"),
        (Query("q", "provider_mounts_in_flight", "{{error_kind}}"), "no metric it reads has the label error_kind"),
        (Query("q", 'kube_pod_container_status_restarts_total{reason="OOMKilled"}'),
         "kube_pod_container_status_restarts_total has no label reason"),
        (Query("q", "kube_pod_info"), "kube_pod_info is neither exported"),
        (Query("q", 'provider_backend_throttled_total{status_class="4xx"}'), "has no label status_class"),
    ],
)
def test_the_name_check_catches_what_is_not_exported(scrape: Scrape, query: Query, expected: str) -> None:
    problems = name_problems([query], scrape)
    assert any(expected in problem for problem in problems), problems


def test_external_metrics_are_not_the_providers_own(scrape: Scrape) -> None:
    assert not set(external_metrics()) & scrape.families


def test_dashboard_panels_are_complete() -> None:
    board = json.loads(DASHBOARD_FILE.read_text())
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    titles = " ".join(p["title"].lower() for p in panels)
    for subject in ("mounts per second", "mount errors", "mount time", "in flight", "backend requests",
                    "throttled", "cache hit", "memory"):
        assert subject in titles, f"the dashboard has no panel about {subject}"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    used = set(re.findall(r"\$\{?([a-z_]+)", json.dumps(panels))) - {"__rate_interval"}
    assert used <= variables, used - variables
