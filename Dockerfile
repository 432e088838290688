# syntax=docker/dockerfile:1
# Quorum: one image for the coordinator and the workers (docs/deploy.md).
#
#   docker build -t quorum .
#   docker run --rm quorum --version
#   docker run --rm --gpus all quorum doctor --connect tcp://HOST:5555 --key ... --server-key ...
#
# Build arguments: SWIFT_VERSION (the official Swift image, Ubuntu 24.04), CUDA_VERSION (the
# NVIDIA CUDA runtime image, Ubuntu 24.04; pick one the workers' driver supports),
# QUORUM_TARGET_CPU (the CPU the kernels are compiled for, Package.swift; default haswell),
# QUORUM_UID (the non-root user's id), QUORUM_VERSION and QUORUM_REVISION (labels).
ARG SWIFT_VERSION=6.3.1
ARG CUDA_VERSION=12.8.1

# ---------------------------------------------------------------------------------------
# Build: the same scripts CI runs. setup.sh installs the -dev packages (and the data set),
# build-release.sh links the Swift runtime statically and installs bin/quorum, and
# runtime-deps.sh checks that every library the binary needs is in the runtime list.
FROM swift:${SWIFT_VERSION}-noble AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

COPY scripts/setup.sh scripts/
RUN scripts/setup.sh \
    && mkdir -p /usr/share/datasets/fashion-mnist \
    && rm -rf /var/lib/apt/lists/*

COPY . .
ARG QUORUM_TARGET_CPU=haswell
RUN --mount=type=cache,target=/src/.build \
    QUORUM_TARGET_CPU="${QUORUM_TARGET_CPU}" PREFIX=/opt/quorum scripts/build-release.sh \
    && scripts/runtime-deps.sh check /opt/quorum/bin/quorum

# ---------------------------------------------------------------------------------------
# Run: NVIDIA's CUDA runtime image (cuBLAS, cuBLASLt and NVRTC included; the CUDA backend
# loads them at run time, and the host's driver comes in through the NVIDIA Container
# Toolkit) plus only the Ubuntu packages of scripts/runtime-packages.txt.
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04 AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ARG CUDA_VERSION
ARG QUORUM_VERSION=dev
ARG QUORUM_REVISION=unknown
ARG QUORUM_UID=10001
LABEL org.opencontainers.image.title="quorum" \
      org.opencontainers.image.description="Quorum: distributed k-fold ensemble training of small-image classifiers (coordinator and GPU workers in one image)" \
      org.opencontainers.image.version="${QUORUM_VERSION}" \
      org.opencontainers.image.revision="${QUORUM_REVISION}" \
      org.opencontainers.image.base.name="nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04" \
      org.opencontainers.image.documentation="docs/deploy.md"

COPY scripts/runtime-packages.txt scripts/runtime-deps.sh /tmp/quorum-runtime/
RUN bash /tmp/quorum-runtime/runtime-deps.sh install \
    && rm -rf /tmp/quorum-runtime /var/lib/apt/lists/*

RUN groupadd --gid "${QUORUM_UID}" quorum \
    && useradd --no-log-init --uid "${QUORUM_UID}" --gid quorum --create-home \
        --home-dir /home/quorum --shell /usr/sbin/nologin quorum \
    && mkdir -p /srv/quorum/runs /keys \
    && chown -R quorum:quorum /srv/quorum

COPY --from=build /opt/quorum/ /usr/local/
COPY --from=build /usr/share/datasets/fashion-mnist/ /usr/share/datasets/fashion-mnist/
COPY --chmod=0755 scripts/docker-healthcheck.sh /usr/local/bin/quorum-healthcheck
COPY --chown=quorum:quorum examples/ /srv/quorum/examples/
COPY --chown=quorum:quorum cluster/experiments/ /srv/quorum/experiments/

# The CUDA backend looks for cuBLAS and NVRTC under CUDA_HOME too.
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
