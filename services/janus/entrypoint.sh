#!/bin/sh
# Render this node's Janus configuration from JANUS_* variables, then become Janus.
set -eu
python3 -m janus_node.render --out "${JANUS_CONFIG_DIR}"
exec janus -F "${JANUS_CONFIG_DIR}" -o -p "${JANUS_CONFIG_DIR}/janus.pid"
