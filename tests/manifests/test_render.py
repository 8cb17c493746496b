"""``smolserve render -f``: the builders' objects as a YAML stream, through the real CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from smolserve import labels
from smolserve.cli import main
from smolserve.manifests import (
    OperatorConfig,
    ServedTemplate,
    desired_state,
    template_inputs_hash,
)
from smolserve.manifests.cli import PENDING
from smolserve.manifests.common import sha256_hex
from smolserve.spec import load_spec, spec_schema

INLINE = "{%- for m in messages %}{{ m.content }}\n{% endfor -%}\n"

STREAM = f"""\
apiVersion: {labels.API_VERSION}
kind: SmolServe
metadata: {{name: smol, namespace: ai}}
spec:
  parsers: {{reasoning: smollm3}}
  template:
    source: inline
    inline: {json.dumps(INLINE)}
---
apiVersion: v1
kind: Secret
metadata: {{name: hf}}
---
apiVersion: {labels.API_VERSION}
kind: SmolServe
metadata: {{name: other}}
"""


def render(tmp_path: Path, text: str, capsys) -> tuple[int, str, str]:
    path = tmp_path / "smolserve.yaml"
    path.write_text(text)
    code = main(["render", "-f", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_render_prints_exactly_the_builders_objects(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SMOLSERVE_TEMPLATE_JOB_IMAGE", raising=False)
    code, out, _ = render(tmp_path, STREAM, capsys)
    assert code == 0
    objects = [d for d in yaml.safe_load_all(out) if d]
    first = load_spec(yaml.safe_load(STREAM.split("---")[0]))
    sha = sha256_hex(INLINE)
    config = OperatorConfig.from_env()
    expected = desired_state(
        first,
        config,
        inputs_hash=template_inputs_hash(first, config),
        template=ServedTemplate(f"smol-chat-template-{sha[:8]}", sha[:8]),
        publishing=True,
    ).objects()
    assert objects[: len(expected)] == expected
    assert all(o["metadata"].get("labels", {}).get(labels.SERVE) for o in objects)
    kinds = [o["kind"] for o in objects]
    assert kinds.count("Deployment") == 2 and "Secret" not in kinds


def test_render_marks_what_only_the_cluster_knows(tmp_path, capsys):
    _, out, _ = render(tmp_path, STREAM, capsys)
    assert "ownerReferences are added by the operator" in out
    sha8 = sha256_hex(INLINE)[:8]
    assert f"# template ConfigMap smol-chat-template-{sha8} is published" in out
    # The generated template's name is unknown until the Job has run: a marked placeholder.
    assert f"'{PENDING}' stands in for it" in out
    other = [d for d in yaml.safe_load_all(out) if d and d["metadata"]["name"] == "other"]
    (dep,) = [d for d in other if d["kind"] == "Deployment"]
    assert dep["spec"]["template"]["metadata"]["annotations"][labels.TEMPLATE_HASH] == PENDING


def test_render_keeps_a_multiline_template_readable(tmp_path, capsys):
    _, out, _ = render(tmp_path, STREAM, capsys)
    assert "value: |" in out  # the inline template, as a YAML block


SERVE = f"apiVersion: {labels.API_VERSION}\nkind: SmolServe\n"
SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {name: hf}\n---\n"
TOP_LEVEL = "apiVersion, kind, metadata, spec, status"
SPEC_FIELDS = ", ".join(sorted(spec_schema()["properties"]))  # the CRD's, alphabetical

# (input, the one line on stderr after "smolserve: error: ", with {f} for the file's path)
RENDER_BAD_INPUT = {
    "no-smolserve": (
        "kind: ConfigMap\napiVersion: v1\n",
        "{f}: no SmolServe (smolserve.dev/v1alpha1) in it",
    ),
    "yaml-block-mapping": (
        SERVE + "metadata:\n  name: smol\n spec: {}\n",
        "{f}:5:2: not valid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block mapping at line 1, column 1)",
    ),
    "yaml-flow": (
        "a: [",
        "{f}:1:5: not valid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node at line 1, column 5)",
    ),
    "yaml-tab": (
        SERVE + "metadata:\n\tname: smol\n",
        "{f}:4:1: not valid YAML: found character '\\t' that cannot start any token "
        "(while scanning for the next token)",
    ),
    "yaml-control-character": (
        "a: 1\nb: \x00\n",
        "{f}:2:4: not valid YAML: unacceptable character #x0000: special characters are not "
        "allowed",
    ),
    "not-a-mapping": (
        SECRET + "- a\n",
        "{f}: document 2 (no kind, no name, line 5) is not a mapping",
    ),
    "bad-name": (
        SERVE + "metadata: {name: Bad_Name}\n",
        "{f}: document 1 (SmolServe Bad_Name, line 1): metadata.name 'Bad_Name' must be a DNS "
        "label starting with a letter and at most 45 characters (children's names add suffixes)",
    ),
    "cel-rule-in-second-document": (
        SECRET + SERVE + "metadata: {name: s, namespace: ai}\n"
        "spec: {rollout: {maxSurge: 0, maxUnavailable: 0}}\n",
        "{f}: document 2 (SmolServe ai/s, line 5): spec.rollout: maxSurge and maxUnavailable "
        "cannot both be 0",
    ),
    "top-level-typo": (
        SERVE + "metadata: {name: s}\nspecs: {replicas: 2}\n",
        f"{{f}}: document 1 (SmolServe s, line 1): unknown field 'specs' (known: {TOP_LEVEL})",
    ),
    "metadata-typo": (
        SERVE + "metadata: {name: s, lables: {a: b}}\n",
        "{f}: document 1 (SmolServe s, line 1): metadata: unknown field 'lables' (known: "
        "annotations, creationTimestamp, deletionGracePeriodSeconds, deletionTimestamp, "
        "finalizers, generateName, generation, labels, managedFields, name, namespace, "
        "ownerReferences, resourceVersion, selfLink, uid)",
    ),
    "spec-typo-in-third-document": (
        SECRET + SERVE + "metadata: {name: a}\n---\n" + SERVE + "metadata: {name: b}\n"
        "spec: {replica: 2}\n",
        "{f}: document 3 (SmolServe b, line 9): spec: unknown field 'replica' (known: "
        f"{SPEC_FIELDS})",
    ),
    "apiversion-near-miss": (
        "apiVersion: smolserve.dev/v1\nkind: SmolServe\nmetadata: {name: s}\n",
        "{f}: no SmolServe (smolserve.dev/v1alpha1) in it; skipped document 1 (SmolServe s, "
        "line 1): apiVersion 'smolserve.dev/v1' is not 'smolserve.dev/v1alpha1'",
    ),
    "kind-near-miss": (
        f"apiVersion: {labels.API_VERSION}\nkind: Smolserve\nmetadata: {{name: s}}\n",
        "{f}: no SmolServe (smolserve.dev/v1alpha1) in it; skipped document 1 (Smolserve s, "
        "line 1): kind 'Smolserve' is not 'SmolServe'",
    ),
    "group-without-kind": (
        f"apiVersion: {labels.API_VERSION}\nmetadata: {{name: s}}\n",
        "{f}: no SmolServe (smolserve.dev/v1alpha1) in it; skipped document 1 (s, no kind, "
        "line 1): it has no kind",
    ),
    "plural-kind-and-version": (
        SECRET + "apiVersion: smolserve.dev/v1\nkind: smolserves\nmetadata: {name: s}\n---\n"
        "apiVersion: smolserve.dev/v1alpha2\nkind: SmolServe\nmetadata: {name: t}\n",
        "{f}: no SmolServe (smolserve.dev/v1alpha1) in it; skipped document 2 (smolserves s, "
        "line 5): kind 'smolserves' is not 'SmolServe' and apiVersion 'smolserve.dev/v1' is "
        "not 'smolserve.dev/v1alpha1' (and 1 more)",
    ),
}


@pytest.mark.parametrize("case", RENDER_BAD_INPUT)
def test_render_bad_input_is_one_exact_line(case, tmp_path, capsys):
    text, expected = RENDER_BAD_INPUT[case]
    code, out, err = render(tmp_path, text, capsys)
    assert (code, out) == (2, "")
    assert err == "smolserve: error: " + expected.format(f=tmp_path / "smolserve.yaml") + "\n"


def test_render_skips_a_near_miss_with_a_warning(tmp_path, capsys):
    """A document meant as a SmolServe but not one is named on stderr; the rest renders."""
    text = f"apiVersion: {labels.API_VERSION}\nkind: smol\nmetadata: {{name: a}}\n---\n{STREAM}"
    code, out, err = render(tmp_path, text, capsys)
    assert code == 0
    assert err == (
        f"smolserve: warning: {tmp_path / 'smolserve.yaml'}: skipped document 1 (smol a, line 1): "
        "kind 'smol' is not 'SmolServe'\n"
    )
    assert out == render(tmp_path, STREAM, capsys)[1]


def test_render_names_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a: ["))
    assert main(["render", "-f", "-"]) == 2
    assert capsys.readouterr().err.startswith("smolserve: error: <stdin>:1:5: not valid YAML: ")


def test_render_missing_file(tmp_path, capsys):
    assert main(["render", "-f", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
