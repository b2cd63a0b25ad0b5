/**
 * `dbtether backups list|forget`: the scheduled Backups of the cluster as the operator sees them,
 * and a schedule's retention policy applied by hand. Same kubeconfig rules as `run`; the
 * deletions go through the same path as the controller's retention (stored.ts).
 */
import { parseArgs } from "node:util";
import { type Backup, BackupKind } from "../../crds/backup.ts";
import { type BackupSchedule, BackupScheduleKind } from "../../crds/backup_schedule.ts";
import { type BackupStorage, BackupStorageKind } from "../../crds/backup_storage.ts";
import { TerminalError } from "../../lib/errors.ts";
import { KubeClient, loadKubeConfig } from "../runtime/kube.ts";
import { type BackupRow, renderRows, scheduleRows } from "./listing.ts";
import { ownsBackup } from "./plan.ts";
import { planRetention } from "./retention_plan.ts";
import { deleteScheduledBackup } from "./stored.ts";

export const BACKUPS_HELP = `Usage: dbtether backups list [-n NAMESPACE] [--schedule NAME] [-o json]
       dbtether backups forget -n NAMESPACE --schedule NAME (--dry-run | --yes) [-o json]

list    the Backups of every BackupSchedule (or of one): name, slot time, size, state,
        whether a restore test verified it, and which retention rule keeps it now
        ("(expires)": the policy would delete it; "-": not a completed backup, never counted)
forget  applies a schedule's retention policy now, with the same safety gates as the
        controller: --dry-run lists what would be deleted, --yes deletes it (the stored dump
        and manifest, then the Backup resource)

Options:
  -n, --namespace NS     only this namespace (default: all namespaces for list)
      --schedule NAME    only this BackupSchedule
  -o, --output FORMAT    table (default) or json
      --kubeconfig PATH  kubeconfig to use; else $KUBECONFIG, ~/.kube/config, in-cluster

Examples:
  dbtether backups list -n shop
  dbtether backups forget -n shop --schedule nightly --dry-run
`;

/** What the command is given by main.ts. */
export interface BackupsCommandIo {
  env: Record<string, string>;
  stdout: { writeSync(b: Uint8Array): number };
  stderr: { writeSync(b: Uint8Array): number };
  exists: (path: string) => boolean;
}

class UsageError extends TerminalError<"InvalidUsage"> {
  constructor(message: string) {
    super("InvalidUsage", message);
  }
}

function parse(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      namespace: { type: "string", short: "n" },
      schedule: { type: "string" },
      output: { type: "string", short: "o", default: "table" },
      kubeconfig: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      yes: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.output !== "table" && values.output !== "json") {
    throw new UsageError(`Invalid --output ${JSON.stringify(values.output)}: use table or json`);
  }
  return { ...values, verb: positionals[0], extra: positionals.slice(1) };
}

/** Runs `dbtether backups ...`; returns the exit code (2: bad usage, 1: a Backup was kept). */
export async function backupsCommand(args: string[], io: BackupsCommandIo): Promise<number> {
  try {
    return await command(args, io);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.writeSync(new TextEncoder().encode(`dbtether backups: ${e.message}\n`));
    return 2;
  }
}

async function command(args: string[], io: BackupsCommandIo): Promise<number> {
  const print = (s: string) => io.stdout.writeSync(new TextEncoder().encode(s));
  let o: ReturnType<typeof parse>;
  try {
    o = parse(args);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${(e as Error).message} (see dbtether backups --help)`);
  }
  if (o.help || o.verb === undefined) {
    print(BACKUPS_HELP);
    return o.help ? 0 : 2;
  }
  if (o.extra.length || (o.verb !== "list" && o.verb !== "forget")) {
    throw new UsageError(
      `Unknown arguments ${JSON.stringify([o.verb, ...o.extra].join(" "))}: use list or forget`,
    );
  }
  const { kc } = loadKubeConfig({
    ...(o.kubeconfig ? { path: o.kubeconfig } : {}),
    env: io.env,
    exists: io.exists,
  });
  const client = new KubeClient(kc);
  const schedules = (await client.list<BackupSchedule>(BackupScheduleKind, {
    ...(o.namespace ? { namespace: o.namespace } : {}),
  })).items.filter((s) => !o.schedule || s.metadata.name === o.schedule);
  const backups = (await client.list<Backup>(BackupKind, {
    ...(o.namespace ? { namespace: o.namespace } : {}),
  })).items;
  const ownedBy = (s: BackupSchedule) =>
    backups.filter((b) => b.metadata.namespace === s.metadata.namespace && ownsBackup(s, b));
  if (o.verb === "list") {
    const rows: BackupRow[] = schedules.flatMap((s) => scheduleRows(s, ownedBy(s), Date.now()));
    print(o.output === "json" ? JSON.stringify(rows, null, 2) + "\n" : renderRows(rows));
    return 0;
  }
  return await forget(client, { o, schedules, ownedBy, io, print });
}

async function forget(
  client: KubeClient,
  c: {
    o: ReturnType<typeof parse>;
    schedules: BackupSchedule[];
    ownedBy: (s: BackupSchedule) => Backup[];
    io: BackupsCommandIo;
    print: (s: string) => void;
  },
): Promise<number> {
  const { o } = c;
  if (!o.namespace || !o.schedule || o["dry-run"] === o.yes) {
    throw new UsageError(
      "forget needs -n NAMESPACE, --schedule NAME and exactly one of " +
        "--dry-run and --yes",
    );
  }
  const s = c.schedules[0];
  if (!s) throw new UsageError(`BackupSchedule ${o.namespace}/${o.schedule} does not exist`);
  const plan = planRetention(s, { owned: c.ownedBy(s), now: Date.now(), manual: true });
  const doomed = plan.kind === "apply" ? [...plan.expired, ...plan.failed] : [];
  const result: { backup: string; deleted: boolean; kept?: string }[] = [];
  for (const b of doomed) {
    if (o["dry-run"]) {
      result.push({ backup: b.metadata.name, deleted: false });
      continue;
    }
    const storage = await client.find<BackupStorage>(BackupStorageKind, {
      name: b.spec.storageRef.name,
    });
    const kept = await deleteScheduledBackup(client, b, { storage, env: c.io.env });
    result.push({
      backup: b.metadata.name,
      deleted: kept === undefined,
      ...(kept ? { kept } : {}),
    });
  }
  if (o.output === "json") {
    c.print(JSON.stringify({ dryRun: o["dry-run"], backups: result }, null, 2) + "\n");
  } else if (plan.kind === "none") {
    c.print("Nothing to forget: the schedule has no successful Backup yet\n");
  } else {
    for (const r of result) {
      const what = o["dry-run"] ? "would delete" : r.deleted ? "deleted" : `kept (${r.kept})`;
      c.print(`${what} ${r.backup}\n`);
    }
    if (!result.length) c.print("Nothing to forget: the policy keeps every Backup\n");
  }
  return result.some((r) => !o["dry-run"] && !r.deleted) ? 1 : 0;
}
