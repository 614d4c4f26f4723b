# Test-only stand-in for prom/node-exporter:v1.5.0: Debian's prometheus-node-exporter 1.5.0 package,
# laid out as upstream where compose.yaml relies on it: /bin/node_exporter as entrypoint, user
# nobody, `wget` for the healthcheck.
FROM debian:bookworm-slim
ARG VERSION=1.5.0
RUN apt-get update \
    && apt-get install -y --no-install-recommends "prometheus-node-exporter=${VERSION}-*" wget \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-node-exporter /bin/node_exporter
USER nobody
EXPOSE 9100
ENTRYPOINT ["/bin/node_exporter"]
