/**
 * A job's checkout: a work tree from the warm mirror (src/sandbox/mirror.ts, worktree.ts)
 * against a plain local `git worktree add` and a fresh `git clone` over HTTP, on a generated
 * repository of 5,000 files and 2,000 commits served by the GitHub stand-in (git smart HTTP);
 * and the bytes a repeat job fetches after one new commit against a fresh clone's and
 * against a pack of just the new objects. Bytes are counted by a proxy in front of the stand-in.
 */
import { execFile, spawn } from 'node:child_process';
import { createSign } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { ensureMirror } from '../src/sandbox/mirror.js';
import { createWorkTree, type WorkTree } from '../src/sandbox/worktree.js';
import { startGitHubStandIn, type GitHubStandIn } from '../test/stand-ins/github/server.js';
import { median, type Figure } from './table.js';

const run = promisify(execFile);
const OWNER = 'octo-org';
const REPO = 'big';

/** A deterministic pseudo-random source (xorshift32), so every run generates the same repository. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const WORDS = [
  'const',
  'value',
  'return',
  'export',
  'function',
  'items',
  'index',
  'result',
  'count',
  'await',
  'config',
  'handler',
  'error',
  'async',
  'string',
  'number',
];

function fileText(rand: () => number, lines: number): string {
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = 3 + (rand() % 8);
    const words: string[] = [];
    for (let k = 0; k < n; k++) words.push(WORDS[rand() % WORDS.length]!);
    out.push(`${'  '.repeat(rand() % 3)}${words.join(' ')};`);
  }
  return `${out.join('\n')}\n`;
}

/**
 * A `git fast-import` stream: one commit with `files` files (in directories of 100), then
 * `commits - 1` commits that each change three of them.
 */
export function generateHistory(opts: { files: number; commits: number; seed?: number }): Buffer {
  const rand = random(opts.seed ?? 42);
  const paths = Array.from(
    { length: opts.files },
    (_, i) => `src/m${String(Math.floor(i / 100)).padStart(2, '0')}/f${String(i).padStart(4, '0')}.ts`,
  );
  const chunks: Buffer[] = [];
  const text = (s: string) => chunks.push(Buffer.from(s));
  const data = (s: string) => {
    const b = Buffer.from(s);
    text(`data ${b.length}\n`);
    chunks.push(b);
    text('\n');
  };
  const start = 1_700_000_000;
  for (let c = 0; c < opts.commits; c++) {
    text(`commit refs/heads/main\ncommitter Bench <bench@example.com> ${start + c * 60} +0000\n`);
    data(c === 0 ? 'Initial import\n' : `Change ${c}\n`);
    const changed = c === 0 ? paths : [0, 1, 2].map(() => paths[rand() % paths.length]!);
    for (const p of changed) {
      text(`M 100644 inline ${p}\n`);
      data(fileText(rand, 25 + (rand() % 20)));
    }
  }
  return Buffer.concat(chunks);
}

function pipeInto(cmd: string, args: string[], input: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${err}`)),
    );
    child.stdin.end(input);
  });
}

/** Bytes of `cmd` output, fed `input` on stdin. */
function outputBytes(cmd: string, args: string[], input: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    let n = 0;
    child.stdout.on('data', (d: Buffer) => (n += d.length));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(n) : reject(new Error(`${cmd} failed (${code})`))));
    child.stdin.end(input);
  });
}

/** An installation token from the stand-in, minted the way the app does (a JWT signed with the App key). */
async function mintToken(gh: GitHubStandIn): Promise<string> {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iat: now - 60, exp: now + 540, iss: String(gh.appId) })}`;
  const jwt = `${unsigned}.${createSign('RSA-SHA256').update(unsigned).sign(gh.privateKey).toString('base64url')}`;
  const r = await fetch(`${gh.apiUrl}/app/installations/${gh.installationId}/access_tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, accept: 'application/vnd.github+json' },
  });
  if (r.status !== 201) throw new Error(`the stand-in minted no token: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { token: string }).token;
}

