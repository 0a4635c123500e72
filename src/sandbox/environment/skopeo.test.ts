import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/git-fixtures.js';
import { createRunner } from '../create-runner.js';
import { skopeoInSandbox } from './skopeo.js';

// skopeo for a registry the operator does not list runs in the sandbox, behind the install
// egress: whatever the registry answers (a redirect, a name that resolves to loopback), it
// cannot reach the worker's own services.

const runner = createRunner('bwrap', pino({ level: 'silent' }));

describe('skopeo in the sandbox', () => {
  let dir: { dir: string; cleanup: () => void };
  const hits: string[] = [];
  const hostService = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
  });
  let port = 0;

  beforeAll(async () => {
    dir = tempDir('skopeo-sandbox');
    await new Promise<void>((r) => hostService.listen(0, '127.0.0.1', r));
    port = (hostService.address() as AddressInfo).port;
  });
  afterAll(() => {
    hostService.close();
    dir.cleanup();
  });

  it("never reaches a service on the worker's loopback, whatever the registry is called", async () => {
    const r = await skopeoInSandbox({ runner, registry: `127.0.0.1:${port}`, timeoutMs: 60_000 }, dir.dir, (f) => [
      '--policy',
      f.policy,
      'inspect',
      '--tls-verify=false',
      `docker://127.0.0.1:${port}/x/y:1`,
    ]);
    expect(r.exitCode).not.toBe(0);
    expect(hits).toEqual([]);
    expect(r.output).toMatch(/connection refused|refused|forbidden/i);
  });

  it('reaches a public registry through the proxy, with TLS, its login file and policy inside', async () => {
    // registry.npmjs.org is reachable wherever the tests run (npm ci needs it); it is not an
    // OCI registry, so skopeo fails after a TLS handshake and an HTTP answer through the proxy.
    const r = await skopeoInSandbox({ runner, registry: 'registry.npmjs.org', timeoutMs: 60_000 }, dir.dir, (f) => [
      '--policy',
      f.policy,
      'inspect',
      'docker://registry.npmjs.org/issue-agent/none:1',
    ]);
    expect(r.exitCode).not.toBe(0);
    expect(r.egress?.allowed).toBeGreaterThan(0);
    expect(r.egress?.refused).toEqual([]);
    expect(r.output).not.toMatch(/x509|certificate|proxyconnect|no such host/i);
  });
});
