# kube-oidc-authz: one binary for every role (authz, audit-forwarder, and the
# development tools). Build: docker build -t kube-oidc-authz .
#
# Stage 1 builds the same crate, with the same Cargo.lock, that `make test`
# tests; stage 2 is distroless and runs as the nonroot user (65532).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/check.rs \
    && cargo build --release --locked \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
COPY envoy ./envoy
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/kube-oidc-authz /out/kube-oidc-authz

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kube-oidc-authz /usr/local/bin/kube-oidc-authz
USER 65532:65532
# gRPC ext_authz, operational HTTP (authz); webhook, operational HTTP and
# access log service (audit forwarder).
EXPOSE 9001 8080 8082 8083 8084
ENTRYPOINT ["/usr/local/bin/kube-oidc-authz"]
CMD ["authz"]
