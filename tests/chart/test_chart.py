"""The Helm chart: lint, render with every values file, validate, and check what it promises."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from crd.crdcheck import structural_problems
from smolserve.cli import build_parser
from smolserve.errors import SmolserveError
from smolserve.spec import load_spec

from .helpers import (
    CHART,
    HELMS,
    KUBE_VERSIONS,
    PROMETHEUS_API,
    RELEASE,
    RELEASE_NAMESPACE,
    ROOT,
    crd_errors,
    crd_schema_validator,
    find_tool,
    kube_validate,
    load_all,
    read_yaml_docs,
    run,
    smolserve_cli,
    values_files,
)

pytestmark = pytest.mark.tools

VALUES = [None, *values_files()]
VALUES_IDS = ["defaults", *[p.name for p in values_files()]]
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterKopfPeering",
    "CustomResourceDefinition",
}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


def chart_meta() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def templated(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects from templates/ (helm template --include-crds also prints crds/)."""
    return [o for o in objs if o["kind"] != "CustomResourceDefinition"]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def test_chart_metadata() -> None:
    # appVersion is the one version: tests/images/test_packaging.py compares it.
    assert chart_meta()["apiVersion"] == "v2"


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize("values", VALUES, ids=VALUES_IDS)
def test_helm_lint_strict(helm: str, values: Path | None, helm_env: dict[str, str]) -> None:
    cmd: list[Any] = [find_tool(helm), "lint", "--strict", CHART]
    if values is not None:
        cmd += ["--values", values]
    out = run(cmd, env=helm_env)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", VALUES, ids=VALUES_IDS)
@pytest.mark.parametrize("monitoring", [False, True], ids=["plain", "prometheus-operator"])
def test_rendered_manifests_validate(helm_template, values: Path | None, monitoring: bool) -> None:
    """Every rendered object is valid for Kubernetes 1.30 and 1.37 (unknown fields refused);
    the custom kinds are validated against their CRDs."""
    apis = [PROMETHEUS_API] if monitoring else []
    objs = helm_template(values, api_versions=apis)
    crds = {o["spec"]["names"]["kind"]: o for o in by_kind(objs, "CustomResourceDefinition")}
    errors: list[str] = []
    for version in KUBE_VERSIONS:
        errs, custom = kube_validate(objs, version)
        errors += errs
        expected_custom = {"kopf.dev/v1/ClusterKopfPeering", "kopf.dev/v1/KopfPeering"}
        expected_custom |= {"smolserve.dev/v1alpha1/SmolServe"}
        expected_custom |= {f"{PROMETHEUS_API}/PodMonitor", f"{PROMETHEUS_API}/ServiceMonitor"}
        assert custom <= expected_custom, f"unexpected custom kinds: {custom - expected_custom}"
    for obj in objs:
        if obj["apiVersion"].startswith(("kopf.dev/", "smolserve.dev/")):
            errors += crd_errors(crd_schema_validator(crds[obj["kind"]]), obj)
    assert not errors, "\n".join(errors)


def test_helm3_and_helm4_render_the_same(helm_template) -> None:
    for values in VALUES:
        assert helm_template(values, helm="helm3") == helm_template(values, helm="helm")


@pytest.mark.parametrize("values", VALUES, ids=VALUES_IDS)
def test_labels_and_namespaces(helm_template, values: Path | None) -> None:
    for obj in templated(helm_template(values, api_versions=[PROMETHEUS_API])):
        meta = obj["metadata"]
        missing = [k for k in STANDARD_LABELS if k not in meta.get("labels", {})]
        assert not missing, f"{obj['kind']} {meta['name']} lacks labels {missing}"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta
        else:
            assert meta.get("namespace"), f"{obj['kind']} {meta['name']} has no namespace"


def operator_deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (deploy,) = by_kind(objs, "Deployment")
    return deploy


