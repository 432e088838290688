# syntax=docker/dockerfile:1
# Quorum: one image for the coordinator and the workers (docs/deploy.md).
#
#   docker build -t quorum .
#   docker run --rm quorum --version
#   docker run --rm --gpus all quorum doctor --connect tcp://HOST:5555 --key ... --server-key ...
#
# Both stages are Debian 12, so that CI can build this file as it is, with stand-ins for the
# two base images made from Debian's archive (scripts/check-image.sh): the official Swift
# image for the build, Debian's slim image for the run. Build arguments:
#   BUILD_IMAGE     the build stage's base: a Swift toolchain on Debian 12
#   RUNTIME_IMAGE   the run stage's base: Debian 12 (another base: docs/deploy.md)
#   CUDA_WHEELS     the pip packages NVRTC and cuBLASLt come from (NVIDIA's wheels); empty:
#                   none, for CPU-only images (CI builds it so: it has no PyPI)
#   PIP_INDEX_URL   where pip finds them (default: PyPI); PIP_CERT, the CA bundle for it
#                   behind a TLS-inspecting proxy (a file the build mounts)
#   QUORUM_TARGET_CPU  the CPU the kernels are compiled for (Package.swift; default haswell)
#   QUORUM_UID      the non-root user's id
#   QUORUM_VERSION, QUORUM_REVISION  labels
ARG BUILD_IMAGE=swift:6.3.1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------
# Build: the same scripts CI runs. setup.sh --build installs the -dev packages (and the
# data set), build-release.sh links the Swift runtime statically and installs bin/quorum,
# and runtime-deps.sh checks that every library the binary needs is in the runtime list.
FROM ${BUILD_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

COPY scripts/setup.sh scripts/
RUN scripts/setup.sh --build \
    && mkdir -p /usr/share/datasets/fashion-mnist \
    && rm -rf /var/lib/apt/lists/*

COPY . .
ARG QUORUM_TARGET_CPU=haswell
RUN --mount=type=cache,target=/src/.build \
    QUORUM_TARGET_CPU="${QUORUM_TARGET_CPU}" PREFIX=/opt/quorum scripts/build-release.sh \
    && scripts/runtime-deps.sh check /opt/quorum/bin/quorum

# ---------------------------------------------------------------------------------------
# The CUDA libraries the backend opens at run time, NVRTC and cuBLASLt, from NVIDIA's pip
# wheels (the ones PyTorch installs), flattened into one folder. The driver is not here: it
# comes from the host through the NVIDIA Container Toolkit (`--gpus`). Empty CUDA_WHEELS
# leaves the folder empty and pip out.
FROM ${RUNTIME_IMAGE} AS cuda-libraries
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG CUDA_WHEELS="nvidia-cuda-nvrtc-cu12==12.8.93 nvidia-cublas-cu12==12.8.4.1"
ARG PIP_INDEX_URL=""
ARG PIP_CERT=""
# CUDA_WHEELS is split into its packages on purpose (SC2086).
# hadolint ignore=DL3008,DL3013,SC2086
RUN mkdir -p /cuda/lib64 \
    && if [ -n "${CUDA_WHEELS}" ]; then \
         apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
              python3-venv ca-certificates \
         && python3 -m venv /tmp/wheels \
         && PIP_INDEX_URL="${PIP_INDEX_URL:-https://pypi.org/simple}" \
              /tmp/wheels/bin/pip install --quiet --no-deps --no-cache-dir \
                ${PIP_CERT:+--cert "${PIP_CERT}"} ${CUDA_WHEELS} \
         && find /tmp/wheels/lib -path '*/site-packages/nvidia/*/lib/*' \
              \( -name 'libnvrtc.so.*' -o -name 'libnvrtc-builtins.so.*' -o -name 'libcublasLt.so.*' \) \
              -exec cp -a {} /cuda/lib64/ \; \
         && rm -rf /tmp/wheels /var/lib/apt/lists/*; \
       fi

# ---------------------------------------------------------------------------------------
# Run: Debian 12 plus only the packages of scripts/runtime-packages.txt and the CUDA
# libraries above.
FROM ${RUNTIME_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ARG RUNTIME_IMAGE
ARG QUORUM_VERSION=dev
ARG QUORUM_REVISION=unknown
ARG QUORUM_UID=10001
LABEL org.opencontainers.image.title="quorum" \
      org.opencontainers.image.description="Quorum: distributed k-fold ensemble training of small-image classifiers (coordinator and GPU workers in one image)" \
      org.opencontainers.image.version="${QUORUM_VERSION}" \
      org.opencontainers.image.revision="${QUORUM_REVISION}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}" \
      org.opencontainers.image.documentation="docs/deploy.md"

COPY scripts/runtime-packages.txt scripts/runtime-deps.sh /tmp/quorum-runtime/
RUN bash /tmp/quorum-runtime/runtime-deps.sh install \
    && rm -rf /tmp/quorum-runtime /var/lib/apt/lists/*

# The volumes' mount points belong to the user, so that named volumes start out writable
# by it (keys generated into /keys, results into /srv/quorum/runs).
RUN groupadd --gid "${QUORUM_UID}" quorum \
    && useradd --no-log-init --uid "${QUORUM_UID}" --gid quorum --create-home \
        --home-dir /home/quorum --shell /usr/sbin/nologin quorum \
    && mkdir -p /srv/quorum/runs /keys \
    && chown quorum:quorum /srv/quorum /srv/quorum/runs /keys

COPY --from=cuda-libraries /cuda/ /usr/local/cuda/
COPY --from=build /opt/quorum/ /usr/local/
COPY --from=build /usr/share/datasets/fashion-mnist/ /usr/share/datasets/fashion-mnist/
COPY --chmod=0755 scripts/docker-healthcheck.sh /usr/local/bin/quorum-healthcheck
COPY --chown=quorum:quorum examples/ /srv/quorum/examples/
COPY --chown=quorum:quorum cluster/experiments/ /srv/quorum/experiments/

# The CUDA backend looks for NVRTC and cuBLASLt under CUDA_HOME first (docs/cuda.md).
ENV CUDA_HOME=/usr/local/cuda

# Relative run directories (run_directory: runs/NAME) land in the runs volume.
WORKDIR /srv/quorum
VOLUME ["/srv/quorum/runs", "/keys"]
USER ${QUORUM_UID}:${QUORUM_UID}

# 5555: coordinator <-> workers (ZeroMQ, CURVE). 8750: the coordinator's status endpoint.
EXPOSE 5555 8750
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
    CMD ["quorum-healthcheck"]
ENTRYPOINT ["quorum"]
CMD ["--help"]
