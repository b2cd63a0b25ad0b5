/**
 * Runs the dbtether program the way users do: `deno run` with the permission flags `make
 * compile` bakes into the binary (scripts/permissions.sh), with one widening: `--allow-run` also
 * lists the client tools of the test servers (scripts/install-postgres.sh installs them outside
 * the distributions' paths the binary allows), which `pgToolArgs()` hands to the program.
 */
import { clientToolDirs } from "./pg_install.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;
let cachedFlags: string[] | undefined;

export async function permissionFlags(): Promise<string[]> {
  if (cachedFlags) return cachedFlags;
  const out = await new Deno.Command("bash", {
    args: [`${repoRoot}scripts/permissions.sh`],
    stdout: "piped",
  }).output();
  const tools = clientToolDirs().flatMap((d) =>
    ["pg_dump", "pg_restore", "psql"].map((t) => `${d}/${t}`)
  );
  cachedFlags = new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map((f) =>
    f.startsWith("--allow-run=") && tools.length ? `${f},${tools.join(",")}` : f
  );
  return cachedFlags;
}

/** `--pg-tools-dir` for each installed test PostgreSQL with client tools. */
export function pgToolArgs(): string[] {
  return clientToolDirs().flatMap((d) => ["--pg-tools-dir", d]);
}

export interface ProgramOptions {
  env?: Record<string, string>;
  /** Replace the environment entirely (default: inherit PATH/HOME only). */
  clearEnv?: boolean;
  cwd?: string;
  /**
   * Permission flags of the binary to leave out, e.g. `--allow-write` (Deno 2.9 ignores a
   * `--deny-write` given with `--allow-write` and `--allow-run=<paths>`, so narrowing means
   * leaving a flag out).
   */
  withoutPermissions?: string[];
}

function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const keep = ["PATH", "HOME", "DENO_DIR", "TMPDIR"];
  // Tests talk to loopback only: keep the cloud SDKs from probing metadata services (AWS
  // IMDS, GCE metadata) when a test leaves credentials out.
  const env: Record<string, string> = {
    RUST_BACKTRACE: "0",
    NO_COLOR: "1",
    AWS_EC2_METADATA_DISABLED: "true",
    METADATA_SERVER_DETECTION: "none",
  };
  for (const k of keep) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/** `dbtether <args>` as the binary runs it, with its output piped and no stdin. */
async function programCommand(args: string[], opts: ProgramOptions): Promise<Deno.Command> {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...(await permissionFlags()).filter((f) => !opts.withoutPermissions?.includes(f)),
      `${repoRoot}main.ts`,
      ...args,
    ],
    env: baseEnv(opts.env),
    clearEnv: true,
    cwd: opts.cwd ?? repoRoot,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * With DBTETHER_TEST_LOG_DIR set, a stopped program's logs are kept there as `<pid>.log`, to
 * read after a failure (the tests' own output holds only what they assert on).
 */
async function keepLogs(pid: number, text: string) {
  const dir = Deno.env.get("DBTETHER_TEST_LOG_DIR");
  if (!dir) return;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${pid}.log`, text);
}

/** Runs `dbtether <args>` to completion. */
export async function runProgram(args: string[], opts: ProgramOptions = {}) {
  const out = await (await programCommand(args, opts)).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

export interface RunningProgram extends AsyncDisposable {
  readonly process: Deno.ChildProcess;
  /** Everything written to stderr (logs) so far. */
  logs(): string;
  /** Sends a signal and waits for exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/** Starts `dbtether <args>` in the background; logs are collected for assertions. */
export async function startProgram(
  args: string[],
  opts: ProgramOptions = {},
): Promise<RunningProgram> {
  const process = (await programCommand(args, opts)).spawn();
  let text = "";
  const d = new TextDecoder();
  const collect = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) text += d.decode(chunk, { stream: true });
  };
  const pumps = Promise.all([collect(process.stdout), collect(process.stderr)]).catch(() => {});
  let exited: number | undefined;
  const status = process.status.then((s) => (exited = s.code));
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (exited === undefined) {
      try {
        process.kill(signal);
      } catch { /* gone */ }
    }
    const code = await status;
    await pumps;
    await keepLogs(process.pid, text);
    return code;
  };
  return {
    process,
    logs: () => text,
    stop,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
    },
  };
}