def test_operator_deployment_defaults(helm_template) -> None:
    objs = helm_template()
    deploy = operator_deployment(objs)
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    version = chart_meta()["appVersion"]
    assert container["image"] == f"ghcr.io/smolserve/operator:{version}"
    env = {e["name"]: e for e in container["env"]}
    assert (
        env["SMOLSERVE_TEMPLATE_JOB_IMAGE"]["value"] == f"ghcr.io/smolserve/template-job:{version}"
    )
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["args"] == [
        "operator",
        f"--peering={RELEASE}",
        "--peering-lifetime=60",
        "--liveness-port=8080",
        "--metrics-port=8081",
        "--no-scanning",
    ]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8080,
        "metrics": 8081,
    }
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    # Restricted pod security.
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (
        container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    )
    assert container["livenessProbe"]["httpGet"]["port"] == "health"
    (peering,) = by_kind(objs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == RELEASE
    assert not by_kind(objs, "SmolServe")
    # No Prometheus operator API, no monitors.
    assert not by_kind(objs, "PodMonitor") and not by_kind(objs, "ServiceMonitor")


# Rows of docs/operator.md's RBAC table the chart leaves out on purpose: it runs the operator
# with --no-scanning and exact namespace names, so kopf lists neither CRDs nor namespaces.
SCANNING_ONLY = {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")}


def documented_rbac() -> tuple[list[dict[str, Any]], set[tuple[str, str, str]]]:
    """The operator's RBAC table in docs/operator.md → (rules without peering and scanning,
    the peering permissions as (group, resource, verb))."""
    text = (ROOT / "docs" / "operator.md").read_text()
    section = text.split("## RBAC", 1)[1].split("\n## ", 1)[0]
    rules, peering = [], set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        group = cells[0].strip("`").strip('"')
        resources = re.findall(r"`([a-z/]+)`", cells[1])
        verbs = re.findall(r"[a-z]+", cells[2])
        if group == "kopf.dev":
            peering = {(group, r, v) for r in resources for v in verbs}
        elif not all((group, r) in SCANNING_ONLY for r in resources):
            rules.append({"apiGroups": [group], "resources": resources, "verbs": verbs})
    assert rules and peering, "docs/operator.md has no RBAC table"
    return rules, peering


def flatten(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_cluster_rbac_is_exactly_the_documented_minimum(helm_template) -> None:
    objs = helm_template()
    (role,) = by_kind(objs, "ClusterRole")
    documented, peering = documented_rbac()
    cluster_peering = {p for p in peering if p[1] == "clusterkopfpeerings"}
    assert cluster_peering
    assert flatten(role["rules"]) == flatten(documented) | cluster_peering
    assert not any(
        "*" in part for rule in role["rules"] for part in rule["verbs"] + rule["resources"]
    )
    (binding,) = by_kind(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}
    ]
    assert not by_kind(objs, "Role") and not by_kind(objs, "RoleBinding")


def test_namespaced_install_has_no_cluster_permissions(helm_template) -> None:
    objs = helm_template(CHART / "ci" / "namespaced-values.yaml", api_versions=[PROMETHEUS_API])
    assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")
    assert not by_kind(objs, "ClusterKopfPeering")
    roles = by_kind(objs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    documented, peering = documented_rbac()
    namespaced_peering = {p for p in peering if p[1] == "kopfpeerings"}
    assert namespaced_peering
    for role in roles:
        assert flatten(role["rules"]) == flatten(documented) | namespaced_peering
    assert sorted(b["metadata"]["namespace"] for b in by_kind(objs, "RoleBinding")) == [
        "team-a",
        "team-b",
    ]
    assert sorted(p["metadata"]["namespace"] for p in by_kind(objs, "KopfPeering")) == [
        "team-a",
        "team-b",
    ]
    deploy = operator_deployment(objs)
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert deploy["spec"]["replicas"] == 2
    (monitor,) = by_kind(objs, "ServiceMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_standalone_uses_recreate_and_digests(helm_template) -> None:
    objs = helm_template(CHART / "ci" / "standalone-values.yaml")
    (role,) = by_kind(objs, "ClusterRole")
    assert not any(g == "kopf.dev" for g, _, _ in flatten(role["rules"])), "no peering, no rule"
    deploy = operator_deployment(objs)
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert "--standalone" in container["args"]
    assert not any(a.startswith("--peering") for a in container["args"])
    assert container["image"] == "ghcr.io/smolserve/operator@sha256:" + "0" * 64
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (
        env["SMOLSERVE_TEMPLATE_JOB_IMAGE"] == "ghcr.io/smolserve/template-job@sha256:" + "1" * 64
    )
    assert not by_kind(objs, "ClusterKopfPeering") and not by_kind(objs, "ServiceAccount")
    assert not by_kind(objs, "NetworkPolicy")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "smolserve-operator"


def test_monitors_only_with_the_prometheus_operator(helm_template) -> None:
    assert not by_kind(helm_template(), "PodMonitor")
    objs = helm_template(api_versions=[PROMETHEUS_API])
    (monitor,) = by_kind(objs, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert not by_kind(objs, "ServiceMonitor"), "the ServiceMonitor is off by default"


def test_the_operators_metrics_are_scraped_only_when_asked(helm_template) -> None:
    """Off by default: no Service, no ServiceMonitor, and the NetworkPolicy admits nothing.
    On: a Service and a ServiceMonitor for the operator pods' metrics port, and the policy admits
    exactly that port from the configured peers."""
    objs = helm_template(api_versions=[PROMETHEUS_API])
    assert not by_kind(objs, "Service")
    assert [m["metadata"]["name"] for m in by_kind(objs, "ServiceMonitor")] == []
    (policy,) = by_kind(objs, "NetworkPolicy")
    assert "ingress" not in policy["spec"] and policy["spec"]["policyTypes"] == ["Ingress"]

    objs = helm_template(CHART / "ci" / "observability-values.yaml", api_versions=[PROMETHEUS_API])
    deploy = operator_deployment(objs)
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    (service,) = by_kind(objs, "Service")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels)
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}
    ]
    (monitor,) = [
        m for m in by_kind(objs, "ServiceMonitor") if m["metadata"]["name"] == "smol-operator"
    ]
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == (
        "metrics",
        "/metrics",
        True,
    )
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (policy,) = by_kind(objs, "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    # Without the Prometheus operator's API: the Service, but no ServiceMonitor.
    plain = helm_template(CHART / "ci" / "observability-values.yaml")
    assert by_kind(plain, "Service") and not by_kind(plain, "ServiceMonitor")


@pytest.mark.parametrize("helm", HELMS)
def test_the_metrics_port_must_differ_from_the_liveness_port(
    helm: str, helm_env: dict[str, str]
) -> None:
    cmd = [find_tool(helm), "template", RELEASE, CHART, "--set", "operator.metricsPort=8080"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env, check=False)
    assert proc.returncode != 0
    assert "operator.metricsPort and operator.livenessPort are the same port" in proc.stderr


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, and matchExpressions with Exists/DoesNotExist/In/NotIn)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
        }[op]
        if not ok:
            return False
    return True


def test_monitors_select_the_vllm_server_the_operator_makes(helm_template) -> None:
    """The rendered PodMonitor and ServiceMonitor select the server pods and Service that
    `smolserve render` makes for an example, by their port name, and not the template Job."""
    (pod_monitor,) = by_kind(helm_template(api_versions=[PROMETHEUS_API]), "PodMonitor")
    only_service_monitor = [
        "metrics.podMonitor.enabled=false",
        "metrics.serviceMonitor.enabled=true",
    ]
    objs = helm_template(api_versions=[PROMETHEUS_API], sets=only_service_monitor)
    (service_monitor,) = by_kind(objs, "ServiceMonitor")
    assert not by_kind(objs, "PodMonitor")
    children = load_all(smolserve_cli("render", "-f", ROOT / "examples" / "smolserve.yaml"))
    (deploy,) = by_kind(children, "Deployment")
    (service,) = by_kind(children, "Service")
    (job,) = by_kind(children, "Job")
    pod, job_pod = deploy["spec"]["template"], job["spec"]["template"]
    assert selects(pod_monitor["spec"]["selector"], pod["metadata"]["labels"])
    assert not selects(pod_monitor["spec"]["selector"], job_pod["metadata"]["labels"])
    pod_ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} <= pod_ports
    assert selects(service_monitor["spec"]["selector"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in service_monitor["spec"]["endpoints"]} <= service_ports


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize("monitoring", [False, True], ids=["plain", "prometheus-operator"])
def test_both_monitors_are_refused(helm: str, monitoring: bool, helm_env: dict[str, str]) -> None:
    """At most one of PodMonitor and ServiceMonitor: both would scrape every pod twice. Refused
    whether or not the cluster serves the Prometheus operator's API (the values are wrong)."""
    cmd = [
        find_tool(helm),
        "template",
        RELEASE,
        CHART,
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ]
    if monitoring:
        cmd += ["--api-versions", PROMETHEUS_API]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env, check=False)
    assert proc.returncode != 0
    assert "metrics.podMonitor.enabled and metrics.serviceMonitor.enabled are both true" in (
        proc.stderr
    )


