"""Retrain controller: decides when a production model should be retrained, and proves it paid."""

__version__ = "0.1.0"
