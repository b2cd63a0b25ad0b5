/**
 * Database creation options and the connection limit, against a real apiserver and PostgreSQL
 * (admin not superuser): what `pg_database` shows for each option, the limit kept in line
 * afterwards, the creation options immutable at admission, and bad values refused with a reason
 * (the CRD's patterns and enums first, the server's own answer for a name it does not know, the
 * major for a provider it does not have).
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { startEnv, type TestEnv } from "./helpers/env.ts";
import { conditionOf, type Obj, readyOf, readyReason } from "./helpers/fixtures.ts";
import { selectedMajor } from "./helpers/pg_install.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

function database(ns: string, name: string, spec: string): string {
  return `apiVersion: dbtether.io/v1alpha1
kind: Database
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterRef: { name: main }
  deletionPolicy: Delete
${spec}`;
}

async function row(env: TestEnv, db: string, cols: string): Promise<string> {
  return (await env.pg.superSql(`SELECT ${cols} FROM pg_database WHERE datname = '${db}'`)).trim();
}

async function refusedAtAdmission(env: TestEnv, yaml: string): Promise<string> {
  const r = await env.kube.kubectl(["apply", "-f", "-"], { stdin: yaml });
  assert(r.code !== 0, `refused at admission:\n${yaml}`);
  return r.stderr;
}

/** A database dbtether created as the spec says shows no OptionsMatch=False (read on Ready). */
async function noDifferenceReported(env: TestEnv, name: string, ns: string): Promise<void> {
  const d = await env.getJson<Obj>("database", name, ns);
  assertEquals(conditionOf(d, "OptionsMatch"), undefined);
}

