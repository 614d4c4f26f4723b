# Test-only stand-in for python:3.11-slim-bookworm: Debian bookworm's own Python 3.11 (3.11.2) on the
# base built from Debian's packages (build.py). What our Dockerfiles rely on: `python` and `pip` on
# PATH, `pip install` as root into the system site, useradd. No registry and no PyPI inside a build
# here: pip installs from the wheelhouse build.py fetched on the host (copied in at /wheels), so no
# CA or credential of this machine enters any image. Users pull the real image.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip
COPY wheels /wheels
ENV PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=/wheels \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8
CMD ["python3"]
