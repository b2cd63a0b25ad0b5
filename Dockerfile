# The dbtether image: one `deno compile`d binary plus the PostgreSQL client tools of every
# supported major version (pg_dump must be at least the server's major version); the list must
# equal SUPPORTED_PG_MAJORS in lib/pg_majors.ts (scripts/dockerfile_test.ts checks it).
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY . .
# The same least-privilege flags the tests run with (scripts/permissions.sh).
RUN deno compile $(bash scripts/permissions.sh | tr '\n' ' ') --include backup/gzip_worker.ts --output /out/dbtether main.ts

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends \
      postgresql-client-13 postgresql-client-14 postgresql-client-15 postgresql-client-16 postgresql-client-17 \
      postgresql-client-18 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/dbtether /usr/local/bin/dbtether
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dbtether"]
CMD ["run"]
