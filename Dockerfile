# Container image of ephemeral-webhook (admission webhook + controller).
#
#   docker build -t ghcr.io/example/ephemeral-webhook:0.1.0 .
#
# Two stages: the Rust toolchain builds the release binary; the image that
# ships is distroless (glibc, CA certificates, no shell, no package manager)
# with that one binary, run as the unprivileged UID/GID 65532 that the
# manifests' securityContext expects. Time zones are compiled into the binary
# (jiff's bundled tzdb), so the image needs no /usr/share/zoneinfo.

# The builder's Debian (bookworm) matches the runtime's (debian12), so the
# binary finds the glibc it was linked against.
ARG RUST_VERSION=1.89
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the registry and target/ between builds; the
# binary is copied out of the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ephemeral-webhook \
    && install -D -m 0755 target/release/ephemeral-webhook /out/ephemeral-webhook

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="ephemeral-webhook" \
      org.opencontainers.image.description="Admission webhook and controller of kubectl-ephemeral" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY LICENSE /licenses/LICENSE
COPY --from=build /out/ephemeral-webhook /usr/local/bin/ephemeral-webhook
USER 65532:65532
# Admission (HTTPS), admin (/livez, /readyz, /metrics) and the receiver of
# GitHub's deliveries (plain HTTP, --receiver-listen; behind an Ingress).
EXPOSE 8443 8080 8090
ENTRYPOINT ["/usr/local/bin/ephemeral-webhook"]
CMD ["serve"]
