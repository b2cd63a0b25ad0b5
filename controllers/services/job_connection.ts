/**
 * The libpq connection of pg_dump, psql and pg_restore for a resolved DBCluster. libpq reads
 * its CA from a file, never from the environment, so a CA PEM from the DBCluster's Secret is
 * written to a private temporary file for the lifetime of one job and removed afterwards.
 */
import type { PgConnection } from "../../backup/dump_command.ts";
import type { ServerConfig } from "../postgres/pool.ts";

/** A connection and the cleanup of whatever it needed on disk. */
export interface JobConnection extends AsyncDisposable {
  connection: PgConnection;
}

/** Pure: the libpq settings for `database` on `server`, given the CA file path if any. */
export function pgConnection(
  server: ServerConfig,
  database: string,
  opts: { caFile?: string; applicationName?: string } = {},
): PgConnection {
  const mode = server.sslMode ?? "require";
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database,
    sslmode: mode,
    // libpq: with a root certificate, require also verifies the chain (as our pool does).
    ...(opts.caFile && mode !== "disable" ? { sslrootcert: opts.caFile } : {}),
    ...(opts.applicationName ? { applicationName: opts.applicationName } : {}),
  };
}

/** The connection for one job; writes the CA to a 0600 temp file when the server has one. */
export async function openJobConnection(
  server: ServerConfig,
  database: string,
  opts: { applicationName?: string } = {},
): Promise<JobConnection> {
  // A token is fetched when the job starts: libpq takes the password once, at connect.
  const password = server.passwordSource ? await server.passwordSource.token() : server.password;
  let caFile: string | undefined;
  if (server.ca && (server.sslMode ?? "require") !== "disable") {
    caFile = await Deno.makeTempFile({ prefix: "dbtether-ca-", suffix: ".pem" });
    await Deno.chmod(caFile, 0o600);
    await Deno.writeTextFile(caFile, server.ca);
  }
  return {
    connection: pgConnection(
      { ...server, password },
      database,
      { ...opts, ...(caFile ? { caFile } : {}) },
    ),
    async [Symbol.asyncDispose]() {
      if (caFile) await Deno.remove(caFile).catch(() => {});
    },
  };
}
