# Chart and image chores. Tests run with `bash .ci/run`.
.PHONY: sync-crds gitops-template images push-images chart-lint

# The CRD lives in the package (operator/smolserve/crd/, read by load_spec at run time); crds/ and
# the chart carry copies (tests/chart checks they match).
sync-crds:
	cp operator/smolserve/crd/smolserve.yaml crds/smolserve.yaml
	cp operator/smolserve/crd/smolserve.yaml charts/smol/crds/smolserve.yaml

# The GitOps example's template, generated from the offline test-kit tokenizer
# (tests/chart/test_examples.py fails when it is stale).
gitops-template:
	PYTHONPATH=operator .venv/bin/smolserve testkit tokenizer --out .work/tokenizer
	PYTHONPATH=operator .venv/bin/smolserve template generate --tokenizer .work/tokenizer \
		--out examples/gitops/smol/chat_template.jinja --verify

# Build both images (images/Dockerfile), tagged with smolserve.__version__ (= the chart's appVersion).
images:
	images/build.sh

push-images:
	images/build.sh --push

chart-lint:
	HOME="$${HOME:-/tmp}" .tools/bin/helm lint --strict charts/smol
	HOME="$${HOME:-/tmp}" .tools/bin/helm3 lint --strict charts/smol
