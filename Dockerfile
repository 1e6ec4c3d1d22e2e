# syntax=docker/dockerfile:1
# echo-server and echo-client in a small image:
#   docker build -t echo-server:0.1.0 .
#   docker run --rm -p 7878:7878 echo-server:0.1.0
# Settings: flags after the image name, or ECHO_SERVER_* variables (-e).

# Build with the Rust toolchain image; only the binaries leave this stage.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Symbols stay in this stage: the shipped binaries are stripped.
RUN cargo build --release --locked --bins --config profile.release.strip=true

# Run on Debian slim (glibc, as built), as a user without a name or a shell.
FROM debian:bookworm-slim
COPY --from=build /src/target/release/echo-server /src/target/release/echo-client /usr/local/bin/
USER 65532:65532
WORKDIR /
EXPOSE 7878
# SIGTERM drains for up to the shutdown timeout; runtimes wait longer before
# SIGKILL (Docker's default stop timeout is 10 s; compose.yaml and k8s/ set
# theirs above 5 s explicitly).
STOPSIGNAL SIGTERM
ENV ECHO_SERVER_SHUTDOWN_TIMEOUT=5
# Healthy means one message sent and its echo verified, end to end.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["echo-client", "127.0.0.1:7878", "healthcheck", "--timeout", "2"]
ENTRYPOINT ["echo-server"]
