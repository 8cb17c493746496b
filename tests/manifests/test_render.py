"""``smolserve render -f``: the builders' objects as a YAML stream, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

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
from smolserve.spec import load_spec

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


def test_render_bad_input_is_one_line(tmp_path, capsys):
    cases = {
        "kind: ConfigMap\napiVersion: v1\n": "no SmolServe",
        "a: [": "not valid YAML",
        f"apiVersion: {labels.API_VERSION}\nkind: SmolServe\nmetadata: {{name: Bad_Name}}\n": (
            "metadata.name"
        ),
        f"apiVersion: {labels.API_VERSION}\nkind: SmolServe\nmetadata: {{name: s}}\n"
        "spec: {rollout: {maxSurge: 0, maxUnavailable: 0}}\n": "cannot both be 0",
    }
    for text, expected in cases.items():
        code, out, err = render(tmp_path, text, capsys)
        assert code == 2, text
        assert out == ""
        assert err.count("\n") == 1 and expected in err, err


def test_render_missing_file(tmp_path, capsys):
    assert main(["render", "-f", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
