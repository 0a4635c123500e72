import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ANY_HOST, type EgressRule } from '../egress/allowlist.js';
import { removeTree } from '../host-tree.js';
import type { RunResult, Runner } from '../runner.js';

/** Debian's default: skopeo checks no signatures (the digest pins what runs). */
const POLICY = JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] });

export interface SandboxedSkopeo {
  runner: Runner;
  /** The registry, `host[:port]`: the one destination besides the blob hosts it redirects to (HTTPS). */
  registry: string;
  /** The operator's login file, copied in for this command only. */
  authFile?: string;
  privateNetworks?: readonly string[];
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * skopeo in the sandbox, with the install egress as its only way out: a registry (or a
 * redirect it answers with, or a name that resolves elsewhere by the time it is dialled)
 * can then reach only public addresses, through the proxy's checks, never the worker's
 * loopback services or the metadata service. `dir` is its work tree: skopeo writes there
 * (an OCI layout for a copy), and finds the login file and the policy there.
 */
export async function skopeoInSandbox(
  opts: SandboxedSkopeo,
  dir: string,
  args: (files: { auth?: string; policy: string }) => string[],
): Promise<RunResult> {
  const work = path.join(dir, `skopeo-${randomBytes(4).toString('hex')}`);
  await mkdir(path.join(work, 'tmp'), { recursive: true, mode: 0o700 });
  try {
    const policy = path.join(work, 'policy.json');
    await writeFile(policy, POLICY);
    const auth = opts.authFile ? path.join(work, 'auth.json') : undefined;
    if (opts.authFile && auth) await copyFile(opts.authFile, auth);
    const [host, port] = splitHostPort(opts.registry);
    const rules: EgressRule[] = [
      { host, port },
      { host: ANY_HOST, port: 443 },
    ];
    return await opts.runner.run({
      workTree: dir,
      cwd: dir,
      command: ['skopeo', ...args({ ...(auth ? { auth } : {}), policy })].map(shellQuote).join(' '),
      timeoutMs: opts.timeoutMs,
      network: 'registries',
      egress: { rules, privateNetworks: opts.privateNetworks ?? [] },
      // Blobs are staged on disk under the tree, not in the sandbox's /tmp tmpfs.
      env: { TMPDIR: path.join(work, 'tmp') },
      maxOutputBytes: 64 * 1024,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } finally {
    // The login file never outlives the command.
    await removeTree(work);
  }
}

function splitHostPort(registry: string): [string, number] {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(registry);
  const host = (m?.[1] ?? registry).replace(/^\[(.*)\]$/, '$1');
  return [host, m?.[2] ? Number(m[2]) : 443];
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./{}-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
