"""IMTS: turn data and a plain-language goal into a better fine-tuned LLM, through a closed loop."""

__version__ = "0.1.0"
