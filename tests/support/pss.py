"""The Pod Security Standards' ``baseline`` and ``restricted`` profiles, control by control.

Written from the standard's published controls (Kubernetes docs, "Pod Security Standards"):
each function below is one control, reads the fields the standard names and returns one
``Violation`` per offending field, with the field's path in the object checked
(``spec.template.spec.containers[1].securityContext.privileged``). ``restricted`` includes
``baseline``. Pure: no cluster, no admission webhook; the tests apply it to every pod template
smolserve renders and to the chart's operator pod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Capabilities baseline lets a container add (everything else is a known escalation).
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# Namespaced, isolated sysctls ("safe"): the only ones baseline allows.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SECCOMP_TYPES_RESTRICTED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
        "projected", "secret",
    }
)  # fmt: skip
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Violation:
    control: str  # the standard's name for the control
    path: str  # the offending field, in the object checked
    value: Any  # what it holds (None: missing where a value is required)

    def __str__(self) -> str:
        shown = "<unset>" if self.value is None else repr(self.value)
        return f"{self.control}: {self.path} = {shown}"


@dataclass(frozen=True)
class PodTemplate:
    """A pod's metadata and spec, and where the spec sits in the object that holds it."""

    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]
    path: str  # "spec" for a Pod, "spec.template.spec" for a Deployment or a Job


def pod_template(obj: Mapping[str, Any]) -> PodTemplate:
    """The pod of a Pod, or the pod template of a workload (Deployment, Job, ...)."""
    if obj.get("kind") == "Pod":
        return PodTemplate(obj.get("metadata") or {}, obj.get("spec") or {}, "spec")
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        template = spec["jobTemplate"]["spec"]["template"]
        return PodTemplate(
            template.get("metadata") or {}, template["spec"], "spec.jobTemplate.spec.template.spec"
        )
    template = spec["template"]
    return PodTemplate(template.get("metadata") or {}, template["spec"], "spec.template.spec")


def _containers(pod: PodTemplate) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in CONTAINER_LISTS:
        for i, container in enumerate(pod.spec.get(field) or []):
            yield f"{pod.path}.{field}[{i}]", container


def _context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return container.get("securityContext") or {}


def _pod_context(pod: PodTemplate) -> Mapping[str, Any]:
    return pod.spec.get("securityContext") or {}


def _metadata_path(pod: PodTemplate) -> str:
    return pod.path.removesuffix("spec") + "metadata" if pod.path != "spec" else "metadata"


def _windows(pod: PodTemplate) -> bool:
    return ((pod.spec.get("os") or {}).get("name")) == "windows"


# --- baseline ------------------------------------------------------------------------------


def host_process(pod: PodTemplate) -> list[Violation]:
    found = []
    where = [(f"{pod.path}.securityContext", _pod_context(pod))]
    where += [(f"{p}.securityContext", _context(c)) for p, c in _containers(pod)]
    for path, context in where:
        value = (context.get("windowsOptions") or {}).get("hostProcess")
        if value not in (None, False):
            found.append(Violation("HostProcess", f"{path}.windowsOptions.hostProcess", value))
    return found


def host_namespaces(pod: PodTemplate) -> list[Violation]:
    return [
        Violation("Host Namespaces", f"{pod.path}.{field}", pod.spec[field])
        for field in ("hostNetwork", "hostPID", "hostIPC")
        if pod.spec.get(field) not in (None, False)
    ]


def privileged_containers(pod: PodTemplate) -> list[Violation]:
    return [
        Violation("Privileged Containers", f"{p}.securityContext.privileged", value)
        for p, c in _containers(pod)
        if (value := _context(c).get("privileged")) not in (None, False)
    ]


def _added_capabilities(pod: PodTemplate, allowed: frozenset[str], control: str) -> list[Violation]:
    found = []
    for path, container in _containers(pod):
        added = (_context(container).get("capabilities") or {}).get("add") or []
        for i, capability in enumerate(added):
            if capability not in allowed:
                found.append(
                    Violation(control, f"{path}.securityContext.capabilities.add[{i}]", capability)
                )
    return found


def baseline_capabilities(pod: PodTemplate) -> list[Violation]:
    return _added_capabilities(pod, BASELINE_CAPABILITIES, "Capabilities")


def host_path_volumes(pod: PodTemplate) -> list[Violation]:
    return [
        Violation("HostPath Volumes", f"{pod.path}.volumes[{i}].hostPath", volume["hostPath"])
        for i, volume in enumerate(pod.spec.get("volumes") or [])
        if volume.get("hostPath") is not None
    ]


def host_ports(pod: PodTemplate) -> list[Violation]:
    found = []
    for path, container in _containers(pod):
        for i, port in enumerate(container.get("ports") or []):
            if port.get("hostPort") not in (None, 0):
                found.append(
                    Violation("Host Ports", f"{path}.ports[{i}].hostPort", port["hostPort"])
                )
    return found


