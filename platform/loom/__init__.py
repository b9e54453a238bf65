"""Loom: a low-code, metadata-driven business platform."""

__version__ = "0.1.0"
