#!/usr/bin/env bash
# Makes a local Debian bookworm base image with Python 3.11 (python3 and venv) for machines that
# reach no image registry: debootstrap from the Debian mirror apt already uses, then import it.
# Build on it with: BASE=localhost/smolserve-base:bookworm BUILDER=podman images/build.sh
#
# Usage: images/local-base.sh [IMAGE]     (default localhost/smolserve-base:bookworm)
#   env: BUILDER  podman (default) or buildah: the tool that imports the root filesystem
#        MIRROR   Debian mirror (default: the one in apt's sources, else deb.debian.org)
#        WORKDIR  where the root filesystem is made, then removed (default .work/images)
# Needs root and the Debian packages debootstrap and podman (or buildah). An IMAGE that already
# exists is kept as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${1:-localhost/smolserve-base:bookworm}"
BUILDER="${BUILDER:-podman}"
WORKDIR="${WORKDIR:-.work/images}"
SUITE=bookworm
# python3-venv brings ensurepip's wheels: the Dockerfile installs into a venv (PEP 668).
PACKAGES=python3,python3-venv,ca-certificates
PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
    echo "images/local-base.sh: $*" >&2
    exit 1
}

# The Debian mirror apt uses for $SUITE (deb822 sources first, then the one-line format).
apt_mirror() {
    local sources=/etc/apt/sources.list.d/debian.sources
    if [ -r "$sources" ]; then
        awk -v suite="$SUITE" '
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri) { print uri; exit } }
        ' "$sources"
    elif [ -r /etc/apt/sources.list ]; then
        awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list
    fi
}

image_exists() {
    case "$BUILDER" in
        podman) podman image exists "$IMAGE" ;;
        buildah) buildah inspect --type image "$IMAGE" >/dev/null 2>&1 ;;
        *) die "BUILDER must be podman or buildah, not '$BUILDER'" ;;
    esac
}

command -v "$BUILDER" >/dev/null || die "'$BUILDER' not found (apt-get install podman buildah)"
if image_exists; then
    echo "$IMAGE exists"
    exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root"

MIRROR="${MIRROR:-$(apt_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$WORKDIR/rootfs-$SUITE"
mkdir -p "$WORKDIR"
rm -rf "$ROOTFS"
trap 'rm -rf "$ROOTFS" "$ROOTFS.tar"' EXIT

echo "debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >/dev/null
# What an image does not need: the downloaded packages and apt's lists.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
chroot "$ROOTFS" python3 -c 'import ensurepip, venv' || die "python3-venv is missing in $ROOTFS"

tar -C "$ROOTFS" --numeric-owner -cf "$ROOTFS.tar" .
case "$BUILDER" in
    podman)
        podman import --change "ENV PATH=$PATH_ENV" --change "ENV LANG=C.UTF-8" \
            --change 'CMD ["/bin/bash"]' "$ROOTFS.tar" "$IMAGE" >/dev/null
        ;;
    buildah)
        container="$(buildah from scratch)"
        buildah add --quiet "$container" "$ROOTFS.tar" /
        buildah config --env "PATH=$PATH_ENV" --env LANG=C.UTF-8 --cmd /bin/bash "$container"
        buildah commit --quiet --rm "$container" "$IMAGE" >/dev/null
        ;;
esac
echo "$IMAGE imported"