/** A pass-through HTTP proxy that counts the body bytes each way. */
async function countingProxy(
  target: string,
): Promise<{ url: string; counts: { up: number; down: number }; reset(): void; server: Server }> {
  const t = new URL(target);
  const counts = { up: 0, down: 0 };
  const server = createServer((req, res) => {
    const upstream = request(
      { host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.on('data', (d: Buffer) => (counts.down += d.length));
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.on('data', (d: Buffer) => (counts.up += d.length));
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    reset: () => {
      counts.up = 0;
      counts.down = 0;
    },
    server,
  };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export async function gitFigures(
  opts: { files?: number; commits?: number; runs?: number; log?: (line: string) => void } = {},
): Promise<Figure[]> {
  const files = opts.files ?? 5_000;
  const commits = opts.commits ?? 2_000;
  const runs = opts.runs ?? 5;
  const log = opts.log ?? ((l: string) => console.log(l));
  // On tmpfs where there is one: on this kind of VM, disk write-back makes a 5,000-file
  // checkout take anywhere from 0.2 to 4 s, which would drown the difference being measured.
  const work = mkdtempSync(
    path.join(process.env.BENCH_TMP ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'ia-bench-git-'),
  );
  const gh = await startGitHubStandIn({ dataDir: path.join(work, 'stand-in') });
  const proxy = await countingProxy(gh.url);
  const silent = pino({ level: 'silent' });
  try {
    // The repository, generated straight into the stand-in's bare repository and packed as a
    // long-lived server repository is.
    let t = performance.now();
    const { barePath } = await gh.addRepo({ owner: OWNER, repo: REPO, files: { 'README.md': '# big\n' } });
    await pipeInto(
      'git',
      ['--git-dir', barePath, 'fast-import', '--force', '--quiet'],
      generateHistory({ files, commits }),
    );
    await run('git', ['--git-dir', barePath, 'repack', '-a', '-d', '-q']);
    const count = (await run('git', ['--git-dir', barePath, 'rev-list', '--count', 'main'])).stdout.trim();
    const tracked = (
      await run('git', ['--git-dir', barePath, 'ls-tree', '-r', '--name-only', 'main'], { maxBuffer: 64 << 20 })
    ).stdout
      .trim()
      .split('\n').length;
    log(
      `git: in ${path.dirname(work)}; generated ${tracked} files, ${count} commits in ${((performance.now() - t) / 1000).toFixed(1)} s (fast-import + repack)`,
    );

    const token = await mintToken(gh);
    const cloneUrl = `${proxy.url}/${OWNER}/${REPO}.git`;
    const auth = [
      '-c',
      `http.extraHeader=Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`,
    ];
    const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0' };
    const dataDir = path.join(work, 'data');

    // The first job on this host clones the mirror; later ones find it warm.
    proxy.reset();
    t = performance.now();
    const mirror = await ensureMirror({ dataDir, cloneUrl, token, log: silent });
    const mirrorCloneMs = performance.now() - t;
    const mirrorCloneBytes = proxy.counts.down;

    // A plain local `git worktree add` from a bare copy of the same objects (hard links).
    const plain = path.join(work, 'plain.git');
    await run('git', ['clone', '-q', '--mirror', '--local', mirror, plain]);

    const ours: number[] = [];
    const worktreeAdd: number[] = [];
    const clones: number[] = [];
    const repeatCheckout: number[] = [];
    let cloneBytes = 0;
    for (let i = 0; i < runs; i++) {
      // Interleaved, so drift on a shared machine hits all three alike; removal is not timed.
      let wt: WorkTree | undefined;
      ours.push(
        await timed(
          async () =>
            (wt = await createWorkTree({
              dataDir,
              mirrorPath: mirror,
              jobKey: `bench-${i}`,
              baseBranch: 'main',
              branch: `agent/bench-${i}`,
            })),
        ),
      );
      await wt!.remove();
      repeatCheckout.push(
        await timed(async () => {
          await ensureMirror({ dataDir, cloneUrl, token, log: silent });
          wt = await createWorkTree({
            dataDir,
            mirrorPath: mirror,
            jobKey: `bench-r${i}`,
            baseBranch: 'main',
            branch: `agent/bench-r${i}`,
          });
        }),
      );
      await wt!.remove();
      const wtDir = path.join(work, `wt-${i}`);
      worktreeAdd.push(
        await timed(() => run('git', ['--git-dir', plain, 'worktree', 'add', '-q', '--detach', wtDir, 'main'])),
      );
      await run('git', ['--git-dir', plain, 'worktree', 'remove', '--force', wtDir]);
      const cloneDir = path.join(work, `clone-${i}`);
      proxy.reset();
      clones.push(await timed(() => run('git', [...auth, 'clone', '-q', cloneUrl, cloneDir], { env: gitEnv })));
      cloneBytes = proxy.counts.down;
      rmSync(cloneDir, { recursive: true, force: true });
    }
    log(
      `git: work tree from the warm mirror [${ours.map((x) => x.toFixed(0)).join(', ')}] ms; git worktree add [${worktreeAdd.map((x) => x.toFixed(0)).join(', ')}] ms; fresh clone over HTTP [${clones.map((x) => x.toFixed(0)).join(', ')}] ms; mirror's first clone ${mirrorCloneMs.toFixed(0)} ms, ${mirrorCloneBytes} bytes`,
    );

    // One new commit upstream (one file changed), then the repeat job's mirror fetch.
    const old = (await run('git', ['--git-dir', barePath, 'rev-parse', 'main'])).stdout.trim();
    const change = Buffer.from(
      `commit refs/heads/main\ncommitter Bench <bench@example.com> 1800000000 +0000\ndata 11\nOne change\nfrom ${old}\n` +
        `M 100644 inline src/m00/f0000.ts\ndata 34\n${'export const changed = true;\n'.padEnd(34, '/')}\n`,
    );
    await pipeInto('git', ['--git-dir', barePath, 'fast-import', '--quiet'], change);
    const head = (await run('git', ['--git-dir', barePath, 'rev-parse', 'main'])).stdout.trim();
    const newObjects = (await run('git', ['--git-dir', barePath, 'rev-list', '--objects', `${old}..${head}`])).stdout
      .trim()
      .split('\n').length;
    // What the new objects weigh as the thin pack upload-pack sends a client that has the old ones.
    const minimalPack = await outputBytes(
      'git',
      ['--git-dir', barePath, 'pack-objects', '--stdout', '--revs', '--thin', '-q'],
      `${head}\n^${old}\n`,
    );
    proxy.reset();
    const fetchMs = await timed(() => ensureMirror({ dataDir, cloneUrl, token, log: silent }));
    const fetchBytes = proxy.counts.down;
    const fetchUp = proxy.counts.up;
    const fetched = (await run('git', ['--git-dir', mirror, 'rev-parse', 'refs/heads/main'])).stdout.trim();
    if (fetched !== head) throw new Error(`the mirror fetch did not bring the new commit (${fetched} ≠ ${head})`);
    // The protocol's own share: the same fetch with nothing new.
    proxy.reset();
    await ensureMirror({ dataDir, cloneUrl, token, log: silent });
    const noopBytes = proxy.counts.down;
    log(
      `git: after 1 new commit (${newObjects} new objects): mirror fetch ${fetchBytes} bytes down, ${fetchUp} up, ${fetchMs.toFixed(0)} ms; the same fetch with nothing new: ${noopBytes} bytes; thin pack of the new objects: ${minimalPack} bytes; fresh clone ${cloneBytes} bytes`,
    );

    const wt = median(ours);
    const add = median(worktreeAdd);
    const clone = median(clones);
    return [
      {
        figure: 'work tree from the warm mirror',
        ours: wt,
        baseline: add,
        baselineName: 'git worktree add',
        unit: 'ms',
        goal: { text: '≤ 1.3× git worktree add', met: wt <= 1.3 * add },
      },
      {
        figure: 'work tree from the warm mirror vs fresh clone',
        ours: wt,
        baseline: clone,
        baselineName: 'git clone over HTTP',
        unit: 'ms',
      },
      {
        figure: 'repeat job checkout (fetch + work tree)',
        ours: median(repeatCheckout),
        baseline: clone,
        baselineName: 'git clone over HTTP',
        unit: 'ms',
      },
      {
        figure: 'repeat job fetch after 1 new commit',
        ours: fetchBytes,
        baseline: cloneBytes,
        baselineName: 'fresh clone',
        unit: 'bytes',
      },
      {
        figure: 'repeat job fetch vs the new objects',
        ours: fetchBytes,
        baseline: minimalPack + noopBytes,
        baselineName: 'their pack + a no-op fetch',
        unit: 'bytes',
        goal: { text: 'only the new objects', met: fetchBytes <= 1.1 * (minimalPack + noopBytes) + 512 },
      },
    ];
  } finally {
    await new Promise((r) => proxy.server.close(r));
    await gh.close();
    rmSync(work, { recursive: true, force: true });
  }
}
