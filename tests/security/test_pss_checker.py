"""The Pod Security Standards checker (support/pss.py) itself: one pod per rule it must catch,
and the pods the standard allows."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from support.pss import violations

CONTAINER = "spec.containers[0].securityContext"


def restricted_pod() -> dict[str, Any]:
    """The smallest pod that meets restricted, with an init container so both lists count."""
    context = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "image": "i", "securityContext": dict(context)}],
            "containers": [
                {"name": "main", "image": "i", "securityContext": copy.deepcopy(context)}
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }


def paths(pod: dict[str, Any], profile: str = "restricted") -> set[str]:
    return {v.path for v in violations(pod, profile)}


def with_change(change: Any) -> dict[str, Any]:
    pod = restricted_pod()
    change(pod)
    return pod


def main_context(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]["securityContext"]


def pod_context(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["securityContext"]


def test_a_restricted_pod_passes_both_profiles() -> None:
    assert violations(restricted_pod()) == []
    assert violations(restricted_pod(), "baseline") == []


def test_the_default_pod_meets_baseline_but_not_restricted() -> None:
    bare = {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert violations(bare, "baseline") == []
    assert {v.control for v in violations(bare)} == {
        "Privilege Escalation", "Running as Non-root", "Seccomp", "Capabilities",
    }  # fmt: skip


BASELINE_BREAKS = [
    (
        "HostProcess",
        lambda p: pod_context(p).update(windowsOptions={"hostProcess": True}),
        "spec.securityContext.windowsOptions.hostProcess",
    ),
    (
        "HostProcess",
        lambda p: main_context(p).update(windowsOptions={"hostProcess": True}),
        f"{CONTAINER}.windowsOptions.hostProcess",
    ),
    ("Host Namespaces", lambda p: p["spec"].update(hostNetwork=True), "spec.hostNetwork"),
    ("Host Namespaces", lambda p: p["spec"].update(hostPID=True), "spec.hostPID"),
    ("Host Namespaces", lambda p: p["spec"].update(hostIPC=True), "spec.hostIPC"),
    (
        "Privileged Containers",
        lambda p: p["spec"]["initContainers"][0]["securityContext"].update(privileged=True),
        "spec.initContainers[0].securityContext.privileged",
    ),
    (
        "Capabilities",
        lambda p: main_context(p)["capabilities"].update(add=["SYS_ADMIN"]),
        f"{CONTAINER}.capabilities.add[0]",
    ),
    (
        "HostPath Volumes",
        lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "spec.volumes[1].hostPath",
    ),
    (
        "Host Ports",
        lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
        "spec.containers[0].ports[0].hostPort",
    ),
    (
        "AppArmor",
        lambda p: main_context(p).update(appArmorProfile={"type": "Unconfined"}),
        f"{CONTAINER}.appArmorProfile.type",
    ),
    (
        "AppArmor",
        lambda p: p["metadata"].update(
            annotations={"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}
        ),
        "metadata.annotations[container.apparmor.security.beta.kubernetes.io/main]",
    ),
    (
        "SELinux",
        lambda p: pod_context(p).update(seLinuxOptions={"type": "spc_t"}),
        "spec.securityContext.seLinuxOptions.type",
    ),
    (
        "SELinux",
        lambda p: main_context(p).update(seLinuxOptions={"user": "system_u"}),
        f"{CONTAINER}.seLinuxOptions.user",
    ),
    (
        "SELinux",
        lambda p: main_context(p).update(seLinuxOptions={"role": "sysadm_r"}),
        f"{CONTAINER}.seLinuxOptions.role",
    ),
    (
        "/proc Mount Type",
        lambda p: main_context(p).update(procMount="Unmasked"),
        f"{CONTAINER}.procMount",
    ),
    (
        "Seccomp",
        lambda p: main_context(p).update(seccompProfile={"type": "Unconfined"}),
        f"{CONTAINER}.seccompProfile.type",
    ),
    (
        "Sysctls",
        lambda p: pod_context(p).update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "spec.securityContext.sysctls[0].name",
    ),
]


@pytest.mark.parametrize(("control", "change", "path"), BASELINE_BREAKS)
def test_each_baseline_rule_is_caught_by_both_profiles(
    control: str, change: Any, path: str
) -> None:
    pod = with_change(change)
    found = violations(pod, "baseline")
    assert [(v.control, v.path) for v in found] == [(control, path)], found
    # restricted: the same field (a hostPath volume is also a volume type it does not allow)
    found = violations(pod)
    assert (control, path) in [(v.control, v.path) for v in found], found
    assert {v.path for v in found} == {path}, found


RESTRICTED_BREAKS = [
    (
        "Volume Types",
        lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
        "spec.volumes[1].nfs",
    ),
    (
        "Privilege Escalation",
        lambda p: main_context(p).pop("allowPrivilegeEscalation"),
        f"{CONTAINER}.allowPrivilegeEscalation",
    ),
    (
        "Privilege Escalation",
        lambda p: main_context(p).update(allowPrivilegeEscalation=True),
        f"{CONTAINER}.allowPrivilegeEscalation",
    ),
    (
        "Running as Non-root",
        lambda p: main_context(p).update(runAsNonRoot=False),
        f"{CONTAINER}.runAsNonRoot",
    ),
    (
        "Running as Non-root user",
        lambda p: main_context(p).update(runAsUser=0),
        f"{CONTAINER}.runAsUser",
    ),
    (
        "Running as Non-root user",
        lambda p: pod_context(p).update(runAsUser=0),
        "spec.securityContext.runAsUser",
    ),
    (
        "Capabilities",
        lambda p: main_context(p)["capabilities"].update(drop=["NET_RAW"]),
        f"{CONTAINER}.capabilities.drop",
    ),
    (
        "Capabilities",
        lambda p: main_context(p)["capabilities"].update(add=["CHOWN"]),  # baseline allows it
        f"{CONTAINER}.capabilities.add[0]",
    ),
]


@pytest.mark.parametrize(("control", "change", "path"), RESTRICTED_BREAKS)
def test_each_restricted_rule_is_caught_and_baseline_allows_it(
    control: str, change: Any, path: str
) -> None:
    pod = with_change(change)
    found = violations(pod)
    assert [(v.control, v.path) for v in found] == [(control, path)], found
    assert violations(pod, "baseline") == []


def test_pod_level_non_root_and_seccomp_cover_every_container_unless_missing() -> None:
    pod = with_change(lambda p: pod_context(p).clear())
    assert paths(pod) == {
        "spec.initContainers[0].securityContext.runAsNonRoot",
        "spec.containers[0].securityContext.runAsNonRoot",
        "spec.initContainers[0].securityContext.seccompProfile.type",
        "spec.containers[0].securityContext.seccompProfile.type",
    }
    for container in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        container["securityContext"].update(
            runAsNonRoot=True, seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}
        )
    assert violations(pod) == []
    pod_context(pod).update(runAsNonRoot=False)  # explicitly false at the pod level: refused
    assert paths(pod) == {"spec.securityContext.runAsNonRoot"}


def test_what_the_standard_allows_is_not_reported() -> None:
    def allowed(p: dict[str, Any]) -> None:
        main_context(p)["capabilities"]["add"] = ["NET_BIND_SERVICE"]
        main_context(p).update(
            seLinuxOptions={"type": "container_init_t", "level": "s0:c1"},
            appArmorProfile={"type": "RuntimeDefault"},
            procMount="Default",
            runAsUser=1000,
        )
        pod_context(p).update(sysctls=[{"name": "net.ipv4.tcp_syncookies", "value": "1"}])
        p["metadata"]["annotations"] = {
            "container.apparmor.security.beta.kubernetes.io/main": "localhost/k8s-main"
        }
        p["spec"]["volumes"] += [
            {"name": n, kind: {}}
            for n, kind in [
                ("a", "configMap"), ("b", "secret"), ("c", "projected"), ("d", "downwardAPI"),
                ("e", "persistentVolumeClaim"), ("f", "csi"), ("g", "ephemeral"),
            ]
        ]  # fmt: skip
        p["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]

    assert violations(with_change(allowed)) == []


def test_windows_pods_skip_the_linux_only_rules() -> None:
    bare = {
        "kind": "Pod",
        "spec": {
            "os": {"name": "windows"},
            "securityContext": {"runAsNonRoot": True},
            "containers": [{"name": "c", "image": "i"}],
        },
    }
    assert violations(bare) == []


def test_paths_point_into_workload_templates() -> None:
    job = {"kind": "Job", "spec": {"template": {"spec": restricted_pod()["spec"]}}}
    job["spec"]["template"]["spec"]["hostPID"] = True
    assert [str(v) for v in violations(job)] == [
        "Host Namespaces: spec.template.spec.hostPID = True"
    ]
    cron = {"kind": "CronJob", "spec": {"jobTemplate": job}}
    assert paths(cron) == {"spec.jobTemplate.spec.template.spec.hostPID"}
