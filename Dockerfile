# syntax=docker/dockerfile:1

# Build a static binary. The module and build caches are BuildKit cache
# mounts, so a code change does not download every module again.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# Git metadata is not in the build context (.dockerignore): pass them, e.g.
# --build-arg VERSION=$(git describe --tags --always --dirty) --build-arg COMMIT=$(git rev-parse HEAD)
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
        -o /out/moderator ./cmd/moderator \
    && mkdir -p /out/spool

# distroless/static has CA certificates (for Stream's HTTPS API), tzdata and
# a nonroot user (65532), and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/moderator /moderator
# Owned by nonroot, so the named volume mounted here is writable.
COPY --from=build --chown=nonroot:nonroot /out/spool /spool
COPY rules /rules
# The spool holds verified webhooks while Postgres cannot commit them; it
# must survive a restart of the container, so it is a volume.
ENV MODERATOR_RULES_DIR=/rules \
    MODERATOR_ADDR=:8080 \
    MODERATOR_SPOOL_DIR=/spool
VOLUME /spool
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["/moderator", "healthcheck"]
ENTRYPOINT ["/moderator"]
CMD ["serve"]