def crd_name_length() -> int:
    """The longest SmolServe name the CRD's root CEL rule admits."""
    crd = yaml.safe_load((ROOT / "crds" / "smolserve.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    rules = [r["rule"] for r in version["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]]
    (length,) = [
        int(m[1]) for r in rules if (m := re.search(r"metadata\.name\.size\(\) <= (\d+)", r))
    ]
    return length


NAMES = ["smol", "s", "smol-2", "a" * 45, "a" * 46, "2smol", "-smol", "smol-", "Smol", "smol_2"]


@pytest.mark.parametrize(
    "name", NAMES, ids=[n if len(n) < 10 else f"{len(n)}-chars" for n in NAMES]
)
def test_smolserve_name_follows_the_crd_rule(name: str, helm_env: dict[str, str]) -> None:
    """The chart admits exactly the SmolServe names the operator's load_spec admits (the CRD's
    rule: a DNS label that starts with a letter, at most 45 characters)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["smolserve"]["properties"]["name"]["maxLength"] == crd_name_length()
    sets = ["smolserve.create=true", f"smolserve.name={name}"]
    cmd = [find_tool("helm"), "template", RELEASE, CHART, *(a for s in sets for a in ("--set", s))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env, check=False)
    serve = {
        "apiVersion": "smolserve.dev/v1alpha1",
        "kind": "SmolServe",
        "metadata": {"name": name},
    }
    try:
        load_spec(serve)
        operator_accepts = True
    except SmolserveError:
        operator_accepts = False
    assert (proc.returncode == 0) == operator_accepts, proc.stderr
    if not operator_accepts:
        assert "smolserve.name" in proc.stderr or "/smolserve/name" in proc.stderr, proc.stderr


def test_smolserve_from_values(helm_template) -> None:
    objs = helm_template(CHART / "ci" / "smolserve-values.yaml")
    (serve,) = by_kind(objs, "SmolServe")
    assert serve["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert serve["spec"]["thinking"] == {"default": "noThink"}
    assert serve["metadata"]["labels"]["app.kubernetes.io/component"] == "model"
    load_spec(serve)  # the operator's own checks, beyond the CRD schema


def test_operator_arguments_are_accepted_by_the_cli(helm_template) -> None:
    """The chart's arguments parse with the real `smolserve operator` parser."""
    for values in [None, *values_files()]:
        deploy = operator_deployment(helm_template(values))
        args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        parsed = build_parser().parse_args(args)
        assert parsed.command == "operator"


