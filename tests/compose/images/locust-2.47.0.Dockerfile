# Test-only stand-in for locustio/locust:2.47.0: Locust 2.47.0 from PyPI (wheelhouse) on the Python
# stand-in, with what loadtest/Dockerfile relies on from the upstream image: the `locust`
# entrypoint, a `locust` user, pip usable as root. Users pull the real image.
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir locust==2.47.0 \
    && useradd --create-home --shell /bin/bash locust
WORKDIR /home/locust
USER locust
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
