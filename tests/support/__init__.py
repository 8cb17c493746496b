"""Test support: a Kubernetes API emulator realistic enough to run the real operator against."""

from .cluster import EmulatedCluster, load_crds, write_kubeconfig
from .emulator import Emulator, Kind

__all__ = ["EmulatedCluster", "Emulator", "Kind", "load_crds", "write_kubeconfig"]
