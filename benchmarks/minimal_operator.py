"""The baseline for ``operator_bench.py``: a minimal kopf operator that only creates the children.

One synchronous create handler: build the same children as the SmolServe operator creates
for a SmolServe whose template is ready (its ``desired_state`` without the Job: the
parser-plugin ConfigMap when the spec's parser needs it, with ``rollout.smoke`` the agent's
RBAC and ConfigMaps, the Service, the Deployment — with the same builders and the same
client), create them, then one status patch. A child that exists already (409, e.g. left by an
interrupted run) is taken as it is, so a second run over existing children finishes instead
of retrying for ever. No template handling, no status conditions, no updates of existing
children: the least a kopf operator can do for the same objects.

Run: ``python benchmarks/minimal_operator.py --namespace NS [--no-scanning]`` with KUBECONFIG
and ``BENCH_TEMPLATE_TEXT`` (the text of the template ConfigMaps the benchmark pre-creates).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
from typing import Any

import kopf

from smolserve import labels
from smolserve.manifests import OperatorConfig, template_configmap_name
from smolserve.manifests.desired import ServedTemplate, desired_state
from smolserve.operator.kube import ApiError, Kube
from smolserve.operator.runner import login_for
from smolserve.spec import load_spec


def build_registry(kube: Kube, config: OperatorConfig, template_text: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login_for(kube))
    sha = hashlib.sha256(template_text.encode()).hexdigest()

    @kopf.on.create(labels.GROUP, labels.VERSION, labels.PLURAL, registry=registry)
    def create(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        spec = load_spec(dict(body))
        name = template_configmap_name(spec.name, sha)
        template = ServedTemplate(name, sha[:8])
        desired = desired_state(spec, config, inputs_hash=None, template=template, publishing=False)
        for child in desired.objects():
            try:
                kube.create(child)
            except ApiError as exc:
                if exc.status != 409:  # AlreadyExists: nothing to do
                    raise
        patch.setdefault("status", {})["templateConfigMap"] = name

    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", action="append", default=[])
    parser.add_argument("--no-scanning", action="store_true")
    parser.add_argument("--liveness-port", type=int)
    args = parser.parse_args()
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = args.no_scanning
    registry = build_registry(
        Kube.from_environment(), OperatorConfig.from_env(), os.environ["BENCH_TEMPLATE_TEXT"]
    )
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=settings,
            standalone=True,
            namespaces=args.namespace,
            clusterwide=not args.namespace,
            liveness_endpoint=liveness,
        )
    )


if __name__ == "__main__":
    main()
