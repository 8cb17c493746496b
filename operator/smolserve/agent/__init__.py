"""The serving agent: a sidecar in every vLLM pod that talks to that pod's own vLLM.

``smolserve agent run`` decides whether its pod may take traffic (its ``/ready``: vLLM healthy,
the smoke battery passed) and reports what it found to the operator through the
``<name>-agent-status`` ConfigMap (``report.py``, the protocol both sides use). Stdlib only at
import time; it never imports kopf, transformers or torch.
"""

DEFAULT_PORT = 8081  # the agent's /ready and /healthz (the pod's port named "agent")
DEFAULT_VLLM_URL = "http://127.0.0.1:8000"  # the pod's own vLLM, on loopback
