"""Every manifest under deploy/ validates offline, and the install's parts agree with each other.

Kubernetes kinds are validated by kubernetes-validate against the schemas of the oldest Kubernetes we
document and of the newest it knows, in strict mode (unknown fields fail). SecretProviderClass is a CRD
with no schema there, so it goes through spc_problems instead; the Prometheus Operator's kinds in
deploy/monitoring are checked by tests/monitoring.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv

from tests.deploy.manifests import (
    DEPLOY,
    DRIVER_NAME,
    MONITORING_KINDS,
    ROOT,
    SPC_KIND,
    Manifest,
    load_manifests,
    pod_specs,
    secrets_store_volumes,
    spc_problems,
    yaml_files,
)

OLDEST_KUBERNETES = "1.29"
KUBERNETES_VERSIONS = sorted({OLDEST_KUBERNETES, kv.major_minor(kv.latest_version())})
MANIFESTS = load_manifests()
KUBERNETES_KINDS = [m for m in MANIFESTS if m.kind != SPC_KIND and m.kind not in MONITORING_KINDS]
SPCS = [m for m in MANIFESTS if m.kind == SPC_KIND]


def test_deploy_has_the_install_and_examples() -> None:
    kinds = {m.kind for m in MANIFESTS}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "CSIDriver"} <= kinds
    assert SPCS, "deploy/examples has no SecretProviderClass"


def test_every_yaml_file_parses_into_objects() -> None:
    for path in yaml_files():
        with path.open() as handle:
            docs = [d for d in yaml.safe_load_all(handle) if d is not None]
        assert docs, f"{path} holds no YAML document"
        for doc in docs:
            assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), path


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("manifest", KUBERNETES_KINDS, ids=lambda m: m.label)
def test_manifest_validates_against_kubernetes_schema(manifest: Manifest, version: str) -> None:
    try:
        kv.validate(manifest.doc, version, strict=True)
    except kv.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{manifest.label} is not a valid {manifest.kind} in Kubernetes {version}: {where}: {exc.message}")
    except kv.SchemaNotFoundError as exc:
        pytest.fail(f"{manifest.label}: {exc.message}; a custom resource needs a check of its own here")


@pytest.mark.parametrize("manifest", SPCS, ids=lambda m: m.label)
def test_secret_provider_class_is_well_formed(manifest: Manifest) -> None:
    assert spc_problems(manifest.doc) == []


def test_schema_validation_catches_a_broken_manifest() -> None:
    daemonset = next(m.doc for m in MANIFESTS if m.kind == "DaemonSet")
    broken = yaml.safe_load(yaml.safe_dump(daemonset))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


GOOD_SPC = {
    "apiVersion": "secrets-store.csi.x-k8s.io/v1",
    "kind": "SecretProviderClass",
    "metadata": {"name": "app"},
    "spec": {
        "provider": "vault",
        "parameters": {"roleName": "app", "objects": "- objectName: a\n"},
        "secretObjects": [{"secretName": "s", "type": "Opaque", "data": [{"objectName": "a", "key": "k"}]}],
    },
}


def _spc_with(path: str, value: object) -> dict[str, Any]:
    doc = yaml.safe_load(yaml.safe_dump(GOOD_SPC))
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("apiVersion", "secrets-store.csi.x-k8s.io/v1alpha2", "apiVersion must be"),
        ("metadata.name", "App_1", "metadata.name must be a DNS subdomain"),
        ("spec.provider", "vault/../x", "spec.provider must match"),
        ("spec.provider", "", "spec.provider must match"),
        ("spec.parameters", {}, "spec.parameters must be a non-empty map"),
        ("spec.parameters", {"useVMManagedIdentity": True}, "must be a string (quote it in YAML)"),
        ("spec.providr", "vault", "unknown field spec.providr"),
        ("spec.secretObjects.0.secretName", _DELETE, "secretName must be a non-empty string"),
        ("spec.secretObjects.0.data", [], "data must be a non-empty list"),
        ("spec.secretObjects.0.data.0.objectName", "", "objectName must be a non-empty string"),
        ("spec.secretObjects.0.labels", {"tier": 1}, "must be a string"),
        ("spec.secretObjects.0.type", "kubernetes.io/tls", "must be tls.key or tls.crt"),
    ],
)
def test_spc_check_reports_each_problem(path: str, value: object, expected: str) -> None:
    assert spc_problems(GOOD_SPC) == []
    problems = spc_problems(_spc_with(path, value))
    assert any(expected in p for p in problems), problems


# ------------------------------------------------------------------------------------------- the install


def _kustomization() -> dict[str, Any]:
    with (DEPLOY / "kustomization.yaml").open() as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def _top_level() -> list[Manifest]:
    return [m for m in MANIFESTS if m.path.parent == DEPLOY]


def test_kustomization_resources_exist_and_cover_the_install() -> None:
    kustomization = _kustomization()
    resources = kustomization["resources"]
    assert isinstance(resources, list)
    for resource in resources:
        assert (DEPLOY / resource).is_file(), f"kustomization.yaml lists {resource}, which does not exist"
    listed = {DEPLOY / r for r in resources}
    # Everything at the top of deploy/ is installed, except the CSIDriver patch (the driver owns that).
    for manifest in _top_level():
        if manifest.kind != "CSIDriver":
            assert manifest.path in listed, f"{manifest.label} is not in kustomization.yaml"
    assert all(m.kind != "CSIDriver" for m in _top_level() if m.path in listed)


def test_everything_installed_is_in_the_kustomization_namespace() -> None:
    namespace = _kustomization()["namespace"]
    namespaces = [m for m in _top_level() if m.kind == "Namespace"]
    assert [m.name for m in namespaces] == [namespace]
    for manifest in _top_level():
        if manifest.kind in ("ServiceAccount", "DaemonSet", "NetworkPolicy"):
            assert manifest.namespace == namespace, manifest.label
    binding = next(m.doc for m in _top_level() if m.kind == "ClusterRoleBinding")
    assert all(s["namespace"] == namespace for s in binding["subjects"])


def test_rbac_is_only_token_request_for_the_provider_service_account() -> None:
    role = next(m for m in _top_level() if m.kind == "ClusterRole")
    assert role.doc["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}]
    binding = next(m.doc for m in _top_level() if m.kind == "ClusterRoleBinding")
    account = next(m.name for m in _top_level() if m.kind == "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.name}
    namespace = _kustomization()["namespace"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    assert "TokenRequest fallback" in role.path.read_text()
    # Nothing else in the install may reach the API: no Role or RoleBinding grants more.
    assert not [m for m in _top_level() if m.kind in ("Role", "RoleBinding")]


def test_version_key_secret_is_generated_from_an_uncommitted_file() -> None:
    generators = _kustomization()["secretGenerator"]
    assert isinstance(generators, list) and len(generators) == 1
    (generator,) = generators
    (entry,) = generator["files"]
    key_name, _, filename = entry.partition("=")
    assert (DEPLOY / ".gitignore").read_text().split().count(filename) == 1
    install = (ROOT / "docs" / "install.md").read_text()
    assert f"> deploy/{filename}" in install, "docs/install.md must give the one-line key creation"
    daemonset = _daemonset()
    volume = next(v for v in _pod(daemonset)["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == generator["name"]
    mount = next(m for m in _container(daemonset)["volumeMounts"] if m["name"] == volume["name"])
    assert _arg(daemonset, "--version-key-file") == f"{mount['mountPath']}/{key_name}"
    assert mount.get("readOnly") is True


def test_image_in_daemonset_is_the_one_kustomization_rewrites() -> None:
    images = _kustomization()["images"]
    assert isinstance(images, list)
    image = _container(_daemonset())["image"]
    assert image.split(":")[0] in {i["name"] for i in images}


# ------------------------------------------------------------------------------------------ the DaemonSet


def _daemonset() -> dict[str, Any]:
    (daemonset,) = [m.doc for m in _top_level() if m.kind == "DaemonSet"]
    return daemonset


def _pod(daemonset: dict[str, Any]) -> dict[str, Any]:
    return daemonset["spec"]["template"]["spec"]


def _container(daemonset: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod(daemonset)["containers"]
    return container


def _arg(daemonset: dict[str, Any], flag: str) -> str:
    values = [a.partition("=")[2] for a in _container(daemonset)["args"] if a.startswith(flag + "=")]
    assert len(values) == 1, f"the DaemonSet must pass {flag}=VALUE exactly once"
    return values[0]


def test_daemonset_serves_both_backends_from_the_driver_provider_dir() -> None:
    daemonset = _daemonset()
    container = _container(daemonset)
    assert container["args"][0] == "serve"
    assert set(_arg(daemonset, "--backends").split(",")) == {"vault", "azure"}
    (host,) = [v for v in _pod(daemonset)["volumes"] if "hostPath" in v]
    assert host["hostPath"]["path"] == "/var/run/secrets-store-csi-providers"
    mount = next(m for m in container["volumeMounts"] if m["name"] == host["name"])
    assert _arg(daemonset, "--provider-dir") == mount["mountPath"]
    assert not mount.get("readOnly"), "the provider creates its sockets in this directory"
    assert _pod(daemonset)["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_daemonset_args_are_accepted_by_the_cli() -> None:
    from provider.cli import build_parser

    args = build_parser().parse_args(_container(_daemonset())["args"])
    assert args.command == "serve"
    assert args.audit_log == "-"
    assert args.log_format == "json"
    assert 0 < args.grace_seconds < _pod(_daemonset())["terminationGracePeriodSeconds"]


def test_daemonset_probes_hit_healthz_on_the_health_port() -> None:
    daemonset = _daemonset()
    container = _container(daemonset)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["healthz"] == int(_arg(daemonset, "--health-addr").rpartition(":")[2])
    assert ports["metrics"] == int(_arg(daemonset, "--metrics-addr").rpartition(":")[2])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe
        # The check goes through each socket; give it longer than the provider's own 2 s per socket.
        assert container[probe]["timeoutSeconds"] >= 3, probe
    annotations = daemonset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])


_QUANTITY = {"m": 0.001, "Mi": 2**20, "Gi": 2**30}


def _quantity(value: str) -> float:
    for suffix, factor in _QUANTITY.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_daemonset_resources_have_requests_and_limits() -> None:
    resources = _container(_daemonset())["resources"]
    for kind in ("cpu", "memory"):
        assert _quantity(resources["requests"][kind]) <= _quantity(resources["limits"][kind]), kind
    # Our target is at most 100 MB peak RSS: the request covers it, the limit leaves headroom.
    assert _quantity(resources["requests"]["memory"]) >= 100 * 2**20 * 0.95
    assert _quantity(resources["limits"]["memory"]) >= 1.25 * 100 * 10**6
    assert "make bench" in (DEPLOY / "daemonset.yaml").read_text()


def test_daemonset_security_settings() -> None:
    daemonset = _daemonset()
    pod = _pod(daemonset)
    security = _container(daemonset)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security.get("privileged", False) is False
    seccomp = security.get("seccompProfile") or pod["securityContext"]["seccompProfile"]
    assert seccomp == {"type": "RuntimeDefault"}
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_namespace), host_namespace
    # Root only for the socket directory: it must be the one hostPath, and the reason must be written down.
    hostpaths = [v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v]
    assert hostpaths == ["/var/run/secrets-store-csi-providers"]
    if security.get("runAsUser") == 0:
        assert "Root, because the socket directory" in (DEPLOY / "daemonset.yaml").read_text()
    # Never the kubelet's pod directory: the driver writes the files, the provider only returns them.
    assert all("/var/lib/kubelet" not in p for p in hostpaths)


def test_daemonset_allows_exactly_its_read_only_tls_directory() -> None:
    """SPCs written for the official Vault provider name /mnt/tls/ca.crt: that directory is mounted from an
    optional Secret and ConfigMap (so the DaemonSet starts without them) and is --allowed-files-dir."""
    from provider.policy import DEPLOY_FILES_DIR

    daemonset = _daemonset()
    allowed = _arg(daemonset, "--allowed-files-dir")
    assert allowed == DEPLOY_FILES_DIR == "/mnt/tls"
    (mount,) = [m for m in _container(daemonset)["volumeMounts"] if m["mountPath"] == allowed]
    assert mount["readOnly"] is True
    (volume,) = [v for v in _pod(daemonset)["volumes"] if v["name"] == mount["name"]]
    sources = volume["projected"]["sources"]
    assert {kind for source in sources for kind in source} == {"secret", "configMap"}
    assert all(source[kind]["optional"] is True for source in sources for kind in source)
    assert {source[kind]["name"] for source in sources for kind in source} == {"secrets-store-csi-provider-tls"}
    assert volume["projected"]["defaultMode"] == 0o400  # a client key may be among them


def test_daemonset_writable_paths_are_volumes() -> None:
    container = _container(_daemonset())
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/tmp" in mounts
    audit = _arg(_daemonset(), "--audit-log")
    assert audit == "-" or any(audit.startswith(p + "/") for p in mounts), "the audit file needs a volume"


def test_network_policy_admits_only_the_scraper_to_the_metrics_port() -> None:
    (policy,) = [m for m in _top_level() if m.kind == "NetworkPolicy"]
    spec = policy.doc["spec"]
    daemonset = _daemonset()
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items(), "the policy must select the provider pods"
    # Ingress only: egress to Vault, Key Vault, Entra ID and the API server stays open.
    assert spec["policyTypes"] == ["Ingress"]
    ports = {p["name"] for p in _container(daemonset)["ports"]}
    (rule,) = spec["ingress"]
    assert [(p["port"], p["protocol"]) for p in rule["ports"]] == [("metrics", "TCP")]
    assert {p["port"] for p in rule["ports"]} <= ports
    # Every source names both a namespace and its pods: never everything, never a whole namespace.
    assert rule["from"], "an empty from admits every source"
    for source in rule["from"]:
        assert source["namespaceSelector"]["matchLabels"] and source["podSelector"]["matchLabels"]
    text = policy.path.read_text()
    assert "kubernetes.io/metadata.name" in text and "from the node" in text


# ----------------------------------------------------------------------------------------- the CSIDriver


def test_csidriver_patch_sets_what_the_provider_relies_on() -> None:
    (patch,) = [m for m in MANIFESTS if m.kind == "CSIDriver"]
    assert patch.name == DRIVER_NAME
    spec = patch.doc["spec"]
    audiences = [t["audience"] for t in spec["tokenRequests"]]
    assert len(audiences) == len(set(audiences))
    assert {"vault", "api://AzureADTokenExchange"} <= set(audiences)
    assert spec["requiresRepublish"] is True
    assert spec["podInfoOnMount"] is True
    # Only mutable fields: the patch must apply to the driver's existing object.
    assert set(spec) <= {"podInfoOnMount", "tokenRequests", "requiresRepublish", "fsGroupPolicy", "seLinuxMount"}
    assert "kubectl patch csidriver" in patch.path.read_text()


# ------------------------------------------------------------------------------------------- examples


EXAMPLES = [m for m in MANIFESTS if "examples" in m.path.relative_to(DEPLOY).parts]
WORKLOADS = [m for m in EXAMPLES if list(pod_specs(m))]


def test_examples_cover_each_backend_and_sync() -> None:
    providers = {m.doc["spec"]["provider"] for m in SPCS}
    assert {"vault", "azure"} <= providers
    assert any(m.doc["spec"].get("secretObjects") for m in SPCS), "no sync-to-Secret example"
    for provider in ("vault", "azure"):
        names = {m.name for m in SPCS if m.doc["spec"]["provider"] == provider}
        used = {
            v["csi"]["volumeAttributes"]["secretProviderClass"]
            for w in WORKLOADS
            for pod in pod_specs(w)
            for v in secrets_store_volumes(pod)
        }
        assert names & used, f"no example pod mounts a {provider} SecretProviderClass"


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda m: m.label)
def test_example_volumes_are_read_only_and_name_an_spc_in_their_namespace(workload: Manifest) -> None:
    for pod in pod_specs(workload):
        for volume in secrets_store_volumes(pod):
            csi = volume["csi"]
            assert csi.get("readOnly") is True, "the driver refuses volumes that are not readOnly"
            name = csi["volumeAttributes"]["secretProviderClass"]
            matches = [s for s in SPCS if s.name == name and s.namespace == workload.namespace]
            assert matches, f"{workload.label} mounts SecretProviderClass {name!r}, defined nowhere beside it"
            for container in pod.get("containers", []):
                for mount in container.get("volumeMounts", []):
                    if mount["name"] == volume["name"]:
                        assert mount.get("readOnly") is True, f"{container['name']} mounts {name} writable"


def test_examples_readme_names_every_example_directory() -> None:
    readme = (DEPLOY / "examples" / "README.md").read_text()
    for directory in sorted({m.path.parent for m in EXAMPLES}):
        assert f"{directory.relative_to(DEPLOY / 'examples')}/" in readme, directory