def test_two_replicas_without_peering_are_refused(helm_env: dict[str, str]) -> None:
    sets = ["--set", "peering.enabled=false", "--set", "operator.replicas=2"]
    proc = subprocess.run(
        [find_tool("helm"), "template", RELEASE, CHART, *sets],
        capture_output=True,
        text=True,
        env=helm_env,
        check=False,
    )
    assert proc.returncode != 0
    assert "needs peering.enabled=true" in proc.stderr


def test_smolserve_outside_the_watched_namespaces_is_refused(helm_env: dict[str, str]) -> None:
    def render(*sets: str) -> subprocess.CompletedProcess[str]:
        args = [
            a
            for s in ("smolserve.create=true", "watchNamespaces={team-a}", *sets)
            for a in ("--set", s)
        ]
        cmd = [find_tool("helm"), "template", RELEASE, CHART, "-n", RELEASE_NAMESPACE, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=helm_env, check=False)

    refused = render()
    assert refused.returncode != 0
    assert "is not in watchNamespaces" in refused.stderr
    assert render("smolserve.namespace=team-a").returncode == 0


@pytest.mark.parametrize(
    "bad", ["operator.replicas=two", "bogusKey=1", "operator.image.pullPolicy=Sometimes"]
)
def test_schema_refuses_bad_values(bad: str, helm_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [find_tool("helm"), "template", RELEASE, CHART, "--set", bad],
        capture_output=True,
        text=True,
        env=helm_env,
        check=False,
    )
    assert proc.returncode != 0, f"--set {bad} was accepted"
    assert "schema" in proc.stderr.lower()


