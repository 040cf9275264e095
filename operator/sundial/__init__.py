"""Sundial: a Kubernetes operator that deploys software at a chosen moment."""

__version__ = "0.1.0"
