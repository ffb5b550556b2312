"""The LLM-facing parts: chat backends, judges."""
