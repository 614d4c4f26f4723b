#!/bin/sh
# The pod of one SFU node (compose.yaml: sfu-node-0N-pod): it holds the node's network and PID
# namespaces, which Janus and its exporter join. With SFU_NODE_LINK_KBIT set it first gives the
# node's RTP egress a link of that capacity on eth0 (janus_node.link: htb class + bounded bfifo,
# matched by JANUS_RTP_PORT_RANGE; needs NET_ADMIN, granted to the pod only), then drops root and
# every capability and sleeps. Unset: unshaped, as a normal deployment.
set -eu
if [ -n "${SFU_NODE_LINK_KBIT:-}" ]; then
    python3 -m janus_node.link --dev "${SFU_NODE_LINK_DEV:-eth0}" --kbit "$SFU_NODE_LINK_KBIT" \
        ${JANUS_RTP_PORT_RANGE:+--ports "$JANUS_RTP_PORT_RANGE"}
fi
exec setpriv --reuid=10001 --regid=10001 --clear-groups --inh-caps=-all --bounding-set=-all sleep infinity
