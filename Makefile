# Chart and image chores. Tests run with `bash .ci/run`.
.PHONY: sync-crds images push-images chart-lint

# crds/ is the single source of truth; the chart carries a copy (tests/chart checks they match).
sync-crds:
	cp crds/smolserve.yaml charts/smol/crds/smolserve.yaml

# Build every image, tagged with the chart's appVersion.
images:
	images/build.sh

push-images:
	images/build.sh --push

chart-lint:
	HOME="$${HOME:-/tmp}" .tools/bin/helm lint --strict charts/smol
	HOME="$${HOME:-/tmp}" .tools/bin/helm3 lint --strict charts/smol
