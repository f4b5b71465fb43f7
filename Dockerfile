# syntax=docker/dockerfile:1
# Switchboard in a container: a build stage with the Rust toolchain, and a slim runtime stage
# that runs the one binary as an unprivileged user. See docs/operations.md, "Dockerfile".
#
# Build: docker build -t switchboard .
# Run:   docker run -p 8080:8080 -e JWT_SECRET="$(openssl rand -hex 32)" -v sb-data:/data switchboard
#
# The image listens on 0.0.0.0:8080, so it refuses to start without JWT_SECRET (or
# JWT_PUBLIC_KEY): the built-in development secret is only accepted on a loopback BIND_ADDR.
# Several nodes: docker-compose.yml (Postgres, Redis, two nodes, nginx).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# 1. Dependencies only. The manifests of the workspace (the gateway, and bench/loadgen, a
#    workspace member that must be present for Cargo to read the lock file) with empty
#    targets: this layer, the slow one, is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY bench/loadgen/Cargo.toml bench/loadgen/Cargo.toml
# The patched actix-http ([patch.crates-io] in Cargo.toml; vendor/README.md).
COPY vendor ./vendor
RUN mkdir -p src bench/loadgen/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > bench/loadgen/src/main.rs \
    && cargo build --release --locked -p switchboard --bin switchboard \
    && rm -rf src

# 2. The gateway itself. Everything compiled into the binary must be copied here: src/, and
#    migrations/ (embedded by diesel_migrations' embed_migrations!) and clients/demo/dist
#    (include_bytes!). Anything else src/ embeds from outside src/ must be added too.
COPY src ./src
COPY migrations ./migrations
# The demo page at / (include_bytes! in src/api/demo.rs); built and committed, so no npm here.
COPY clients/demo/dist ./clients/demo/dist
# COPY keeps the files' own (older) modification times: touch the crate roots, or Cargo would
# take the empty step-1 build for up to date and ship it.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p switchboard --bin switchboard \
    && cp target/release/switchboard /usr/local/bin/switchboard


FROM debian:bookworm-slim AS runtime

# A fixed UID/GID, so a volume's owner is the same across images and hosts (chown 10001 a host
# folder before mounting it at /data).
ARG SB_UID=10001
RUN groupadd --system --gid "${SB_UID}" switchboard \
    && useradd --system --uid "${SB_UID}" --gid switchboard --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin switchboard \
    && mkdir -p /data \
    && chown switchboard:switchboard /data \
    && chmod 0750 /data

COPY --from=build /usr/local/bin/switchboard /usr/local/bin/switchboard
COPY deploy/healthcheck.sh /usr/local/lib/switchboard/healthcheck.sh

# Numeric, so that runAsNonRoot-style checks can tell it is not root without /etc/passwd.
USER ${SB_UID}:${SB_UID}
WORKDIR /data
VOLUME ["/data"]

# No JWT_SECRET here on purpose (see above). SQLite in the volume by default; set DATABASE_URL
# to postgres://… (and REDIS_URL, NODE_ID) for several nodes.
ENV BIND_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/switchboard.db \
    RUST_LOG=info

EXPOSE 8080

# SIGTERM drains (sockets closed with 1001) within SHUTDOWN_GRACE_S (10 s by default): give
# `docker stop` more than that (`docker stop -t 20`; compose: stop_grace_period).
STOPSIGNAL SIGTERM

# GET /healthz over bash's /dev/tcp (no curl in this image): healthy on an HTTP 200. It reads
# the port from BIND_ADDR.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "/usr/local/lib/switchboard/healthcheck.sh"]

ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
