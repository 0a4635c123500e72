import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis.js';

// The README's first command on a machine with nothing configured: `npm start` without
// APP_ID serves Probot's setup page, which registers the GitHub App from app.yml.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let app: ChildProcess | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'ia-setup-'));

afterAll(() => {
  app?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe('first start, nothing configured', () => {
  it('serves the setup page that registers the app from app.yml, and writes no .env before that', async () => {
    copyFileSync(path.join(ROOT, 'app.yml'), path.join(dir, 'app.yml'));
    const port = await freePort();
    // A bare environment: no APP_ID, no key, no secret, no Redis.
    app = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href,
        path.join(ROOT, 'src/main.ts'),
      ],
      {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    app.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    app.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const base = `http://127.0.0.1:${port}`;
    let root: Response | undefined;
    for (let i = 0; i < 300 && !root; i++) {
      if (app.exitCode !== null) throw new Error(`the app exited (${app.exitCode}):\n${output}`);
      root = await fetch(`${base}/`, { redirect: 'manual' }).catch(() => undefined);
      if (!root) await new Promise((r) => setTimeout(r, 100));
    }
    expect(root?.status).toBe(302);
    expect(root?.headers.get('location')).toMatch(/\/probot$/);

    const page = await (await fetch(`${base}/probot`)).text();
    expect(page).toContain('Register GitHub App');
    // The manifest the page posts to GitHub is app.yml's: name, events and permissions.
    const manifestField = /name="manifest"[^>]*?value=(['"])(.*?)\1/s.exec(page);
    expect(manifestField).not.toBeNull();
    const manifest = JSON.parse(
      manifestField![2]!
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'")
        .replace(/&amp;/g, '&'),
    ) as Record<string, unknown>;
    const want = parse(readFileSync(path.join(ROOT, 'app.yml'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({
      name: want.name,
      default_events: want.default_events,
      default_permissions: want.default_permissions,
    });
    expect(output).toContain('Welcome to Probot');
    expect(existsSync(path.join(dir, '.env'))).toBe(false);
  });
});