def apparmor(pod: PodTemplate) -> list[Violation]:
    found = []
    where = [(f"{pod.path}.securityContext", _pod_context(pod))]
    where += [(f"{p}.securityContext", _context(c)) for p, c in _containers(pod)]
    for path, context in where:
        kind = (context.get("appArmorProfile") or {}).get("type")
        if kind is not None and kind not in APPARMOR_TYPES:
            found.append(Violation("AppArmor", f"{path}.appArmorProfile.type", kind))
    for key, value in (pod.metadata.get("annotations") or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(Violation("AppArmor", f"{_metadata_path(pod)}.annotations[{key}]", value))
    return found


def selinux(pod: PodTemplate) -> list[Violation]:
    found = []
    where = [(f"{pod.path}.securityContext", _pod_context(pod))]
    where += [(f"{p}.securityContext", _context(c)) for p, c in _containers(pod)]
    for path, context in where:
        options = context.get("seLinuxOptions") or {}
        if options.get("type") not in (None, *SELINUX_TYPES):
            found.append(Violation("SELinux", f"{path}.seLinuxOptions.type", options["type"]))
        for field in ("user", "role"):
            if options.get(field) not in (None, ""):
                found.append(Violation("SELinux", f"{path}.seLinuxOptions.{field}", options[field]))
    return found


def proc_mount(pod: PodTemplate) -> list[Violation]:
    return [
        Violation("/proc Mount Type", f"{p}.securityContext.procMount", value)
        for p, c in _containers(pod)
        if (value := _context(c).get("procMount")) not in (None, "Default")
    ]


def baseline_seccomp(pod: PodTemplate) -> list[Violation]:
    found = []
    where = [(f"{pod.path}.securityContext", _pod_context(pod))]
    where += [(f"{p}.securityContext", _context(c)) for p, c in _containers(pod)]
    for path, context in where:
        kind = (context.get("seccompProfile") or {}).get("type")
        if kind == "Unconfined":
            found.append(Violation("Seccomp", f"{path}.seccompProfile.type", kind))
    return found


def sysctls(pod: PodTemplate) -> list[Violation]:
    return [
        Violation("Sysctls", f"{pod.path}.securityContext.sysctls[{i}].name", entry.get("name"))
        for i, entry in enumerate(_pod_context(pod).get("sysctls") or [])
        if entry.get("name") not in SAFE_SYSCTLS
    ]


# --- restricted (on top of baseline) -------------------------------------------------------


def volume_types(pod: PodTemplate) -> list[Violation]:
    found = []
    for i, volume in enumerate(pod.spec.get("volumes") or []):
        for source in sorted(set(volume) - {"name"} - RESTRICTED_VOLUME_SOURCES):
            found.append(Violation("Volume Types", f"{pod.path}.volumes[{i}].{source}", source))
    return found


def privilege_escalation(pod: PodTemplate) -> list[Violation]:
    if _windows(pod):
        return []
    return [
        Violation("Privilege Escalation", f"{p}.securityContext.allowPrivilegeEscalation", value)
        for p, c in _containers(pod)
        if (value := _context(c).get("allowPrivilegeEscalation")) is not False
    ]


def running_as_non_root(pod: PodTemplate) -> list[Violation]:
    found = []
    pod_value = _pod_context(pod).get("runAsNonRoot")
    if pod_value not in (None, True):
        found.append(
            Violation("Running as Non-root", f"{pod.path}.securityContext.runAsNonRoot", pod_value)
        )
    for path, container in _containers(pod):
        value = _context(container).get("runAsNonRoot")
        if value is False or (value is None and pod_value is not True):
            found.append(
                Violation("Running as Non-root", f"{path}.securityContext.runAsNonRoot", value)
            )
    return found


def running_as_non_root_user(pod: PodTemplate) -> list[Violation]:
    where = [(f"{pod.path}.securityContext", _pod_context(pod))]
    where += [(f"{p}.securityContext", _context(c)) for p, c in _containers(pod)]
    return [
        Violation("Running as Non-root user", f"{path}.runAsUser", 0)
        for path, context in where
        if context.get("runAsUser") == 0
    ]


def restricted_seccomp(pod: PodTemplate) -> list[Violation]:
    if _windows(pod):
        return []
    found = []
    pod_kind = (_pod_context(pod).get("seccompProfile") or {}).get("type")
    if pod_kind is not None and pod_kind not in SECCOMP_TYPES_RESTRICTED:
        found.append(
            Violation("Seccomp", f"{pod.path}.securityContext.seccompProfile.type", pod_kind)
        )
    for path, container in _containers(pod):
        kind = (_context(container).get("seccompProfile") or {}).get("type")
        if kind is None and pod_kind in SECCOMP_TYPES_RESTRICTED:
            continue
        if kind not in SECCOMP_TYPES_RESTRICTED:
            found.append(Violation("Seccomp", f"{path}.securityContext.seccompProfile.type", kind))
    return found


def restricted_capabilities(pod: PodTemplate) -> list[Violation]:
    if _windows(pod):
        return []
    found = _added_capabilities(pod, RESTRICTED_CAPABILITIES, "Capabilities")
    for path, container in _containers(pod):
        dropped = (_context(container).get("capabilities") or {}).get("drop")
        if "ALL" not in (dropped or []):
            found.append(
                Violation("Capabilities", f"{path}.securityContext.capabilities.drop", dropped)
            )
    return found


Control = Callable[[PodTemplate], list[Violation]]
BASELINE: tuple[Control, ...] = (
    host_process, host_namespaces, privileged_containers, baseline_capabilities,
    host_path_volumes, host_ports, apparmor, selinux, proc_mount, baseline_seccomp, sysctls,
)  # fmt: skip
RESTRICTED: tuple[Control, ...] = (
    *(c for c in BASELINE if c not in (baseline_capabilities, baseline_seccomp)),
    volume_types, privilege_escalation, running_as_non_root, running_as_non_root_user,
    restricted_seccomp, restricted_capabilities,
)  # fmt: skip
# restricted's capabilities and seccomp controls are stricter versions of baseline's: a
# baseline violation of either is also one of the restricted control, reported once.


def violations(obj: Mapping[str, Any], profile: str = "restricted") -> list[Violation]:
    """Every violation of ``profile`` (``baseline`` or ``restricted``) in a Pod or workload."""
    controls = {"baseline": BASELINE, "restricted": RESTRICTED}[profile]
    pod = pod_template(obj)
    return [v for control in controls for v in control(pod)]
