import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/git-fixtures.js';
import { startTestRedis, type TestRedis } from '../../../test/helpers/redis.js';
import { sandboxArgv } from '../bwrap-host.js';
import { probeBwrap } from '../bwrap-probe.js';
import { resolveLimits } from '../limits.js';
import { createRunner } from '../create-runner.js';
import type { RunRequest } from '../runner.js';
import { parseRules } from './allowlist.js';
import { EGRESS_SOCKET } from './inside.js';

/**
 * The install step with the default network, 'registries', on the real bubblewrap runner:
 * its only way out is the egress proxy, to the registries on the list.
 */
const log = pino({ level: 'silent' });
const runner = createRunner('bwrap', log);
// The registry this host's npm uses; CI reaches it.
const registry = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8', cwd: '/' }).trim();

describe("the install step's egress", () => {
  let work: { dir: string; cleanup: () => void };
  let listener: net.Server;
  let port: number;
  let hits = 0;
  let redis: TestRedis;
  let req: (command: string, extra?: Partial<RunRequest>) => RunRequest;

  beforeAll(async () => {
    work = tempDir('egress-wt');
    execFileSync('git', ['init', '-q', work.dir]);
    listener = net.createServer((s) => {
      hits++;
      s.on('error', () => undefined);
      s.end('LOCAL-SERVICE\n');
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    port = (listener.address() as net.AddressInfo).port;
    redis = await startTestRedis();
    // The worst an operator could write: the host's own services on the list. The address check still refuses them.
    req = (command, extra) => ({
      workTree: work.dir,
      command,
      timeoutMs: 60_000,
      network: 'registries',
      egress: { rules: parseRules(`${registry}, 127.0.0.1:${port}, localhost:${redis.port}`) },
      ...extra,
    });
  }, 30_000);
  afterAll(async () => {
    listener.close();
    await redis.stop();
    work.cleanup();
  });

  it("reaches neither a listener on the host's 127.0.0.1 nor the test's redis-server, directly or through the proxy", async () => {
    const direct = (p: number, send = '') =>
      `node -e "const s=require('net').connect(${p},'127.0.0.1');s.on('connect',()=>{s.write('${send}');s.on('data',d=>{console.log('REACHED',String(d).trim());process.exit(0)})}).on('error',e=>{console.log('ERR',e.code);process.exit(3)})"`;
    const viaProxy = (target: string) =>
      `node -e "require('http').request({host:'127.0.0.1',port:3128,method:'CONNECT',path:'${target}'}).on('connect',(r,s,h)=>{console.log('PROXY',r.statusCode,String(h).trim());process.exit(r.statusCode===200?0:4)}).on('error',e=>{console.log('ERR',e.code);process.exit(3)}).end()"`;
    const res = await runner.run(
      req(
        [
          direct(port),
          direct(redis.port, 'PING\\r\\n'),
          viaProxy(`127.0.0.1:${port}`),
          viaProxy(`localhost:${redis.port}`),
          viaProxy('169.254.169.254:80'),
        ].join('; '),
      ),
    );
    expect(res.output).not.toContain('REACHED');
    expect(res.output).not.toMatch(/PONG|NOAUTH/);
    expect(hits).toBe(0);
    expect(res.output.match(/ERR ECONNREFUSED/g)).toHaveLength(2);
    expect(res.output).toContain(`PROXY 403 issue-agent egress: refused 127.0.0.1:${port}: is 127.0.0.1 (loopback)`);
    expect(res.output).toContain(`PROXY 403 issue-agent egress: refused localhost:${redis.port}: resolves to`);
    expect(res.egress?.refused.map((r) => r.destination).sort()).toEqual(
      [`127.0.0.1:${port}`, '169.254.169.254:80', `localhost:${redis.port}`].sort(),
    );
    // The control: with the host's network the same probe reaches the listener, so the refusals above are the sandbox's doing.
    const full = await runner.run(req(direct(port), { network: 'full' }));
    expect(full.output).toContain('REACHED LOCAL-SERVICE');
  });

  it('runs npm ci of a real package through the proxy to the registry', async () => {
    const integrity = 'sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==';
    writeFileSync(
      path.join(work.dir, 'package.json'),
      JSON.stringify(
        { name: 'egress-demo', version: '1.0.0', private: true, dependencies: { 'is-number': '7.0.0' } },
        null,
        2,
      ),
    );
    writeFileSync(
      path.join(work.dir, 'package-lock.json'),
      JSON.stringify({
        name: 'egress-demo',
        version: '1.0.0',
        lockfileVersion: 3,
        requires: true,
        packages: {
          '': { name: 'egress-demo', version: '1.0.0', dependencies: { 'is-number': '7.0.0' } },
          'node_modules/is-number': {
            version: '7.0.0',
            resolved: 'https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz',
            integrity,
            engines: { node: '>=0.12.0' },
          },
        },
      }),
    );
    const res = await runner.run(req('npm ci --ignore-scripts --no-audit --no-fund', { timeoutMs: 120_000 }));
    expect(res.output).not.toContain('ERR!');
    expect(res.exitCode).toBe(0);
    expect(JSON.parse(readFileSync(path.join(work.dir, 'node_modules/is-number/package.json'), 'utf8')).version).toBe(
      '7.0.0',
    );
    expect(res.egress?.allowed).toBeGreaterThan(0);
    expect(res.egress?.refused).toEqual([]);
  }, 150_000);

  it('gives the tests and the agent no egress at all: no socket, no proxy settings', async () => {
    const res = await runner.run(req(`ls ${EGRESS_SOCKET} 2>&1; env | grep -ci proxy`, { network: 'none' }));
    expect(res.output).toMatch(/No such file/);
    expect(res.output.trim().split('\n').at(-1)).toBe('0');
    const { tools, mode } = probeBwrap(process.env.PATH ?? '/usr/bin:/bin');
    const argv = sandboxArgv({
      tools,
      mode,
      workTree: work.dir,
      cwd: work.dir,
      command: 'true',
      network: 'registries',
      egressSocket: '/tmp/x.sock',
      env: {},
      readOnlyPaths: [],
      limits: resolveLimits(5_000, 2),
    });
    expect(argv).not.toContain('--share-net');
    expect(argv[argv.indexOf(EGRESS_SOCKET) - 2]).toBe('--bind');
    expect(existsSync(EGRESS_SOCKET)).toBe(false);
  });
});
