"""The Kubernetes client for in-cluster commands: ``KUBECONFIG`` if set, else in-cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from smolserve.errors import SmolserveError

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def core_api() -> Any:
    """A ``CoreV1Api`` from ``KUBECONFIG`` when set (tests, laptops), else the pod's account."""
    from kubernetes import client, config

    try:
        kubeconfig = os.environ.get("KUBECONFIG")
        if kubeconfig:
            api_client = config.new_client_from_config(config_file=kubeconfig)
        else:
            config.load_incluster_config()
            api_client = client.ApiClient()
    except (config.ConfigException, OSError) as exc:
        raise SmolserveError(f"no Kubernetes configuration: {exc}") from exc
    return client.CoreV1Api(api_client)


def current_namespace(explicit: str | None) -> str:
    """``explicit``, else ``SMOLSERVE_NAMESPACE`` (downward API), else the service account's."""
    if explicit:
        return explicit
    from_env = os.environ.get("SMOLSERVE_NAMESPACE")
    if from_env:
        return from_env
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SmolserveError("no namespace: pass --namespace or set SMOLSERVE_NAMESPACE") from exc
