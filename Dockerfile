# syntax=docker/dockerfile:1.7
# IRU Responder images: the worker and the API server (starter serve), built
# from one multi-stage file. Both run as an unprivileged user on a minimal
# Debian base. SoftHSM2 is in the runtime image for development; production
# mounts its HSM vendor's PKCS#11 module and sets IRU_HSM_MODULE.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# cgo: the PKCS#11 client loads the HSM module with dlopen.
RUN CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X github.com/iru-responder/responder/internal/version.Version=${VERSION}" \
      -o /out/ ./worker ./starter

FROM debian:12.12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates softhsm2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 iru \
 && useradd --uid 10001 --gid iru --home-dir /var/lib/iru --shell /usr/sbin/nologin iru \
 && install -d -o iru -g iru -m 0700 /var/lib/iru /var/lib/softhsm/tokens
COPY --from=build /out/worker /out/starter /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/iru

FROM runtime AS worker
ENTRYPOINT ["/usr/local/bin/worker"]

FROM runtime AS api
ENTRYPOINT ["/usr/local/bin/starter"]
CMD ["serve"]
