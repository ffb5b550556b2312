"""OpenAI-compatible inference endpoint serving a registered or local model."""
