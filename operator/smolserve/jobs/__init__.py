"""Commands that run inside the cluster: ``smolserve job publish-template|fetch-adapters``.

Every input comes from arguments or the environment, so a test can run a Job's container
arguments in-process through ``smolserve.cli.main`` against any API server in ``KUBECONFIG``.
"""
