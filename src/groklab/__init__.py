"""groklab: a laboratory for grokking on modular arithmetic."""

__version__ = "0.1.0"
