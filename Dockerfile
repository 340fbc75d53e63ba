# syntax=docker/dockerfile:1
# The dunning service: a release build in the Rust image, then only the binary, glibc and CA
# certificates in a distroless runtime image (no shell, no package manager), running as the
# non-root user 65532 that the Helm chart's securityContext expects.
#
#   docker build -t dunning .
#   docker run --rm -p 50051:50051 -p 9090:9090 dunning
#
# On its own the container serves on SQLite in /var/lib/dunning (use a volume to keep it);
# set DUNNING_DATABASE_URL to a PostgreSQL URL in production.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The lockfile is honoured; protox compiles the protos in Rust, so no protoc is needed.
RUN cargo build --release --locked --bin dunning \
    && strip target/release/dunning \
    && mkdir -p /out/var/lib/dunning/outbox

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dunning /usr/local/bin/dunning
COPY --from=build --chown=65532:65532 /out/var/lib/dunning /var/lib/dunning
USER 65532:65532
WORKDIR /var/lib/dunning
ENV DUNNING_GRPC_ADDR=0.0.0.0:50051 \
    DUNNING_METRICS_ADDR=0.0.0.0:9090 \
    DUNNING_DATABASE_URL=sqlite:///var/lib/dunning/dunning.db?mode=rwc \
    DUNNING_OUTBOX_DIR=/var/lib/dunning/outbox \
    DUNNING_LOG_FORMAT=json
EXPOSE 50051 9090
ENTRYPOINT ["dunning"]
CMD ["serve"]
