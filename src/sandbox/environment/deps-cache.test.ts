import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/git-fixtures.js';
import { DepsCache, type DepsKey } from './deps-cache.js';

const log = pino({ level: 'silent' });

describe('the dependency cache', () => {
  let root: { dir: string; cleanup: () => void };
  let cache: DepsCache;
  const dir = (...p: string[]) => path.join(root.dir, ...p);
  const write = (file: string, text: string) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  };
  const KEY: DepsKey = {
    repository: 'https://github.test/o/a.git',
    environment: 'sha256:aa',
    command: 'npm ci',
    manifests: { 'package-lock.json': '1' },
  };

  beforeEach(() => {
    root = tempDir('deps-cache');
    cache = new DepsCache({ dataDir: dir('data'), log });
  });
  afterEach(() => root.cleanup());

  it('keeps what an install wrote and copies it into the next tree, links as links', async () => {
    write(dir('a/node_modules/left-pad/index.js'), 'module.exports = 1;\n');
    write(dir('a/.issue-agent/venv/pyvenv.cfg'), 'home = /usr/bin\n');
    symlinkSync('/usr/bin/python3', dir('a/.issue-agent/venv/python3'));
    const key = DepsCache.key(KEY);
    const kept = await cache.save(key, dir('a'), ['node_modules', '.issue-agent/venv', '.issue-agent/go/mod']);
    expect(kept?.bytes).toBeGreaterThan(0);

    mkdirSync(dir('b'));
    expect(await cache.restore(key, dir('b'))).toEqual({
      dirs: ['node_modules', '.issue-agent/venv'],
      bytes: kept!.bytes,
    });
    expect(readFileSync(dir('b/node_modules/left-pad/index.js'), 'utf8')).toBe('module.exports = 1;\n');
    expect(readlinkSync(dir('b/.issue-agent/venv/python3'))).toBe('/usr/bin/python3');
    // A copy, not the entry itself: the job's commands may change it freely.
    writeFileSync(dir('b/node_modules/left-pad/index.js'), 'changed');
    mkdirSync(dir('c'));
    await cache.restore(key, dir('c'));
    expect(readFileSync(dir('c/node_modules/left-pad/index.js'), 'utf8')).toBe('module.exports = 1;\n');
    expect(readdirSync(dir('data/environments/tmp'))).toEqual([]);
  });

  it('keeps no setuid bit, counts the disk a file takes (not its sparse size), and is private', async () => {
    write(dir('a/node_modules/.bin/tool'), '#!/bin/sh\n');
    chmodSync(dir('a/node_modules/.bin/tool'), 0o4755);
    // 1 GiB that takes no disk: counted at its size, it would evict every other entry.
    writeFileSync(dir('a/node_modules/sparse.bin'), '');
    truncateSync(dir('a/node_modules/sparse.bin'), 1024 ** 3);
    mkdirSync(dir('data/environments'), { recursive: true, mode: 0o755 });
    const key = DepsCache.key(KEY);
    const kept = await cache.save(key, dir('a'), ['node_modules']);
    expect(kept!.bytes).toBeLessThan(1024 * 1024);
    expect(statSync(dir('data/environments')).mode & 0o777).toBe(0o700);
    mkdirSync(dir('b'));
    await cache.restore(key, dir('b'));
    expect(statSync(dir('b/node_modules/.bin/tool')).mode & 0o7777).toBe(0o755);
  });

  it('is a different entry for another repository, environment, command or manifest', () => {
    const keys = new Set(
      [
        KEY,
        { ...KEY, repository: 'https://github.test/o/b.git' },
        { ...KEY, environment: 'sha256:bb' },
        { ...KEY, command: 'npm install' },
        { ...KEY, manifests: { 'package-lock.json': '2' } },
      ].map((k) => DepsCache.key(k)),
    );
    expect(keys.size).toBe(5);
    expect(DepsCache.key({ ...KEY, manifests: { b: '1', a: '2' } })).toBe(
      DepsCache.key({ ...KEY, manifests: { a: '2', b: '1' } }),
    );
  });

  it('never keeps what a link in the tree points at', async () => {
    write(dir('host-secrets/venv/key.pem'), 'SECRET');
    write(dir('host-secrets/node_modules/x.js'), 'SECRET');
    mkdirSync(dir('a'));
    // The install (repository code) made these links in its tree.
    symlinkSync(dir('host-secrets'), dir('a/.issue-agent'));
    symlinkSync(dir('host-secrets/node_modules'), dir('a/node_modules'));
    const key = DepsCache.key(KEY);
    expect(await cache.save(key, dir('a'), ['node_modules', '.issue-agent/venv'])).toBeUndefined();
    expect(existsSync(dir('data/environments/deps', key))).toBe(false);
  });

  it('never writes through a link in the tree, and never merges into what the tree has', async () => {
    write(dir('a/.issue-agent/venv/lib/x.py'), 'x = 1\n');
    write(dir('a/node_modules/x.js'), 'x');
    const key = DepsCache.key(KEY);
    await cache.save(key, dir('a'), ['.issue-agent/venv', 'node_modules']);

    // The repository committed `.issue-agent` as a link to a host directory.
    mkdirSync(dir('outside'));
    mkdirSync(dir('b'));
    symlinkSync(dir('outside'), dir('b/.issue-agent'));
    expect(await cache.restore(key, dir('b'))).toBeUndefined();
    expect(readdirSync(dir('outside'))).toEqual([]);
    expect(existsSync(dir('b/node_modules'))).toBe(false);

    // A tree that has its own node_modules keeps it as it is.
    write(dir('c/node_modules/own.js'), 'own');
    expect(await cache.restore(key, dir('c'))).toBeUndefined();
    expect(readdirSync(dir('c/node_modules'))).toEqual(['own.js']);
    expect(lstatSync(dir('c/node_modules')).isDirectory()).toBe(true);
  });
});
