"""mlwarden: guards the machine-learning supply chain."""

__version__ = "0.1.0"
