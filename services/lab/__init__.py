"""Native runner of the lab: starts and stops the real components (Janus, and later the rest).

Tests and the ``lab`` command use the same code, so what the tests exercise is what users run.
"""
