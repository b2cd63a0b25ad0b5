/**
 * Runs the helm that scripts/install-helm.sh builds from its Go module (pinned), for the
 * manifest generator and the chart tests. Helm's caches go to a temporary directory so that a
 * run never depends on (or writes to) the user's helm configuration.
 *
 * ```ts
 * const { stdout } = await helm(["template", "dbtether", "chart"], { check: true });
 * ```
 */
const root = new URL("../", import.meta.url).pathname;
const decoder = new TextDecoder();
let cachedBinary: string | undefined;

/** The path of the helm binary, built on first use. */
export async function helmBinary(): Promise<string> {
  if (cachedBinary) return cachedBinary;
  const out = await new Deno.Command("bash", {
    args: [`${root}scripts/install-helm.sh`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("Cannot build helm: scripts/install-helm.sh failed");
  cachedBinary = decoder.decode(out.stdout).trim();
  return cachedBinary;
}

/** What one helm command printed. */
export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `helm <args>` from the repository root; with `check`, a non-zero exit throws. */
export async function helm(
  args: string[],
  opts: { check?: boolean; env?: Record<string, string> } = {},
): Promise<HelmResult> {
  const out = await new Deno.Command(await helmBinary(), {
    args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: {
      HELM_CACHE_HOME: "/tmp/dbtether-helm/cache",
      HELM_CONFIG_HOME: "/tmp/dbtether-helm/config",
      HELM_DATA_HOME: "/tmp/dbtether-helm/data",
      ...opts.env,
    },
  }).output();
  const r = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (opts.check && r.code !== 0) {
    throw new Error(`helm ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r;
}
