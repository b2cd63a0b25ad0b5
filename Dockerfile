# The dbtether image: one `deno compile`d binary plus the PostgreSQL client tools of every
# supported major version (pg_dump must be at least the server's major version); the list must
# equal SUPPORTED_PG_MAJORS in lib/pg_majors.ts (scripts/dockerfile_test.ts checks it).
# The build stage runs on the build machine and cross-compiles for the image's platform.
FROM --platform=$BUILDPLATFORM denoland/deno:2.9.6 AS build
ARG TARGETARCH
WORKDIR /src
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY . .
# `make compile`'s command (scripts/compile.sh): the least-privilege flags the tests run with.
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && bash scripts/compile.sh "$target" /out/dbtether

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends \
      postgresql-client-13 postgresql-client-14 postgresql-client-15 postgresql-client-16 postgresql-client-17 \
      postgresql-client-18 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/dbtether /usr/local/bin/dbtether
# OCI annotations; the release build passes VERSION and REVISION.
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="dbtether" \
      org.opencontainers.image.description="PostgreSQL databases, users, credentials and backups as Kubernetes resources" \
      org.opencontainers.image.source="https://github.com/dbtether/dbtether" \
      org.opencontainers.image.url="https://github.com/dbtether/dbtether" \
      org.opencontainers.image.documentation="https://github.com/dbtether/dbtether/tree/main/docs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION"
# Nothing is written at run time: the root filesystem can be read-only (the chart mounts only
# a small in-memory /tmp, for the CA file of a DBCluster with caSecretRef).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dbtether"]
CMD ["run"]
