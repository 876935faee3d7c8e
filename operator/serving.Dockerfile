# syntax=docker/dockerfile:1
# The default serving image for managed mode (MODELRELEASE_DEFAULT_IMAGE): `modelrelease serve` downloads
# the pinned model, refuses to start unless its digest is MODEL_DIGEST, then runs `mlflow models serve` on
# that local copy; pyfunc and scikit-learn flavours (scikit-learn ships with mlflow), boto3 for S3 stores.
# Build from the repository root:
#   docker build -f operator/serving.Dockerfile -t modelrelease-serving:0.1.0 .
# Other flavours: --build-arg EXTRA_PACKAGES="xgboost==3.1.2" (any pip requirement specifiers).
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ARG MLFLOW_VERSION=3.17.2
ARG BOTO3_VERSION=1.44.8
ARG EXTRA_PACKAGES=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY operator/modelrelease operator/modelrelease
# EXTRA_PACKAGES is split into words on purpose: it is a list of requirement specifiers. The modelrelease
# package goes in without its dependencies: `modelrelease serve` needs only what mlflow brings.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint requirements.lock \
       "mlflow==${MLFLOW_VERSION}" "boto3==${BOTO3_VERSION}" ${EXTRA_PACKAGES} \
    && /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 serving \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin serving
COPY --from=build /opt/venv /opt/venv
# The model is downloaded into TMPDIR (/tmp/model): mount an emptyDir at /tmp when the root filesystem is
# read-only.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PORT'] + '/ping', timeout=4)"]
# The operator sets MODEL_URI (models:/<name>/<version>) and MODEL_DIGEST on every serving pod, and runs
# `modelrelease serve --port <port>` as the container's command.
ENTRYPOINT ["/bin/sh", "-c", "exec modelrelease serve --port \"$PORT\""]
