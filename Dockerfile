# kube-oidc-authz: the product image. One binary (authz, audit-forwarder);
# the development tools (kube-oidc-dev) are neither built nor copied here.
# Build: docker build -t kube-oidc-authz .
#
# Stage 1 builds the same crate, with the same Cargo.lock, that `make test`
# tests; stage 2 is distroless and runs as the nonroot user (65532).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them. The
# workspace names dev/ as a member, so its manifest must be present; only
# the product package is built (-p), so none of its dependencies are.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY dev/Cargo.toml ./dev/Cargo.toml
RUN mkdir -p src dev/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs dev/src/lib.rs \
    && echo 'fn main() {}' > dev/src/main.rs \
    && cargo build --release --locked -p kube-oidc-authz --bin kube-oidc-authz \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p kube-oidc-authz --bin kube-oidc-authz \
    && install -D -m 0755 target/release/kube-oidc-authz /out/kube-oidc-authz

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kube-oidc-authz /usr/local/bin/kube-oidc-authz
USER 65532:65532
# gRPC ext_authz, operational HTTP (authz); webhook, operational HTTP and
# access log service (audit forwarder).
EXPOSE 9001 8080 8082 8083 8084
ENTRYPOINT ["/usr/local/bin/kube-oidc-authz"]
CMD ["authz"]
