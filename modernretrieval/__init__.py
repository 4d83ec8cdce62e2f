"""modernretrieval: a retrieval evaluation and fine-tuning suite built around ModernBERT.

The command is ``modernretrieval`` (:mod:`modernretrieval.cli`); the Python API is :mod:`modernretrieval.api`.
"""

__version__ = "0.1.0"
