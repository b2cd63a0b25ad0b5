/**
 * A throwaway CA and server certificates for the test PostgreSQL servers (P-256 keys: fast to
 * make on a loaded 2-core box), made with openssl; kube.ts makes the apiserver's CA and certificates with the same functions.
 */

/** The PEM files of one CA and one server certificate it signed. */
export interface TestCerts {
  caFile: string;
  certFile: string;
  keyFile: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot run openssl ${args[0]}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** A CA named `cn` in `dir` (ca.crt, ca.key). */
export async function makeCa(dir: string, cn: string): Promise<string> {
  await openssl(dir, [
    "req",
    "-x509",
    ...EC,
    "-days",
    "3650",
    "-subj",
    `/CN=${cn}`,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return `${dir}/ca.crt`;
}

/**
 * A new key `<file>.key` and its certificate `<file>.crt` for `subj`, signed by the CA that
 * {@link makeCa} made in `dir`, with the X.509 extensions `ext` (one `name=value` per line).
 */
export async function signCert(
  dir: string,
  o: { file: string; subj: string; ext: string[] },
): Promise<void> {
  const { file } = o;
  await Deno.writeTextFile(`${dir}/${file}.ext`, o.ext.join("\n") + "\n");
  await openssl(dir, [
    "req",
    ...EC,
    "-subj",
    o.subj,
    "-keyout",
    `${file}.key`,
    "-out",
    `${file}.csr`,
  ]);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${file}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "3650",
    "-out",
    `${file}.crt`,
    "-extfile",
    `${file}.ext`,
  ]);
}

/**
 * A CA and a server certificate for `subjectAltName` (e.g. "IP:127.0.0.1,DNS:localhost") in
 * `dir`: ca.crt, server.crt, server.key.
 */
export async function makeServerCerts(
  dir: string,
  o: { cn: string; subjectAltName: string },
): Promise<TestCerts> {
  const caFile = await makeCa(dir, `${o.cn}-ca`);
  await signCert(dir, {
    file: "server",
    subj: `/CN=${o.cn}`,
    ext: [
      `subjectAltName=${o.subjectAltName}`,
      "extendedKeyUsage=serverAuth",
      "keyUsage=critical,digitalSignature",
    ],
  });
  return { caFile, certFile: `${dir}/server.crt`, keyFile: `${dir}/server.key` };
}
