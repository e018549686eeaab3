# syntax=docker/dockerfile:1
# The provider image. The build stage turns the package and its dependencies into wheels and installs
# them into a virtualenv; the final stage gets only that virtualenv, on the same pinned base image, so
# no pip cache, source tree or build tool reaches it.
#
#   docker build -t secrets-store-csi-provider:0.1.0 .
#
# Every dependency publishes manylinux wheels for amd64 and arm64, so the build stage needs no C
# compiler. If one ever does not, install build-essential in the build stage only.

FROM python:3.11.14-slim-trixie AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY provider/ provider/

# --no-index in the second step proves the wheel set is complete. pip compiles the bytecode at install
# time, which matters because the root filesystem is read-only at run time.
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/provider \
    && /opt/provider/bin/pip install --no-index --find-links /wheels /wheels/*.whl \
    && /opt/provider/bin/pip uninstall --yes pip

FROM python:3.11.14-slim-trixie

LABEL org.opencontainers.image.title="secrets-store-csi-provider" \
      org.opencontainers.image.description="Secrets Store CSI Driver provider for HashiCorp Vault and Azure Key Vault" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/provider/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=build /opt/provider /opt/provider

# Non-root by default. The DaemonSet runs it as root with every capability dropped, because the
# driver's socket directory on the node is owned by root (deploy/daemonset.yaml says more).
USER 65532:65532

ENTRYPOINT ["secrets-store-csi-provider"]
CMD ["serve"]
