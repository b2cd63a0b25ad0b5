/**
 * `make demo` as a newcomer meets it, in a copy of this checkout: with ports 8080 and 8081 taken
 * by another program it still reaches Ready for every example, logs in with a generated Secret,
 * and every command of its closing tour works; a controller that exits at start stops the demo
 * at once with the controller's own error.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { budget } from "./helpers/timeouts.ts";
import { waitFor } from "./helpers/wait.ts";

const root = new URL("../", import.meta.url).pathname;

/** A copy of the checkout's files (tracked and new, not ignored) sharing node_modules. */
async function copyCheckout(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dbtether-demo-" });
  const ls = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: root,
    stdout: "piped",
  }).output();
  for (const f of new TextDecoder().decode(ls.stdout).split("\0").filter(Boolean)) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(`${root}${f}`);
    } catch {
      continue; // deleted in the work tree
    }
    await Deno.mkdir(`${dir}/${f}`.replace(/\/[^/]+$/, ""), { recursive: true });
    if (info.isSymlink) {
      // A link git tracks (charts/dbtether → ../chart) stays a link, relative as it is.
      await Deno.symlink(await Deno.readLink(`${root}${f}`), `${dir}/${f}`);
      continue;
    }
    await Deno.copyFile(`${root}${f}`, `${dir}/${f}`);
    await Deno.chmod(`${dir}/${f}`, info.mode ?? 0o644);
  }
  await Deno.symlink(`${root}node_modules`, `${dir}/node_modules`);
  return dir;
}

/** Listens on `port` if it is free (it stays taken either way while the listener lives). */
function occupy(port: number): Deno.Listener | undefined {
  try {
    return Deno.listen({ hostname: "127.0.0.1", port });
  } catch {
    return undefined; // someone else holds it already: taken all the same
  }
}

function startDemo(dir: string, env: Record<string, string> = {}) {
  // Its own process group, so Ctrl-C (SIGINT) reaches make and the demo alike, as in a terminal.
  const child = new Deno.Command("setsid", {
    args: ["make", "-s", "demo"],
    cwd: dir,
    env: { DBTETHER_DEMO_TIMEOUT: String(budget("bulk") / 1000), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const d = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) out += d.decode(c, { stream: true });
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let code: number | undefined;
  const status = child.status.then((s) => code = s.code);
  return {
    output: () => out,
    exitCode: () => code,
    async stop(): Promise<number> {
      if (code === undefined) {
        try {
          Deno.kill(-child.pid, "SIGINT");
        } catch { /* gone */ }
      }
      await status;
      await pumps;
      return code!;
    },
  };
}

async function bash(script: string, cwd: string) {
  const out = await new Deno.Command("bash", {
    args: [script],
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("make demo with ports 8080 and 8081 taken: every example Ready, the login and the tour work", async () => {
  const dir = await copyCheckout();
  const taken = [occupy(8080), occupy(8081)];
  const demo = startDemo(dir);
  try {
    await waitFor("the demo to reach its tour", () => {
      if (demo.exitCode() !== undefined) throw new Error(`the demo exited:\n${demo.output()}`);
      return demo.output().includes("Press Ctrl-C to stop everything");
    }, { timeoutMs: budget("bulk") });
    const out = demo.output();
    assert(/All \d+ resources are ready\./.test(out), out);
    // Every row of the table has its PHASE filled with a final phase.
    const table = out.slice(out.lastIndexOf("$ kubectl get dbclusters"), out.indexOf("Logging in"));
    const rows = table.split("\n").filter((l) => /\.dbtether\.io\/|bujarmurati\.com\//.test(l));
    assert(rows.length >= 12, table);
    for (const row of rows) assert(/\b(Ready|Connected|Completed)\b/.test(row), row);
    assert(out.includes("my-app-readonly|my_app"), "the demo did not log in with the Secret");
    assert(!out.includes("Address already in use"), out);
    // dbtether plan on the converged examples: the controllers' planners find nothing to do.
    const plan = out.slice(out.indexOf("$ dbtether plan -f examples/"), out.indexOf("(exit "));
    assert(out.includes("$ dbtether plan -f examples/") && out.includes("(exit 0)"), plan || out);
    assert(/ {2}no changes\n/.test(plan) && !/ {2}sql/.test(plan), plan);
    const login = await bash(".dev/tour/login.sh", dir);
    assertEquals(login.code, 0, login.stderr);
    assert(/my-app-readonly \| my_app/.test(login.stdout), login.stdout);
    const backup = await bash(".dev/tour/backup-restore.sh", dir);
    assertEquals(backup.code, 0, backup.stderr);
    assert(/tour-restore .*Completed/.test(backup.stdout), backup.stdout);
    const rotate = await bash(".dev/tour/rotate.sh", dir);
    assertEquals(rotate.code, 0, rotate.stdout + rotate.stderr);
    assert(rotate.stdout.includes("rotated: the Secret holds a new password"), rotate.stdout);
    // Ctrl-C: the demo stops its controller and servers; make itself reports the interrupt (130).
    const code = await demo.stop();
    assert(demo.output().includes("\nStopping ..."), demo.output());
    assert(code === 0 || code === 130, `exit ${code}`);
  } finally {
    await demo.stop();
    for (const l of taken) l?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("make demo stops at once, non-zero, with the controller's error when the controller exits", async () => {
  const dir = await copyCheckout();
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const addr = `127.0.0.1:${(blocker.addr as Deno.NetAddr).port}`;
  const demo = startDemo(dir, {
    DBTETHER_DEMO_CONTROLLER_ARGS: `--metrics-bind-address ${addr}`,
  });
  try {
    await waitFor("the demo to exit", () => demo.exitCode() !== undefined, {
      timeoutMs: budget("ready"),
    });
    assert(demo.exitCode() !== 0, demo.output());
    const out = demo.output();
    assert(out.includes("The dbtether controller exited"), out);
    assert(
      out.includes(`Cannot listen on ${addr} for --metrics-bind-address: address already in use`),
      out,
    );
    assert(!out.includes("dbtether is running"), out);
  } finally {
    await demo.stop();
    blocker.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
