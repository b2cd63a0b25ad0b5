/**
 * The image and the release binaries are compiled by one command: `make compile` and the
 * Dockerfile both run scripts/compile.sh, which passes exactly the permission flags the tests
 * run the program with (scripts/permissions.sh). `make compile` builds every release target and
 * a checksum file. Pure: reads the Makefile and the Dockerfile, asks make and the script to print
 * their commands (nothing is compiled; `deno compile` needs its runtime download).
 */
import { assert, assertEquals } from "../tests/helpers/assert.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function output(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped" }).output();
  assert(out.success, `${cmd} ${args.join(" ")} failed`);
  return new TextDecoder().decode(out.stdout);
}

/** The Dockerfile with backslash-continued lines joined. */
async function dockerfile(): Promise<string> {
  return (await Deno.readTextFile(`${ROOT}Dockerfile`)).replace(/\\\n/g, " ");
}

Deno.test("make compile builds every release target with scripts/compile.sh", async () => {
  const recipe = await output("make", ["-n", "compile"]);
  const loop = /^for t in (.+?); do DENO=\S+ scripts\/compile\.sh \$t dist\/dbtether-\$t/m.exec(
    recipe,
  );
  assert(loop, recipe);
  assertEquals(loop[1]!.split(" "), [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
  ]);
  assert(/sha256sum dbtether-\* > SHA256SUMS/.test(recipe), recipe);
});

Deno.test("the Dockerfile compiles with make compile's command, for the image's platform", async () => {
  const text = await dockerfile();
  const run = /^RUN case "\$TARGETARCH" in (.*) && bash scripts\/compile\.sh "\$target" (\S+)$/m
    .exec(text);
  assert(run, "the build stage runs scripts/compile.sh");
  const arches = Object.fromEntries(
    [...run[1]!.matchAll(/(\w+)\) target=(\S+) ;;/g)].map((m) => [m[1], m[2]]),
  );
  assertEquals(arches, { amd64: "x86_64-unknown-linux-gnu", arm64: "aarch64-unknown-linux-gnu" });
  assert(/^COPY --from=build \/out\/dbtether /m.test(text), "the image takes the compiled binary");
  assertEquals(run[2], "/out/dbtether");
});

Deno.test("scripts/compile.sh passes exactly the program's permission flags", async () => {
  const perms = (await output("bash", ["scripts/permissions.sh"])).trim().split("\n");
  const cmd = (await output("bash", ["scripts/compile.sh", "--print", "T", "OUT"])).trim()
    .split("\n");
  assertEquals(cmd, [
    "deno",
    "compile",
    ...perms,
    "--include",
    "backup/compress_worker.ts",
    "--target",
    "T",
    "--output",
    "OUT",
    "main.ts",
  ]);
});

Deno.test("the image carries OCI labels, runs as non-root and declares no writable volume", async () => {
  const text = await dockerfile();
  for (const key of ["source", "version", "licenses", "revision", "title"]) {
    assert(new RegExp(`org\\.opencontainers\\.image\\.${key}=`).test(text), key);
  }
  assert(/^USER 65532:65532$/m.test(text));
  assert(!/^VOLUME/m.test(text), "nothing in the image is meant to be written");
  const ignore = await Deno.readTextFile(`${ROOT}.dockerignore`);
  for (const p of [".git", "node_modules", "tests", "dist"]) {
    assert(ignore.split("\n").includes(p), `.dockerignore leaves out ${p}`);
  }
});
