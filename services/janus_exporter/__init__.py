"""Janus exporter sidecar: the Janus Admin API and event stream as Prometheus metrics."""
