#!/bin/sh
# Render this node's Janus configuration from JANUS_* variables, then become Janus.
set -eu
# JANUS_INTERFACE (the address Janus gathers ICE candidates on) is known only at run time in a
# container: unless it is set, take the container's own address (what its hostname resolves to;
# Compose gives each container one on its network). Loopback would gather nothing: refuse it.
if [ -z "${JANUS_INTERFACE:-}" ]; then
    JANUS_INTERFACE=$(python3 -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')
    case "$JANUS_INTERFACE" in
        127.*|"")
            echo "janus-node: JANUS_INTERFACE is unset and the hostname resolves to '$JANUS_INTERFACE'; set JANUS_INTERFACE" >&2
            exit 2
            ;;
    esac
    export JANUS_INTERFACE
fi
python3 -m janus_node.render --out "${JANUS_CONFIG_DIR}"
exec janus -F "${JANUS_CONFIG_DIR}" -o -p "${JANUS_CONFIG_DIR}/janus.pid"
