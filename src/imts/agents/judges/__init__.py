"""Judges: evaluation functions that check an answer's reasoning, not only its final number."""
