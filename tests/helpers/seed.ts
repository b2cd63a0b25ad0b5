/**
 * The seed README (the one users followed before dbtether's own docs) and its manifests, for
 * tests that hold us to what it promises. It lives in `shared/seeds/` beside the repository, or
 * beside the folder of worktrees, so it is looked up in each parent directory in turn.
 *
 * ```ts
 * const [secret, cluster, database, user] = await readmeManifests();
 * ```
 */
import type { TestEnv } from "./env.ts";

const SEED = "shared/seeds/004_046c2659edfc0ccf.txt";

/** Path of the seed README; throws when no parent directory of the repository has it. */
export function seedReadmePath(): string {
  let dir = new URL("../../", import.meta.url).pathname;
  for (;;) {
    const parent = new URL("../", `file://${dir}`).pathname;
    try {
      Deno.statSync(`${parent}${SEED}`);
      return `${parent}${SEED}`;
    } catch { /* not here: one level up */ }
    if (parent === dir) throw new Error(`Cannot find ${SEED} in a parent of the repository`);
    dir = parent;
  }
}

/** The ```yaml blocks of the README's Usage section, verbatim. */
export async function readmeManifests(): Promise<string[]> {
  const text = await Deno.readTextFile(seedReadmePath());
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/**
 * Points the README's admin Secret and DBCluster at the test server, the only change the README
 * asks of its users ("replace with your server's"); its endpoint is an example RDS host name.
 */
export async function pointReadmeAtServer(env: TestEnv): Promise<void> {
  const patch = (args: string[], body: unknown) =>
    env.kube.kubectl(["patch", ...args, "--type", "merge", "-p", JSON.stringify(body)], {
      check: true,
    });
  await patch(["secret", "aurora-admin-credentials", "-n", "postgres-operator-system"], {
    stringData: { username: env.pg.admin.user, password: env.pg.admin.password },
  });
  await patch(["dbcluster", "my-aurora-cluster"], {
    // Nothing else: the README's sslMode (the default, require) works, the server speaks TLS.
    spec: { endpoint: env.pg.host, port: env.pg.port },
  });
}
