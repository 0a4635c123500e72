import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRules } from './allowlist.js';
import { forbiddenAddress } from './forbidden-addresses.js';
import { openEgress, type EgressSession, type Lookup } from './proxy.js';

const log = pino({ level: 'silent' });

/** CONNECT host:port through the proxy's unix socket: the status line's code, the body on a refusal, and the tunnel on success. */
function connectVia(
  socketPath: string,
  target: string,
): Promise<{ status: number; body: string; socket?: net.Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'CONNECT', path: target });
    req.on('connect', (res, socket, head: Buffer) => {
      if (res.statusCode === 200) return resolve({ status: 200, body: '', socket: socket as net.Socket });
      let body = head.toString();
      socket.on('data', (d: Buffer) => (body += d.toString()));
      socket.on('close', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function getVia(socketPath: string, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: url, headers: { host: new URL(url).host } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('the install egress proxy', () => {
  let listener: net.Server;
  let port: number;
  let hits = 0;
  let egress: EgressSession;
  // A registry name that resolves to the host (DNS rebinding): the proxy's own resolver is
  // the one asked, and it says 127.0.0.1 for it.
  const lookup: Lookup = async (host) =>
    host === 'rebound.registry.test'
      ? [{ address: '127.0.0.1', family: 4 }]
      : host === 'metadata.registry.test'
        ? [
            { address: '169.254.169.254', family: 4 },
            { address: 'fd00:ec2::254', family: 6 },
          ]
        : Promise.reject(Object.assign(new Error('not found'), { code: 'ENOTFOUND' }));

  beforeAll(async () => {
    listener = net.createServer((s) => {
      hits++;
      s.on('error', () => undefined);
      s.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nLOCAL!');
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    port = (listener.address() as net.AddressInfo).port;
    egress = await openEgress({
      rules: parseRules(
        `rebound.registry.test, rebound.registry.test:${port}, metadata.registry.test, 127.0.0.1:${port}, missing.registry.test`,
      ),
      log,
      lookup,
    });
  });
  afterAll(async () => {
    await egress.close();
    listener.close();
  });

  it('refuses a destination that is not on the list, by CONNECT and by plain HTTP, and counts each', async () => {
    const a = await connectVia(egress.socketPath, 'example.org:443');
    const b = await connectVia(egress.socketPath, 'example.org:443');
    const c = await getVia(egress.socketPath, 'http://example.org/x');
    expect([a.status, b.status, c.status]).toEqual([403, 403, 403]);
    expect(a.body).toContain('refused example.org:443: not an allowed registry');
    expect(egress.report().refused).toEqual(
      expect.arrayContaining([
        { destination: 'example.org:443', reason: 'not an allowed registry', count: 2 },
        { destination: 'example.org:80', reason: 'not an allowed registry', count: 1 },
      ]),
    );
  });

  it('never dials the host or its metadata service, whatever an allowed name resolves to', async () => {
    const rebound = await connectVia(egress.socketPath, `rebound.registry.test:${port}`);
    const literal = await connectVia(egress.socketPath, `127.0.0.1:${port}`);
    const plain = await getVia(egress.socketPath, `http://rebound.registry.test:${port}/`);
    const metadata = await connectVia(egress.socketPath, 'metadata.registry.test:443');
    const metadataHttp = await getVia(egress.socketPath, 'http://metadata.registry.test/latest/meta-data/');
    expect([rebound.status, literal.status, plain.status, metadata.status, metadataHttp.status]).toEqual([
      403, 403, 403, 403, 403,
    ]);
    expect(hits).toBe(0);
    const reasons = Object.fromEntries(egress.report().refused.map((r) => [r.destination, r.reason]));
    expect(reasons[`rebound.registry.test:${port}`]).toBe('resolves to 127.0.0.1 (loopback)');
    expect(reasons[`127.0.0.1:${port}`]).toBe('is 127.0.0.1 (loopback)');
    expect(reasons['metadata.registry.test:443']).toMatch(/^resolves to 169\.254\.169\.254 \(link-local/);
    expect(reasons['metadata.registry.test:80']).toMatch(/link-local/);
    // The control: the same listener answers when dialled directly, so 0 hits means refused.
    const direct = await new Promise<string>((r) => net.connect(port, '127.0.0.1').on('data', (d) => r(d.toString())));
    expect(direct).toContain('LOCAL!');
  });

  it('says why a name that does not resolve was refused, and answers garbage with 400', async () => {
    const missing = await connectVia(egress.socketPath, 'missing.registry.test:443');
    expect(missing.status).toBe(403);
    expect(missing.body).toContain('does not resolve (ENOTFOUND)');
    const bad = await connectVia(egress.socketPath, 'no-port-here');
    expect(bad.status).toBe(400);
  });

  it("forwards a plain HTTP request to the address it checked, not to the host (an operator's mirror on a private network)", async () => {
    // This host's own non-loopback address stands for a mirror on the operator's network.
    const address = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    if (!address) throw new Error('this test needs a non-loopback IPv4 address on the host');
    const seen: string[] = [];
    const mirror = http.createServer((req, res) => {
      seen.push(
        `${req.method} ${req.url} host=${req.headers.host} proxy-authorization=${req.headers['proxy-authorization'] ?? '-'}`,
      );
      res.end('MIRROR');
    });
    await new Promise<void>((r) => mirror.listen(0, address, r));
    const mirrorPort = (mirror.address() as net.AddressInfo).port;
    const session = await openEgress({
      rules: parseRules(`mirror.corp.test:${mirrorPort}`),
      privateNetworks: [`${address}/32`].filter(() => forbiddenAddress(address) !== undefined),
      log,
      lookup: async () => [{ address, family: 4 }],
    });
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        http
          .get(
            {
              socketPath: session.socketPath,
              path: `http://mirror.corp.test:${mirrorPort}/simple/pkg/?q=1`,
              headers: { host: 'elsewhere.test', 'proxy-authorization': 'Basic eDp5' },
            },
            (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            },
          )
          .on('error', reject);
      });
      expect(answer).toEqual({ status: 200, body: 'MIRROR' });
      // The URL's host goes upstream, never a Host header the client chose, nor its proxy credentials.
      expect(seen).toEqual([`GET /simple/pkg/?q=1 host=mirror.corp.test:${mirrorPort} proxy-authorization=-`]);
      expect(session.report()).toEqual({ allowed: 1, refused: [] });
    } finally {
      await session.close();
      mirror.close();
    }
  });

  it('keeps the report bounded however many names the install tries', async () => {
    const flood = await openEgress({ rules: [], log });
    try {
      for (let i = 0; i < 60; i++) await connectVia(flood.socketPath, `h${i}.${'x'.repeat(300)}.example:443`);
      const refused = flood.report().refused;
      expect(refused).toHaveLength(51);
      expect(refused[0]!.destination).toHaveLength(201);
      expect(refused.at(-1)).toEqual({
        destination: 'other destinations',
        reason: 'more than 50 distinct refusals',
        count: 10,
      });
    } finally {
      await flood.close();
    }
  });

  it("tunnels to the registry this host's npm uses (a real TLS handshake and GET through it)", async () => {
    const registry = new URL(execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8', cwd: '/' }).trim());
    const real = await openEgress({ rules: parseRules(registry.href), log });
    try {
      const tunnel = await connectVia(real.socketPath, `${registry.hostname}:${registry.port || 443}`);
      expect(tunnel.status).toBe(200);
      const status = await new Promise<string>((resolve, reject) => {
        const s = tls.connect({ socket: tunnel.socket!, servername: registry.hostname }, () =>
          s.write(
            `GET ${registry.pathname.replace(/\/?$/, '/')}is-number HTTP/1.1\r\nHost: ${registry.host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`,
          ),
        );
        let head = '';
        s.on('data', (d: Buffer) => {
          head += d.toString();
          if (head.includes('\r\n')) resolve(head.split('\r\n')[0]!);
        });
        s.on('error', reject);
      });
      expect(status).toMatch(/^HTTP\/1\.1 200/);
      expect(real.report()).toEqual({ allowed: 1, refused: [] });
    } finally {
      await real.close();
    }
  });
});
