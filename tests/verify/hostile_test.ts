/**
 * Hostile input (issue 13): one corpus of strings (quotes, semicolons, comment markers,
 * backslashes, psql meta-commands and variables, NUL, a lone UTF-16 surrogate, 64-byte and
 * reserved names, template and shell injection) put into every string field a tenant controls
 * that reaches SQL or a storage key: Database `databaseName`, `extensions`, `encoding` and
 * `lcCollate`, DatabaseUser `username` and `additionalGrants[].tables`, Backup
 * `filenameTemplate`. Each object must be
 * refused at admission, or end with a condition that gives a reason and a message, or be stored
 * exactly as given (the database or role under that very name).
 *
 * Then, for the whole run: the canary table in `postgres` is intact, the admin role unchanged and
 * no superuser added, the server log has no syntax error (every string reached SQL as a quoted
 * literal or identifier), nothing was written outside the storage directory, and the controller
 * is still running with no uncaught error in its log. tests/names_test.ts covers the names that
 * must be created exactly, one by one.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startEnv, type TestEnv } from "../helpers/env.ts";
import { storageYaml } from "../helpers/backup.ts";
import { budget } from "../helpers/timeouts.ts";
import { waitFor } from "../helpers/wait.ts";
import { figure } from "./workload.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const CORPUS = [
  `x"; DROP TABLE canary; --`,
  `x'; DROP TABLE canary; --`,
  `x\\'; DROP TABLE canary; --`,
  `/* c */ x`,
  `-- x`,
  `x\u0000y`,
  `\ud800x`,
  `\\! touch /tmp/dbtether-hostile-shell`,
  `\\gexec`,
  `:'v' :"v" :v`,
  "$(touch /tmp/dbtether-hostile-shell)",
  "{{ .Password }}",
  '{{ printf "%s" .Env }}',
  "${HOME}%s%n",
  "../../../../tmp/escape",
  "a".repeat(64),
  "postgres",
  "template1",
  "pg_catalog",
  "public",
  "UPPER lower",
];

type Cond = { type: string; status: string; reason?: string; message?: string };
type Obj = {
  metadata: { name: string; generation?: number };
  status?: {
    phase?: string;
    observedGeneration?: number;
    conditions?: Cond[];
    databaseName?: string;
    username?: string;
    path?: string;
  };
};

interface Case {
  kind: "database" | "databaseuser" | "backup";
  name: string;
  field: string;
  value: string;
  body: Record<string, unknown>;
}

function cases(ns: string): Case[] {
  const meta = (name: string) => ({ name, namespace: ns });
  const out: Case[] = [];
  CORPUS.forEach((v, i) => {
    const db = (name: string, spec: Record<string, unknown>): Case["body"] => ({
      apiVersion: "dbtether.io/v1alpha1",
      kind: "Database",
      metadata: meta(name),
      spec: { clusterRef: { name: "main" }, deletionPolicy: "Delete", ...spec },
    });
    const user = (name: string, spec: Record<string, unknown>): Case["body"] => ({
      apiVersion: "dbtether.io/v1alpha1",
      kind: "DatabaseUser",
      metadata: meta(name),
      spec: { databaseRef: { name: "base" }, privileges: "readonly", ...spec },
    });
    out.push(
      {
        kind: "database",
        name: `dbn-${i}`,
        field: "databaseName",
        value: v,
        body: db(`dbn-${i}`, { databaseName: v }),
      },
      {
        kind: "database",
        name: `ext-${i}`,
        field: "extensions",
        value: v,
        body: db(`ext-${i}`, { databaseName: `hx_ext_${i}`, extensions: [v] }),
      },
      {
        kind: "database",
        name: `enc-${i}`,
        field: "encoding",
        value: v,
        body: db(`enc-${i}`, { databaseName: `hx_enc_${i}`, encoding: v, lcCollate: v }),
      },
      {
        kind: "databaseuser",
        name: `usr-${i}`,
        field: "username",
        value: v,
        body: user(`usr-${i}`, { username: v }),
      },
      {
        kind: "databaseuser",
        name: `grt-${i}`,
        field: "additionalGrants.tables",
        value: v,
        body: user(`grt-${i}`, {
          username: `hx_grt_${i}`,
          additionalGrants: [{ tables: [v], privileges: ["SELECT"] }],
        }),
      },
      {
        kind: "backup",
        name: `bkp-${i}`,
        field: "filenameTemplate",
        value: v,
        body: {
          apiVersion: "dbtether.io/v1alpha1",
          kind: "Backup",
          metadata: meta(`bkp-${i}`),
          spec: {
            databaseRef: { name: "base" },
            storageRef: { name: "local" },
            filenameTemplate: v,
          },
        },
      },
    );
  });
  return out;
}

/** The outcome of one case, as a user would read it; throws when it is not one of the three. */
async function outcome(env: TestEnv, ns: string, c: Case): Promise<string> {
  const o = await env.getJson<Obj>(c.kind, c.name, ns);
  assert(o, `${c.kind} ${c.name} exists`);
  const ready = o.status?.conditions?.find((x) => x.type === "Ready");
  if (c.kind === "backup") {
    if (o.status?.phase === "Completed") return `stored at ${o.status.path}`;
    assert(ready?.reason && ready.message, `${c.name}: a reason and a message`);
    return `${o.status?.phase} ${ready.reason}`;
  }
  assertEquals(o.status?.observedGeneration, o.metadata.generation, `${c.name} observed`);
  assert(ready?.reason && ready.message, `${c.name}: a reason and a message`);
  if (ready.status !== "True") return `Ready=False ${ready.reason}`;
  // Ready: the name must be on the server exactly as the apiserver stored it (which replaces a
  // lone surrogate with U+FFFD).
  const spec = (o as { spec?: { databaseName?: string; username?: string } }).spec;
  const stored = (c.field === "databaseName" ? spec?.databaseName : spec?.username) ?? c.value;
  const lit = `'${stored.replaceAll("'", "''")}'`;
  if (c.field === "databaseName") {
    assertEquals(o.status?.databaseName, stored, `${c.name} databaseName`);
    assertEquals(
      (await env.pg.superSql(`SELECT count(*) FROM pg_database WHERE datname = ${lit}`)).trim(),
      "1",
      `${c.name}: database ${JSON.stringify(stored)} exists exactly`,
    );
  } else if (c.field === "username") {
    assertEquals(o.status?.username, stored, `${c.name} username`);
    assertEquals(
      (await env.pg.superSql(`SELECT count(*) FROM pg_roles WHERE rolname = ${lit}`)).trim(),
      "1",
      `${c.name}: role ${JSON.stringify(stored)} exists exactly`,
    );
  }
  return "Ready";
}