def test_every_value_is_documented() -> None:
    """Every chart value has a comment right above it, unless it sits inside a Kubernetes object
    passed through as a whole (resources, securityContext: documented at the block), and every
    value is declared in values.schema.json."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing blocks
    undocumented, undeclared = [], []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z]\w*):", line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent: dict[str, Any] | None = schema
        for _, name in stack:
            parent = (parent or {}).get("properties", {}).get(name)
        stack.append((indent, key))
        if parent is None or "properties" not in parent:
            continue  # inside a passed-through object
        if key not in parent["properties"]:
            undeclared.append(".".join(k for _, k in stack))
        if not (i and lines[i - 1].strip().startswith("#")):
            undocumented.append(f"line {i + 1}: {line.strip()}")
    assert not undocumented, "values without a comment:\n" + "\n".join(undocumented)
    assert not undeclared, f"values missing from values.schema.json: {undeclared}"


def test_notes_render(helm_env: dict[str, str]) -> None:
    """NOTES.txt renders for the default and SmolServe-creating installs (helm install --dry-run
    needs no cluster with --dry-run=client on helm 4)."""
    for values in (None, CHART / "ci" / "smolserve-values.yaml"):
        cmd: list[Any] = [
            find_tool("helm"),
            "install",
            RELEASE,
            CHART,
            "--dry-run=client",
            "-n",
            RELEASE_NAMESPACE,
        ]
        if values:
            cmd += ["--values", values]
        out = run(cmd, env=helm_env)
        notes = out.split("NOTES:", 1)[1]
        assert "kubectl -n smolserve-system get deploy/smol" in notes
        assert "tools" in notes and "get_weather" in notes


@pytest.mark.parametrize("helm", HELMS)
def test_kube_version_floor(helm: str, helm_env: dict[str, str]) -> None:
    """Chart.yaml's kubeVersion admits the versions the manifests are validated for, no older."""

    def renders(version: str) -> bool:
        cmd = [find_tool(helm), "template", RELEASE, CHART, "--kube-version", version]
        return subprocess.run(cmd, capture_output=True, env=helm_env, check=False).returncode == 0

    for version in KUBE_VERSIONS:
        assert renders(f"{version}.0"), version
    assert not renders("1.29.0")


def test_kopf_peering_crds_are_structural() -> None:
    """The chart's own CRDs (kopf's peering resources) pass the structural-schema rules."""
    crds = read_yaml_docs(CHART / "crds" / "kopf-peering.yaml")
    assert {c["spec"]["names"]["kind"] for c in crds} == {"ClusterKopfPeering", "KopfPeering"}
    for crd in crds:
        assert crd["spec"]["group"] == "kopf.dev"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        assert not structural_problems(version["schema"]["openAPIV3Schema"]), crd["metadata"]
