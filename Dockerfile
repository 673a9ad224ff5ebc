# syntax=docker/dockerfile:1
#
# One image with all six binaries. The default is the all-in-one `eventmesh`
# (embedded NATS server, store under /data):
#
#   docker build --build-arg VERSION=v1.2.3 -t eventmesh .
#   docker run --rm -p 8080:8080 -p 4222:4222 -v eventmesh-data:/data \
#     -e INGEST_ADDR=0.0.0.0:8080 -e INGEST_API_KEY \
#     -e NATS_LISTEN=0.0.0.0:4222 -e NATS_USER=eventmesh -e NATS_PASSWORD eventmesh
#
# (INGEST_API_KEY and NATS_PASSWORD are taken from the shell's environment;
# or mount secrets and set INGEST_API_KEY_FILE, NATS_PASSWORD_FILE=/run/secrets/….)
# Beyond loopback the embedded server needs client authentication, as ingest
# needs its key: without NATS_USER/NATS_PASSWORD, NATS_TOKEN or
# NATS_SERVER_CONFIG, eventmesh refuses NATS_LISTEN=0.0.0.0:4222. Clients
# such as `nats` or `eventmesh status` connect with the same user.
#
# The separate binaries run from the same image with another entrypoint, each
# against an external NATS server (NATS_URL); see docker-compose.yml:
#
#   docker run --rm --entrypoint /producer   -e NATS_URL=nats://nats:4222 … eventmesh
#   docker run --rm --entrypoint /webhook    -e NATS_URL=nats://nats:4222 -e WEBHOOK_URL=https://… eventmesh
#   docker run --rm --entrypoint /autoaccept -e NATS_URL=… -e AUTOACCEPT_ENABLED=true -e CONNECTOR_URL=… eventmesh
#   docker run --rm --entrypoint /archiver   -e NATS_URL=… -e ARCHIVE_DSN=postgres://… eventmesh
#   docker run --rm --entrypoint /bridge     -e NATS_URL=… -e BRIDGE_URL_FILE=/run/secrets/bridge-url -e BRIDGE_AMQP_EXCHANGE=… eventmesh
#   docker run --rm --entrypoint /console    -e NATS_URL=… -e ARCHIVE_DSN=postgres://… \
#     -e CONSOLE_ADDR=0.0.0.0:8088 -e CONSOLE_PASSWORD -e CONSOLE_HOSTS=console.example.com eventmesh
#
# `docker run --rm eventmesh --help` (or `--entrypoint /webhook eventmesh --help`)
# lists every variable. Every address defaults to loopback: inside a container
# set INGEST_ADDR, HTTP_ADDR, ARCHIVE_ADDR, CONSOLE_ADDR (and NATS_LISTEN for
# the embedded server) to 0.0.0.0:<port> to reach them from outside it, with
# their keys (INGEST_API_KEY, ARCHIVE_API_KEY, CONSOLE_PASSWORD and
# CONSOLE_HOSTS; NATS_USER and NATS_PASSWORD).
#
# The image has no shell and no curl (distroless): probe /healthz from outside
# the container (an orchestrator's HTTP probe), not with a HEALTHCHECK command.

ARG GO_IMAGE=golang:1.26-bookworm

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# TAGS=otel links the OpenTelemetry SDK and OTLP/HTTP exporter (+7 MB per
# binary); without it spans are not exported (docs/tracing.md). The bridge
# binary is always built with the pubsub and kafka tags, so it speaks every
# BRIDGE_URL scheme; eventmesh only with TAGS="pubsub kafka" (the Pub/Sub
# client adds some 19 MB, Kafka's 3.5 MB and 8 MB of RSS:
# docs/bridge-pubsub-kafka.md).
ARG TAGS=
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags "${TAGS}" \
      -ldflags "-s -w -X github.com/eventmesh/eventmesh/cmd/internal/app.Version=${VERSION}" \
      -o /out/bin/ \
      ./cmd/eventmesh ./cmd/producer ./cmd/webhook ./cmd/autoaccept ./cmd/archiver ./cmd/console \
 && CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags "${TAGS} pubsub kafka" \
      -ldflags "-s -w -X github.com/eventmesh/eventmesh/cmd/internal/app.Version=${VERSION}" \
      -o /out/bin/ ./cmd/bridge \
 && mkdir -p /out/data

# Static binaries (pure Go: CGO_ENABLED=0, SQLite is modernc.org/sqlite), so a
# static base with CA certificates and tzdata, running as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /
# The store of the embedded server and the SQLite archive; owned by the
# non-root user so a named volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV DATA_DIR=/data
# 4222 NATS (embedded server, NATS_LISTEN), 8080 ingest (INGEST_ADDR),
# 8081 archive API (ARCHIVE_ADDR), 8088 console (CONSOLE_ADDR), 9090 health and
# metrics of a consumer binary (HTTP_ADDR).
EXPOSE 4222 8080 8081 8088 9090
ENTRYPOINT ["/eventmesh"]
