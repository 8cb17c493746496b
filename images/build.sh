#!/usr/bin/env bash
# Builds (and with --push, pushes) every smolserve image, tagged with the chart's appVersion:
#   $REGISTRY/operator:<appVersion>       images/operator/Dockerfile
#   $REGISTRY/template-job:<appVersion>   images/template-job/Dockerfile
# The vLLM engine is the stock, pinned vllm/vllm-openai image (the SmolLM3 reasoning parser is
# mounted from a ConfigMap), so there is no vllm image to build.
#
# Usage: images/build.sh [--push]      env: REGISTRY (default ghcr.io/smolserve),
#                                           BUILDER (default docker; podman works too)
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY="${REGISTRY:-ghcr.io/smolserve}"
BUILDER="${BUILDER:-docker}"
PUSH=0
case "${1:-}" in
    "") ;;
    --push) PUSH=1 ;;
    *) echo "usage: images/build.sh [--push]" >&2; exit 2 ;;
esac

# The chart's appVersion is the one version: the Python package must carry the same.
VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/smol/Chart.yaml)"
PACKAGE_VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)"
if [ -z "$VERSION" ] || [ "$VERSION" != "$PACKAGE_VERSION" ]; then
    echo "images/build.sh: chart appVersion '$VERSION' differs from pyproject version '$PACKAGE_VERSION'" >&2
    exit 1
fi
if ! command -v "$BUILDER" >/dev/null; then
    echo "images/build.sh: '$BUILDER' not found (set BUILDER to a docker-compatible CLI)" >&2
    exit 1
fi

for image in operator template-job; do
    ref="$REGISTRY/$image:$VERSION"
    echo "building $ref"
    "$BUILDER" build --file "images/$image/Dockerfile" --build-arg "VERSION=$VERSION" --tag "$ref" .
    if [ "$PUSH" = 1 ]; then
        "$BUILDER" push "$ref"
    fi
done
