"""A small resource-generic Kubernetes client over the official client's connection and auth.

The operator writes plain dicts (the builders' output) with merge patches only, and never
needs typed models: going through ``ApiClient.param_serialize``/``call_api`` skips the typed
client's per-call validation and response deserialization, which would cost more CPU than
the reconcile itself.
"""

from __future__ import annotations

import json
import os
from typing import Any

from smolserve import __version__
from smolserve.errors import SmolserveError
from smolserve.kinds import Ref

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = f"smolserve-operator/{__version__}"


def load_configuration() -> Any:
    """The client configuration from ``KUBECONFIG`` (read now, not at import) or in-cluster."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if os.environ.get("KUBECONFIG"):
            config.load_kube_config(
                config_file=os.environ["KUBECONFIG"], client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise SmolserveError(f"no Kubernetes configuration: {exc}") from exc
    return configuration


class ApiError(SmolserveError):
    """A non-2xx answer: ``status`` is the HTTP code, the message is the API's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Kube:
    """create / patch / delete / list as plain JSON; raises ``ApiError`` on failure."""

    def __init__(self, api_client: Any) -> None:
        self._api = api_client

    @classmethod
    def from_environment(cls) -> Kube:
        """``KUBECONFIG`` when set, else the in-cluster service account."""
        from kubernetes import client

        api_client = client.ApiClient(load_configuration())
        api_client.user_agent = USER_AGENT  # tells the operator's requests apart in audit logs
        return cls(api_client)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self._api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*params)
        response.read()
        data = json.loads(response.data or b"null")
        if not 200 <= response.status < 300:
            message = data.get("message") if isinstance(data, dict) else None
            raise ApiError(response.status, message or f"HTTP {response.status} on {path}")
        return data

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", Ref.of(obj).collection(), obj)

    def patch(
        self, ref: Ref, body: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        return self.request("PATCH", ref.path(subresource), body, content_type=MERGE_PATCH)

    def delete(self, ref: Ref) -> None:
        # Background: a Job's pods (and any dependents) go with it; the API's default for Jobs
        # would orphan them.
        self.request("DELETE", ref.path(), {"propagationPolicy": "Background"})

    def get(self, ref: Ref) -> dict[str, Any] | None:
        try:
            return self.request("GET", ref.path())
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, label_selector: str) -> list[dict[str, Any]]:
        path = Ref(kind, namespace, "").collection()
        return self.request("GET", path, query=[("labelSelector", label_selector)])["items"]
