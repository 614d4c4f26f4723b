# Test-only stand-in for prom/alertmanager:v0.25.0: Debian's prometheus-alertmanager 0.25.0 package,
# laid out as upstream where compose.yaml relies on it: /bin/alertmanager as entrypoint, /alertmanager
# owned by nobody, user nobody, `wget` for the healthcheck.
FROM debian:bookworm-slim
ARG VERSION=0.25.0
RUN apt-get update \
    && apt-get install -y --no-install-recommends "prometheus-alertmanager=${VERSION}-*" wget \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-alertmanager /bin/alertmanager \
    && install -d -o nobody -g nogroup /alertmanager
USER nobody
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
