/**
 * The options of a Database's CREATE DATABASE, the ones kept in line afterwards (connection
 * limit, IS_TEMPLATE, ALLOW_CONNECTIONS), and what an existing database shows of the creation
 * options that differ from the spec: those are reported, never changed (a different encoding or
 * locale would need a dump and a reload; a different tablespace a move with every session out).
 */
import type { DatabaseInfo } from "./catalog.ts";
import { type DatabaseOptions, refuse } from "./claims.ts";
import { ident, literal } from "./quote.ts";
import type { Ident } from "./quote.ts";
import * as st from "./statements.ts";

/**
 * The CREATE DATABASE options of `o` for a server of `versionNum`, quoted. An encoding or a
 * locale needs template0 (template1 carries its own), unless the template was chosen. Refuses
 * what the server's major cannot do, before anything is sent.
 */
export function createOptions(o: DatabaseOptions, versionNum: number): st.CreateDatabaseOptions {
  const major = Math.floor(versionNum / 10000);
  const since = (what: string, from: number) => {
    if (major < from) {
      refuse(
        "DatabaseOptionUnsupported",
        `Cannot create the database with ${what}: PostgreSQL ${major} does not have it ` +
          `(${from}+); remove it from the Database or use a newer server`,
      );
    }
  };
  if (o.localeProvider === "icu" || o.icuLocale !== undefined) since("localeProvider icu", 15);
  if (o.localeProvider === "builtin") since("localeProvider builtin", 17);
  // Before 15 libc is the only provider, and the option does not exist: nothing to say.
  const provider = o.localeProvider === "libc" && major < 15 ? undefined : o.localeProvider;
  const localized = [o.encoding, o.locale, o.lcCollate, o.lcCtype, provider, o.icuLocale]
    .some((v) => v !== undefined);
  const template = o.template ?? (localized ? "template0" : undefined);
  const lit = (v: string | undefined) => (v === undefined ? undefined : literal(v));
  const out: st.CreateDatabaseOptions = {};
  if (template) out.template = ident(template);
  for (const k of ["encoding", "locale", "lcCollate", "lcCtype", "icuLocale"] as const) {
    const v = lit(o[k]);
    if (v) out[k] = v;
  }
  if (provider) out.localeProvider = literal(provider);
  if (o.tablespace !== undefined) out.tablespace = ident(o.tablespace);
  if (o.allowConnections !== undefined) out.allowConnections = o.allowConnections;
  if (o.connectionLimit !== undefined) out.connectionLimit = o.connectionLimit;
  if (o.isTemplate !== undefined) out.isTemplate = o.isTemplate;
  return out;
}

/** ALTER DATABASE for the options kept in line that differ from what the server shows. */
export function alterOptions(db: Ident, o: DatabaseOptions, info: DatabaseInfo): string[] {
  const out: string[] = [];
  const limit = o.connectionLimit;
  if (limit !== undefined && info.connectionLimit !== undefined && info.connectionLimit !== limit) {
    out.push(st.alterDatabaseConnectionLimit(db, limit));
  }
  if (o.isTemplate !== undefined && info.isTemplate !== undefined) {
    if (info.isTemplate !== o.isTemplate) out.push(st.alterDatabaseIsTemplate(db, o.isTemplate));
  }
  if (o.allowConnections !== undefined && info.allowConnections !== o.allowConnections) {
    out.push(st.alterDatabaseAllowConnections(db, o.allowConnections));
  }
  return out;
}

const PROVIDERS: Record<string, string> = { c: "libc", i: "icu", b: "builtin" };

/** Locale and encoding names compare as the server normalises them (utf8 = UTF-8 = UTF8). */
function norm(v: string): string {
  return v.toLowerCase().replaceAll("-", "");
}

/**
 * The creation options of the spec that the existing database does not have, as
 * `field: spec "x", database "y"`; empty when all match or none is set. The template leaves no
 * trace in the catalog and is not compared.
 */
export function optionDifferences(o: DatabaseOptions, info: DatabaseInfo): string[] {
  const c = info.created;
  if (!c) return [];
  const out: string[] = [];
  const differ = (field: string, want: string | undefined, have: string | undefined) => {
    if (want === undefined || (have !== undefined && norm(want) === norm(have))) return;
    out.push(`${field}: spec ${JSON.stringify(want)}, database ${JSON.stringify(have ?? "")}`);
  };
  differ("encoding", o.encoding, c.encoding);
  differ("lcCollate", o.lcCollate ?? o.locale, c.lcCollate);
  differ("lcCtype", o.lcCtype ?? o.locale, c.lcCtype);
  const provider = c.localeProvider === undefined ? "libc" : PROVIDERS[c.localeProvider];
  differ("localeProvider", o.localeProvider, provider);
  differ("icuLocale", o.icuLocale, c.providerLocale);
  differ("tablespace", o.tablespace, c.tablespace);
  return out;
}
