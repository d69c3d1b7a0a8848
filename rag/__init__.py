"""rag: offline question answering over a folder of news articles, with verified citations.

The package is a pipeline of one module per stage (see docs/architecture.md). Importing
it is cheap: heavy libraries load only when a stage first needs them.
"""

import os

# No model hub, no telemetry: set before any Hugging Face or Chroma import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
