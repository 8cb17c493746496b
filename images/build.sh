#!/usr/bin/env bash
# Builds (and with --push, pushes) both smolserve images from images/Dockerfile, tagged with the
# one version, smolserve.__version__ (the chart's appVersion is checked against it by the tests):
#   $REGISTRY/operator:<version>       target operator
#   $REGISTRY/template-job:<version>   target template-job
# The vLLM engine is the stock, pinned vllm/vllm-openai image (the SmolLM3 reasoning parser is
# mounted from a ConfigMap), so there is no vllm image to build.
#
# Usage: images/build.sh [--push]
#   env: REGISTRY     default ghcr.io/smolserve
#        BUILDER      docker (default), podman or buildah
#        BASE         base image (default: the Dockerfile's pinned python:3.11.14-slim-bookworm;
#                     images/local-base.sh makes one where no registry is reachable)
#        BUILD_FLAGS  extra flags for the build command, split on whitespace, e.g.
#                     "--isolation chroot --network host --build-arg PIP_CERT=/etc/ssl/certs/..."
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="${REGISTRY:-ghcr.io/smolserve}"
BUILDER="${BUILDER:-docker}"
BASE="${BASE:-}"
read -r -a EXTRA_FLAGS <<<"${BUILD_FLAGS:-}"
PUSH=0
case "${1:-}" in
    "") ;;
    --push) PUSH=1 ;;
    *) echo "usage: images/build.sh [--push]" >&2; exit 2 ;;
esac

VERSION="$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' operator/smolserve/__init__.py)"
if [ -z "$VERSION" ]; then
    echo "images/build.sh: no __version__ = \"...\" line in operator/smolserve/__init__.py" >&2
    exit 1
fi
if ! command -v "$BUILDER" >/dev/null; then
    echo "images/build.sh: '$BUILDER' not found (set BUILDER to docker, podman or buildah)" >&2
    exit 1
fi

flags=(--file images/Dockerfile --label "org.opencontainers.image.version=$VERSION")
if [ -n "$BASE" ]; then
    flags+=(--build-arg "BASE=$BASE")
fi
for target in operator template-job; do
    ref="$REGISTRY/$target:$VERSION"
    echo "building $ref"
    "$BUILDER" build "${flags[@]}" "${EXTRA_FLAGS[@]}" --target "$target" --tag "$ref" .
    # `images --format` is common to docker, podman and buildah.
    size="$("$BUILDER" images --format '{{.Size}}' "$ref" 2>/dev/null | head -n 1 || true)"
    echo "built $ref${size:+ ($size)}"
    if [ "$PUSH" = 1 ]; then
        "$BUILDER" push "$ref"
    fi
done
