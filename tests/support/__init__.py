"""Test support: a Kubernetes API emulator realistic enough to run the real operator against."""

from .cluster import EmulatedCluster, install_crds, load_crds, write_kubeconfig
from .emulator import Emulator, Kind

__all__ = ["EmulatedCluster", "Emulator", "Kind", "install_crds", "load_crds", "write_kubeconfig"]
