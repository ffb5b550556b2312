"""Dataset analysis: what the user wants (intent), what the data is, whether it serves the intent."""
