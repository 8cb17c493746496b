"""A small resource-generic Kubernetes client over the official client's connection and auth.

The operator writes plain dicts (the builders' output) with merge patches only, and never
needs typed models: it sends JSON through the official client's connection pool (its TLS,
client certificates and proxy settings) with the official client's credentials, and skips
the rest of its per-call machinery (typed validation, body sanitizing, response
deserialization), which would cost more CPU than the reconcile itself. The credentials are
read again at most every ``CREDENTIALS_TTL`` seconds and after a 401 (the official client
re-reads its whole kubeconfig before every request).

Every request has a timeout (the official client has none: a hung connection would hold a
SmolServe's reconcile forever), and an answer that says "try again" (429, 5xx, no answer) is
tried again twice, after a short pause or the server's ``Retry-After``, before the error
reaches the reconcile, which retries with longer pauses. Retrying is safe for every request
the operator sends: merge patches and deletes are idempotent, and a create whose first
answer was lost comes back 409 ``AlreadyExists``, which the reconcile checks.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import urlencode

from smolserve import __version__
from smolserve.errors import SmolserveError
from smolserve.kinds import Ref

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = f"smolserve-operator/{__version__}"
# Answers worth trying again: throttled, the server's trouble, or no answer at all (0).
TRANSIENT = frozenset({0, 429, 500, 502, 503, 504})
# Pauses before the client's own retries of a transient failure (the reconcile retries after).
RETRY_PAUSES = (0.2, 1.0)
MAX_RETRY_AFTER = 10.0  # seconds; a longer Retry-After is the reconcile's to wait out
# Seconds the credentials' headers are reused before the client's configuration is asked again
# (a rotated service-account token, a refreshed exec-plugin token): well inside any token's life.
CREDENTIALS_TTL = 60.0


def kubeconfig_path() -> str | None:
    """``KUBECONFIG`` as it is now (read at start, not at import); None: in-cluster."""
    return os.environ.get("KUBECONFIG") or None


def load_configuration(kubeconfig: str | None) -> Any:
    """The client configuration from the kubeconfig file ``kubeconfig``, or in-cluster (None),
    read afresh (a rotated service-account token is picked up)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    configuration.retries = 0  # urllib3 retries nothing behind Kube's back (see Kube.request)
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise SmolserveError(f"no Kubernetes configuration: {exc}") from exc
    return configuration


class ApiError(SmolserveError):
    """A non-2xx answer: ``status`` is the HTTP code (0: no answer), the message is the API's
    own, ``reason`` its Status reason (``AlreadyExists``, ``Conflict``, ...), ``retry_after``
    its ``Retry-After`` in seconds."""

    def __init__(
        self, status: int, message: str, *, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT


def _retry_after(headers: Any) -> float | None:
    raw = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


class Kube:
    """create / patch / delete / list as plain JSON; raises ``ApiError`` on failure.

    ``timeout``: (connect, read) in seconds; ``pauses``: before each retry of a transient
    failure.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        pauses: tuple[float, ...] = RETRY_PAUSES,
        kubeconfig: str | None = None,
    ) -> None:
        self._api = api_client
        self.timeout = timeout
        self.pauses = pauses
        self.kubeconfig = kubeconfig  # where its configuration came from (None: in-cluster)
        self._credentials: tuple[float, dict[str, str]] | None = None  # (read at, headers)

    @classmethod
    def from_environment(cls, *, timeout: tuple[float, float] = (10.0, 60.0)) -> Kube:
        """``KUBECONFIG`` when set, else the in-cluster service account."""
        from kubernetes import client

        kubeconfig = kubeconfig_path()
        api_client = client.ApiClient(load_configuration(kubeconfig))
        api_client.user_agent = USER_AGENT  # tells the operator's requests apart in audit logs
        return cls(api_client, timeout=timeout, kubeconfig=kubeconfig)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        for pause in (*self.pauses, None):
            try:
                return self._once(method, path, body, content_type, query)
            except ApiError as exc:
                if pause is None or not exc.transient:
                    raise
                time.sleep(max(pause, min(exc.retry_after or 0.0, MAX_RETRY_AFTER)))
        raise AssertionError("unreachable")

    def _once(
        self,
        method: str,
        path: str,
        body: Any,
        content_type: str,
        query: list[tuple[str, str]] | None,
    ) -> dict[str, Any]:
        import urllib3

        configuration = self._api.configuration
        url = configuration.host + path + (f"?{urlencode(query)}" if query else "")
        headers = {
            **self._api.default_headers,
            "Accept": "application/json",
            "Content-Type": content_type,
            **self._credential_headers(),
        }
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            response = self._api.rest_client.pool_manager.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=self.timeout[0], read=self.timeout[1]),
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(0, f"no answer from the API server for {method} {path}: {exc}") from exc
        try:
            data = json.loads(response.data or b"null")
        except ValueError:
            data = None
        if not 200 <= response.status < 300:
            if response.status == 401:
                self._credentials = None  # read them again before the next request
            status = data if isinstance(data, dict) else {}
            raise ApiError(
                response.status,
                status.get("message") or f"HTTP {response.status} on {path}",
                reason=status.get("reason") or "",
                retry_after=_retry_after(response.headers),
            )
        if data is None and response.data:
            raise ApiError(0, f"the API server's answer to {method} {path} is not JSON")
        return data

    def _credential_headers(self) -> dict[str, str]:
        """The credentials' request headers (a bearer token; none with client certificates)."""
        cached = self._credentials
        if cached is not None and time.monotonic() - cached[0] < CREDENTIALS_TTL:
            return cached[1]
        headers = {
            auth["key"]: auth["value"]
            for auth in self._api.configuration.auth_settings().values()
            if auth.get("in") == "header" and auth.get("value")
        }
        self._credentials = (time.monotonic(), headers)
        return headers

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
