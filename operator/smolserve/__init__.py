"""smolserve: serve SmolLM3-3B on vLLM with tool calling and reasoning that work."""

__version__ = "0.1.0"
