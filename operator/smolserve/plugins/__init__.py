"""vLLM plugins shipped by smolserve; each file is mounted on its own from a ConfigMap."""
