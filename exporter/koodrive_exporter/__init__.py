"""Prometheus exporter for KooDrive storage quotas, usage and validity."""

__version__ = "0.1.0"
