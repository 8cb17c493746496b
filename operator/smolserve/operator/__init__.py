"""The SmolServe operator: thin kopf handlers, the pure planner and status, the command."""
