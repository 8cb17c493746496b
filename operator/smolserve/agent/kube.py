"""The agent's Kubernetes access: exactly what its Role grants, nothing else.

Read (get, and watch by name) ``<name>-agent-config``; merge-patch this pod's key into
``<name>-agent-status``. The token is the pod's projected service-account token, mounted into
the agent container only (``KUBECONFIG`` instead, when set: tests, laptops). A watch on one
object of a Role limited by ``resourceNames`` must name it: ``fieldSelector=metadata.name=…``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from smolserve.errors import SmolserveError

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "smolserve-agent"


class AgentKube:
    """The three calls the agent makes, through the official client (imported lazily)."""

    def __init__(self, namespace: str, api_client: Any | None = None) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                if os.environ.get("KUBECONFIG"):
                    api_client = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
                else:
                    config.load_incluster_config()  # re-reads the projected token as it rotates
                    api_client = client.ApiClient()
            except (config.ConfigException, OSError) as exc:
                raise SmolserveError(f"no Kubernetes configuration: {exc}") from exc
        api_client.user_agent = USER_AGENT
        self.namespace = namespace
        self._core = client.CoreV1Api(api_client)
        self._watch: Any = None

    def read_configmap(self, name: str) -> dict[str, str] | None:
        """The ConfigMap's data; None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self._core.read_namespaced_config_map(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(cm.data or {})

    def watch_configmap(self, name: str, timeout_seconds: int = 300) -> Iterator[dict[str, str]]:
        """The ConfigMap's data each time it changes (until the watch ends; call again)."""
        from kubernetes import watch

        self._watch = watch.Watch()
        stream = self._watch.stream(
            self._core.list_namespaced_config_map,
            self.namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=timeout_seconds,
        )
        for event in stream:
            if event["type"] in ("ADDED", "MODIFIED"):
                yield dict(event["object"].data or {})

    def close(self) -> None:
        """End a watch in progress (its connection is closed, the iterator ends)."""
        if self._watch is not None:
            self._watch.stop()

    def patch_configmap(self, name: str, body: dict[str, Any]) -> None:
        self._core.patch_namespaced_config_map(
            name, self.namespace, body, _content_type=MERGE_PATCH
        )
