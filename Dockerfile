# Build: docker build -t switchboard .
# Run:   docker run -p 8080:8080 -e JWT_SECRET=... -v sb-data:/data switchboard
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim
RUN useradd --system --home /data --create-home switchboard
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /data
ENV BIND_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/switchboard.db \
    RUST_LOG=info
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
