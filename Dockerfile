# wharf container image: a static binary on distroless, as a non-root user.
#
#   docker build -t wharf --build-arg VERSION="$(git describe --tags --always --dirty)" .
#   printf '%s\n' "$(openssl rand -hex 24)" > admin-token
#   docker run -d --name wharf -p 514:514/udp -p 514:514/tcp -p 9600:9600 \
#     -v "$PWD/admin-token:/run/secrets/wharf_admin_token:ro" wharf
#
# Your own config goes to /etc/wharf/wharf.toml (-v ./wharf.toml:/etc/wharf/wharf.toml:ro);
# deploy/docker/wharf.toml is the one the image ships. Disk buffers and file
# sinks write under /var/lib/wharf (owned by the image's user, 65532): mount
# a volume there to keep them. Docker lets containers bind ports below 1024
# without privileges (net.ipv4.ip_unprivileged_port_start=0); elsewhere
# (Kubernetes with a restricted sysctl profile) bind 5514 instead or add
# NET_BIND_SERVICE. A linted copy of the rules this file keeps is in
# deploy/docker_test.go.

# Build stage: the same Go as go.mod, no cgo, so the binary needs no libc.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wharf ./cmd/wharf \
 && mkdir -p /out/var/lib/wharf

# Run stage: distroless static (CA certificates, tzdata, /etc/passwd with
# the nonroot user; no shell, no package manager).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wharf /usr/bin/wharf
COPY --from=build --chown=65532:65532 /out/var/lib/wharf /var/lib/wharf
COPY deploy/docker/wharf.toml /etc/wharf/wharf.toml
USER 65532:65532
WORKDIR /var/lib/wharf
EXPOSE 514/udp 514/tcp 9600/tcp
ENTRYPOINT ["/usr/bin/wharf"]
CMD ["run", "-c", "/etc/wharf/wharf.toml"]
