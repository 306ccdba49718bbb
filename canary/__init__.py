"""Honeytoken canary patient records for hospital and lab databases."""

__version__ = "0.1.0"
