"""The examples: every SmolServe is valid against the CRD, renders (with `smolserve render -f`) to
manifests valid for Kubernetes 1.30 and 1.37, and the GitOps kustomization rolls a template
change into the SmolServe's spec."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from smolserve.kinds import OPTIONAL_CHILDREN
from smolserve.spec import load_spec
from support.thirdparty import third_party_errors

from .helpers import (
    CHART,
    EXAMPLES,
    KUBE_VERSIONS,
    ROOT,
    crd_errors,
    crd_schema_validator,
    find_tool,
    kube_validate,
    load_all,
    obj_id,
    read_yaml_docs,
    run,
    smolserve_cli,
)

PACKAGED_CRD = ROOT / "operator" / "smolserve" / "crd" / "smolserve.yaml"
CRD = ROOT / "crds" / "smolserve.yaml"
CHART_CRD = CHART / "crds" / "smolserve.yaml"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
GITOPS = EXAMPLES / "gitops" / "smol"
# Every file holding a SmolServe: the top-level examples and the GitOps one (as written in git,
# before kustomize renames its ConfigMap reference).
SMOLSERVE_FILES = [*EXAMPLE_FILES, GITOPS / "smolserve.yaml"]


def is_smolserve(obj: dict[str, Any]) -> bool:
    return obj.get("apiVersion") == "smolserve.dev/v1alpha1" and obj.get("kind") == "SmolServe"


@pytest.fixture(scope="module")
def crd_validator() -> Any:
    (crd,) = read_yaml_docs(CRD)
    return crd_schema_validator(crd)


@pytest.mark.parametrize("copy", [CRD, CHART_CRD], ids=["crds", "chart"])
def test_crd_copies_match_the_packaged_crd(copy: Path) -> None:
    """The package's CRD (read by load_spec) is the source; `make sync-crds` refreshes copies."""
    assert PACKAGED_CRD.exists(), "operator/smolserve/crd/smolserve.yaml is missing"
    assert copy.exists(), f"{copy.relative_to(ROOT)} is missing"
    assert copy.read_bytes() == PACKAGED_CRD.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from operator/smolserve/crd/smolserve.yaml: "
        "run `make sync-crds`"
    )


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLE_FILES}
    assert {"smolserve.yaml", "lora.yaml", "offline-pvc.yaml"} <= names


