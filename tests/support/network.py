"""This machine's addresses, for tests that tell a pod's loopback from the Service's path."""

from __future__ import annotations

import ipaddress
import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback: a request to it arrives from it,
    as a request through a Service arrives from another pod. (A UDP connect sends nothing; it
    only picks the address the default route would use.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached
            address = sock.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if ipaddress.ip_address(address).is_loopback:
        raise AssertionError(
            "this machine has no non-loopback IPv4 address: the Service path cannot be played"
        )
    return address