Deno.test({ name: "hostile input in every tenant string field", ...opts }, async () => {
  const dir = await Deno.makeTempDir({ prefix: "dbtether-hostile-" });
  const store = `${dir}/store`;
  await Deno.mkdir(store);
  try {
    await using env = await startEnv({ pg: true, program: true });
    await env.pg.superSql("CREATE TABLE canary (v text); INSERT INTO canary VALUES ('alive')");
    const adminBefore = await env.pg.superSql(
      `SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = '${env.pg.admin.user}'`,
    );
    const supersBefore = await env.pg.superSql("SELECT count(*) FROM pg_roles WHERE rolsuper");
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("hostile");
    await env.kube.apply(storageYaml("local", { localPath: store }));
    await env.kube.apply(`apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: base, namespace: ${ns} }
spec: { clusterRef: { name: main }, databaseName: hx_base, deletionPolicy: Delete }
`);
    await env.waitPhase("database", "base", "Ready", { namespace: ns, timeoutMs: budget("ready") });

    const all = cases(ns);
    const accepted: Case[] = [];
    const refused: string[] = [];
    for (const c of all) {
      const r = await env.kube.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(c.body) });
      if (r.code === 0) accepted.push(c);
      else {
        assert(r.stderr.trim().length > 0, `${c.name}: refused with a message`);
        refused.push(c.name);
      }
    }
    const since = Date.now();
    const results = new Map<string, string>();
    await waitFor("every accepted object to reach an outcome", async () => {
      for (const c of accepted) {
        if (results.has(c.name)) continue;
        try {
          results.set(c.name, await outcome(env, ns, c));
        } catch { /* not yet */ }
      }
      return results.size === accepted.length;
    }, { timeoutMs: budget("bulk"), intervalMs: 1000 }).catch(async (e) => {
      const left = accepted.filter((c) => !results.has(c.name));
      const why = await Promise.all(left.slice(0, 5).map((c) => outcome(env, ns, c).catch(String)));
      throw new Error(`${(e as Error).message}\n${why.join("\n")}`);
    });

    assertEquals(
      (await env.pg.superSql("SELECT v FROM canary")).trim(),
      "alive",
      "the canary table is intact",
    );
    assertEquals(
      await env.pg.superSql(
        `SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = '${env.pg.admin.user}'`,
      ),
      adminBefore,
      "the admin role is unchanged",
    );
    assertEquals(
      await env.pg.superSql("SELECT count(*) FROM pg_roles WHERE rolsuper"),
      supersBefore,
      "no superuser added",
    );
    const log = await env.pg.readLog();
    const syntax = log.split("\n").filter((l) => /syntax error|unterminated/i.test(l));
    assertEquals(syntax, [], "no statement the server could not parse");
    const outside = [];
    for await (const e of Deno.readDir(dir)) if (e.name !== "store") outside.push(e.name);
    assertEquals(outside, [], "nothing written beside the storage directory");
    await assertNoFile("/tmp/dbtether-hostile-shell");
    assert(env.program, "the program was started");
    const logs = env.program.logs();
    assert(!/Uncaught|panicked/.test(logs), "no uncaught error in the controller's log");
    const exited = await Promise.race([
      env.program.process.status.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
    ]);
    assert(!exited, "the controller is still running");

    const by = new Map<string, number>();
    for (const v of results.values()) {
      const k = v.startsWith("stored at") ? "stored" : v;
      by.set(k, (by.get(k) ?? 0) + 1);
    }
    figure("hostile input: all outcomes reached after", `${(Date.now() - since) / 1000} s`, "bulk");
    figure(
      "hostile input: cases",
      `${all.length} (${refused.length} refused at admission, ${accepted.length} accepted: ${
        [...by].map(([k, n]) => `${n} ${k}`).join(", ")
      })`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

async function assertNoFile(path: string): Promise<void> {
  const there = await Deno.stat(path).then(() => true, () => false);
  assert(!there, `${path} was not created`);
}
