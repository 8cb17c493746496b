"""The SmolServe operator: kopf handlers (thin), the pure planner and status, ``smolserve operator``."""
