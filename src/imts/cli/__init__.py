"""The ``imts`` command.

The CLI draws its own progress bars: the third-party bars (transformers' "Loading weights" and
"Writing model shards", the Hub's downloads, ``datasets``' "Saving the dataset") are switched off here,
before any of those libraries is imported, since each reads its switch once at import.
"""

import os

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