Deno.test(
  { name: "Database options: encoding, locale, provider, connection limit", ...opts },
  async (t) => {
    await using env = await startEnv({ pg: true, program: true });
    await env.kube.apply(env.clusterManifest("main"));
    const ns = await env.namespace("dbopts");
    const ready = (name: string) =>
      env.waitPhase("database", name, "Ready", { namespace: ns, timeoutMs: budget("ready") });

    await t.step("encoding, locale and a limit as given; template0 picked for them", async () => {
      await env.kube.apply(database(
        ns,
        "latin",
        "  databaseName: opt_latin\n  encoding: LATIN1\n  locale: C\n  connectionLimit: 3\n",
      ));
      await ready("latin");
      assertEquals(
        await row(
          env,
          "opt_latin",
          "pg_encoding_to_char(encoding), datcollate, datctype, datconnlimit",
        ),
        "LATIN1|C|C|3",
      );
      await noDifferenceReported(env, "latin", ns);
    });

    await t.step("the limit follows the spec; unset leaves it", async () => {
      await env.kube.apply(database(
        ns,
        "latin",
        "  databaseName: opt_latin\n  encoding: LATIN1\n  locale: C\n  connectionLimit: 5\n",
      ));
      await waitFor(
        "the new limit",
        async () => (await row(env, "opt_latin", "datconnlimit")) === "5",
        {
          timeoutMs: budget("react"),
        },
      );
      await env.kube.apply(
        database(ns, "latin", "  databaseName: opt_latin\n  encoding: LATIN1\n  locale: C\n"),
      );
      const o = await waitFor("the change observed", async () => {
        const d = await env.getJson<Obj>("database", "latin", ns);
        return d?.status?.observedGeneration === d?.metadata.generation ? d : undefined;
      }, { timeoutMs: budget("react") });
      assertEquals(readyOf(o)?.status, "True");
      assertEquals(await row(env, "opt_latin", "datconnlimit"), "5");
    });

    await t.step("creation options are immutable, added or changed", async () => {
      assertMatch(
        await refusedAtAdmission(
          env,
          database(ns, "latin", "  databaseName: opt_latin\n  encoding: UTF8\n  locale: C\n"),
        ),
        /encoding is immutable/,
      );
      assertMatch(
        await refusedAtAdmission(
          env,
          database(
            ns,
            "latin",
            "  databaseName: opt_latin\n  encoding: LATIN1\n  locale: C\n  lcCtype: C\n",
          ),
        ),
        /lcCtype is immutable/,
      );
    });

    await t.step(
      "hostile values stop at admission; another tenant's database is no template",
      async () => {
        for (
          const [spec, why] of [
            ['  encoding: "UTF8\'; DROP DATABASE opt_latin; --"\n', /encoding/],
            ["  template: opt_latin\n", /template/],
            ["  icuLocale: und\n", /icuLocale needs localeProvider icu/],
            ["  connectionLimit: 0\n", /connectionLimit must be -1/],
          ] as const
        ) {
          assertMatch(await refusedAtAdmission(env, database(ns, "bad", spec)), why);
        }
        assertEquals(await row(env, "opt_latin", "count(*)"), "1");
      },
    );

    await t.step(
      "a name the server does not know: a reason with the server's message",
      async () => {
        await env.kube.apply(database(ns, "nope", "  databaseName: opt_nope\n  encoding: NOPE9\n"));
        const d = await waitFor("the refusal", async () => {
          const o = await env.getJson<Obj>("database", "nope", ns);
          return readyReason(o) === "SqlFailed" ? o : undefined;
        }, { timeoutMs: budget("react") });
        assertMatch(readyOf(d)!.message, /NOPE9/);
        assertEquals(await row(env, "opt_nope", "count(*)"), "0");
      },
    );

    await t.step("ICU: created on 15+, refused by major before", async () => {
      const major = selectedMajor();
      await env.kube.apply(database(
        ns,
        "icu",
        "  databaseName: opt_icu\n  localeProvider: icu\n  icuLocale: und\n  locale: C\n",
      ));
      if (major < 15) {
        const d = await waitFor("the refusal", async () => {
          const o = await env.getJson<Obj>("database", "icu", ns);
          return readyReason(o) === "DatabaseOptionUnsupported" ? o : undefined;
        }, { timeoutMs: budget("react") });
        assertMatch(readyOf(d)!.message, /PostgreSQL 1[34] does not have it \(15\+\)/);
        assertEquals(await row(env, "opt_icu", "count(*)"), "0");
        return;
      }
      // Whether this server was built with ICU: the superuser tries it once.
      const icu = await env.pg.superSql(
        "CREATE DATABASE icu_probe TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und' " +
          "LOCALE 'C'",
      ).then(async () => {
        await env.pg.superSql("DROP DATABASE icu_probe");
        return "1";
      }, () => "0");
      if (icu === "0") {
        // A server built without ICU answers for itself; the reason carries its message.
        const d = await waitFor("the server's refusal", async () => {
          const o = await env.getJson<Obj>("database", "icu", ns);
          return readyReason(o) === "SqlFailed" ? o : undefined;
        }, { timeoutMs: budget("react") });
        assertMatch(readyOf(d)!.message, /ICU/i);
        return;
      }
      await ready("icu").catch(async (e) => {
        const o = await env.getJson<Obj>("database", "icu", ns);
        throw new Error(`${(e as Error).message}: ${JSON.stringify(readyOf(o))}`);
      });
      assertEquals(await row(env, "opt_icu", "datlocprovider"), "i");
    });

    await t.step("builtin: created on 17+, refused by major before", async () => {
      await env.kube.apply(database(
        ns,
        "builtin",
        "  databaseName: opt_builtin\n  localeProvider: builtin\n  locale: C\n",
      ));
      if (selectedMajor() < 17) {
        const d = await waitFor("the refusal", async () => {
          const o = await env.getJson<Obj>("database", "builtin", ns);
          return readyReason(o) === "DatabaseOptionUnsupported" ? o : undefined;
        }, { timeoutMs: budget("react") });
        assertMatch(readyOf(d)!.message, /does not have it \(17\+\)/);
        assertEquals(await row(env, "opt_builtin", "count(*)"), "0");
        return;
      }
      await ready("builtin");
      assertEquals(await row(env, "opt_builtin", "datlocprovider"), "b");
      await noDifferenceReported(env, "builtin", ns);
    });
  },
);
