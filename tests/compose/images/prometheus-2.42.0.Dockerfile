# Test-only stand-in for prom/prometheus:v2.42.0: Debian's prometheus 2.42.0 package, laid out as the
# upstream image is where compose.yaml relies on it: /bin/prometheus as entrypoint, /prometheus as
# the data folder owned by nobody, user nobody, `wget` for the healthcheck (busybox's in upstream).
FROM debian:bookworm-slim
ARG VERSION=2.42.0
RUN apt-get update \
    && apt-get install -y --no-install-recommends "prometheus=${VERSION}+*" wget \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o nobody -g nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