@pytest.mark.parametrize("path", SMOLSERVE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_smolserves_match_the_crd(path: Path, crd_validator: Any) -> None:
    docs = read_yaml_docs(path)
    serves = [d for d in docs if is_smolserve(d)]
    assert serves, f"{path.name} holds no SmolServe"
    errors = [e for s in serves for e in crd_errors(crd_validator, s)]
    assert not errors, "\n".join(errors)
    # The other documents (e.g. the PVC) are built-in kinds and must be valid too.
    others = [d for d in docs if not is_smolserve(d)]
    for version in KUBE_VERSIONS:
        errs, custom = kube_validate(others, version)
        assert not errs and not custom, errs or custom


def test_example_smolserves_pass_the_operators_own_checks() -> None:
    """What the CRD cannot judge, smolserve.spec.load_spec does (exclusive fields and the like)."""
    for path in SMOLSERVE_FILES:
        for doc in read_yaml_docs(path):
            if is_smolserve(doc):
                load_spec(doc)


@pytest.mark.parametrize("path", SMOLSERVE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_rendered_examples_validate(path: Path, tmp_path: Path) -> None:
    """`smolserve render -f` output (the operator's children) is valid Kubernetes, strictly."""
    out = smolserve_cli("render", "-f", path)
    objs = load_all(out)
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "Job"} <= kinds, kinds
    optional = {f"{r.api_version}/{r.kind}" for r in OPTIONAL_CHILDREN}
    for version in KUBE_VERSIONS:
        errs, custom = kube_validate(objs, version)
        assert not errs, "\n".join(errs)
        assert custom <= optional, f"render produced custom kinds: {custom - optional}"
    # Other projects' kinds (KEDA's ScaledObject, the InferencePool): against their own CRDs.
    for obj in objs:
        if f"{obj['apiVersion']}/{obj['kind']}" in optional:
            assert third_party_errors(obj) == [], obj["kind"]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    return load_all(run([find_tool("kubectl"), "kustomize", directory]))


@pytest.mark.tools
def test_gitops_kustomization_renders_valid_objects(crd_validator: Any) -> None:
    objs = kustomize(GITOPS)
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap"]
    (serve,) = [o for o in objs if is_smolserve(o)]
    assert cm["immutable"] is True
    assert serve["spec"]["template"]["source"] == "configMap"
    assert serve["spec"]["template"]["configMapRef"]["name"] == cm["metadata"]["name"]
    assert cm["data"]["chat_template.jinja"] == (GITOPS / "chat_template.jinja").read_text()
    assert not crd_errors(crd_validator, serve)
    for version in KUBE_VERSIONS:
        errs, _ = kube_validate([cm], version)
        assert not errs, errs


@pytest.mark.tools
def test_gitops_template_change_changes_the_smolserve(tmp_path: Path) -> None:
    """A template edit in git renames the ConfigMap and, through kustomizeconfig.yaml, edits the
    SmolServe's spec: Argo CD applies a new generation and the operator rolls it out."""
    before = kustomize(GITOPS)
    copy = tmp_path / "smol"
    shutil.copytree(GITOPS, copy)
    template = copy / "chat_template.jinja"
    template.write_text(template.read_text() + "{#- a reviewed change #}\n")
    after = kustomize(copy)

    def ref(objs: list[dict[str, Any]]) -> str:
        (serve,) = [o for o in objs if is_smolserve(o)]
        return serve["spec"]["template"]["configMapRef"]["name"]

    assert ref(before) != ref(after)
    assert ref(after) in {o["metadata"]["name"] for o in after if o["kind"] == "ConfigMap"}


def test_gitops_template_is_current(testkit_tokenizer: Any) -> None:
    """The committed template is exactly what the generator makes of the test-kit tokenizer, so
    a change to either shows up here rather than in a reviewer's diff months later."""
    from smolserve.template import generate_template

    expected = generate_template(testkit_tokenizer, "fixed").text
    committed = (GITOPS / "chat_template.jinja").read_text(encoding="utf-8")
    assert committed == expected, (
        "examples/gitops/smol/chat_template.jinja is stale: make gitops-template"
    )


def test_gitops_template_is_verified(tmp_path: Path) -> None:
    """The committed template passes `smolserve template verify` against the offline test-kit
    tokenizer (it was generated from it; regenerate it from the served model in a real repo)."""
    tokenizer_dir = tmp_path / "tokenizer"
    smolserve_cli("testkit", "tokenizer", "--out", tokenizer_dir)
    smolserve_cli(
        "template",
        "verify",
        "--tokenizer",
        tokenizer_dir,
        "--template",
        GITOPS / "chat_template.jinja",
    )


def test_argocd_applications() -> None:
    apps = read_yaml_docs(EXAMPLES / "gitops" / "application.yaml")
    assert [a["kind"] for a in apps] == ["Application", "Application"]
    operator, model = apps
    assert operator["spec"]["source"]["path"] == "charts/smol"
    assert model["spec"]["source"]["path"] == "examples/gitops/smol"
    # The operator (and with it the CRD) syncs before the SmolServe.
    assert int(operator["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < 0
    for app in apps:
        assert (ROOT / app["spec"]["source"]["path"]).is_dir(), obj_id(app)


def test_argocd_cm_embeds_health_lua_verbatim() -> None:
    (cm,) = read_yaml_docs(EXAMPLES / "argocd" / "argocd-cm.yaml")
    lua = (EXAMPLES / "argocd" / "health.lua").read_text()
    assert cm["data"]["resource.customizations.health.smolserve.dev_SmolServe"] == lua
    for version in KUBE_VERSIONS:
        errs, _ = kube_validate([cm], version)
        assert not errs, errs


def test_example_files_are_yaml() -> None:
    for path in EXAMPLES.rglob("*.yaml"):
        assert list(yaml.safe_load_all(path.read_text())), path
