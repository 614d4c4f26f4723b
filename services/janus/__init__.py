"""Janus SFU node: configuration templates and their renderer (package ``janus_node``)."""
