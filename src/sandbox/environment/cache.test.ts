import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/git-fixtures.js';
import { type CacheKind, cacheUsage, Leases, pruneCache, RECORD_FILE } from './cache.js';

const log = pino({ level: 'silent' });

describe('the environment caches, bounded together', () => {
  let root: { dir: string; cleanup: () => void };
  beforeEach(() => {
    root = tempDir('env-cache');
  });
  afterEach(() => root.cleanup());

  /** An entry of `bytes` (as its record says), last used `minutesAgo`. */
  const entry = (kind: CacheKind, name: string, bytes: number, minutesAgo: number) => {
    const dir = path.join(root.dir, kind, name);
    mkdirSync(path.join(dir, 'files'), { recursive: true });
    writeFileSync(path.join(dir, 'files', 'f'), 'x');
    const record = path.join(dir, RECORD_FILE[kind]);
    writeFileSync(record, JSON.stringify({ bytes }));
    const at = new Date(Date.now() - minutesAgo * 60_000);
    utimesSync(record, at, at);
  };
  const names = (kind: CacheKind) =>
    existsSync(path.join(root.dir, kind))
      ? readdirSync(path.join(root.dir, kind)).filter((n) => !n.endsWith('.lock'))
      : [];

  it('counts entries and bytes per kind from the records', async () => {
    entry('images', 'sha256-a', 100, 1);
    entry('images', 'sha256-b', 50, 1);
    entry('setups', 's1', 70, 1);
    mkdirSync(path.join(root.dir, 'deps', 'half-made'), { recursive: true }); // no record: not an entry
    expect(await cacheUsage(root.dir)).toEqual({
      images: { entries: 2, bytes: 150 },
      setups: { entries: 1, bytes: 70 },
      deps: { entries: 0, bytes: 0 },
    });
  });

  it('evicts the least recently used first, until the total fits, across the kinds', async () => {
    entry('images', 'oldest', 400, 50);
    entry('deps', 'old', 300, 40);
    entry('setups', 'recent', 200, 5);
    entry('images', 'newest', 100, 1);
    const evicted = await pruneCache(root.dir, 350, log);
    expect(evicted).toEqual([
      { kind: 'images', name: 'oldest', bytes: 400 },
      { kind: 'deps', name: 'old', bytes: 300 },
    ]);
    expect(names('images')).toEqual(['newest']);
    expect(names('deps')).toEqual([]);
    expect(names('setups')).toEqual(['recent']);
    expect(readdirSync(path.join(root.dir, 'tmp'))).toEqual([]);
    expect(await pruneCache(root.dir, 350, log)).toEqual([]);
  });

  it('never evicts an entry a job holds, and does once it lets go', async () => {
    entry('images', 'held', 400, 50);
    entry('images', 'free', 300, 40);
    const job = new Leases();
    await job.take(root.dir, 'images', 'held');
    expect(await pruneCache(root.dir, 100, log)).toEqual([{ kind: 'images', name: 'free', bytes: 300 }]);
    expect(names('images')).toEqual(['held']);
    await job.releaseAll();
    expect(await pruneCache(root.dir, 100, log)).toEqual([{ kind: 'images', name: 'held', bytes: 400 }]);
  });
});
