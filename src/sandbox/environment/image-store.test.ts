import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRegistry, type TestRegistry } from '../../../test/helpers/oci-registry.js';
import { parseImageRef } from './image-ref.js';
import { EnvironmentError, ImageStore, registryError } from './image-store.js';

const log = pino({ level: 'silent' });

describe('image references', () => {
  it('reads registry, path, tag and digest as docker does', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const cases: Array<[string, object]> = [
      [
        'python:3.12-bookworm',
        { registry: 'docker.io', path: 'library/python', tag: '3.12-bookworm', digest: undefined },
      ],
      ['ghcr.io/org/img', { registry: 'ghcr.io', path: 'org/img', tag: 'latest', digest: undefined }],
      ['org/img:1', { registry: 'docker.io', path: 'org/img', tag: '1', digest: undefined }],
      ['localhost:5000/a/b:2', { registry: 'localhost:5000', path: 'a/b', tag: '2', digest: undefined }],
      [`127.0.0.1:5055/t/x@${digest}`, { registry: '127.0.0.1:5055', path: 't/x', tag: undefined, digest }],
      [`python:3@${digest}`, { registry: 'docker.io', path: 'library/python', tag: '3', digest }],
    ];
    for (const [text, want] of cases) {
      const parsed = parseImageRef(text);
      expect(parsed.ok, text).toBe(true);
      if (parsed.ok) expect(parsed.ref, text).toMatchObject(want);
    }
  });

  it('refuses what is not a reference, saying what one looks like', () => {
    for (const text of ['', 'Python:3', '--help', 'a b', 'img@sha256:123', `x:${'t'.repeat(200)}`]) {
      const parsed = parseImageRef(text);
      expect(parsed.ok, text).toBe(false);
      if (!parsed.ok) expect(parsed.why).toMatch(/image reference/);
    }
  });
});

describe("skopeo's errors", () => {
  const said = (line: string) => ({
    output: `time="x" level=fatal msg="${line.replace(/"/g, '\\"')}"\n`,
    timedOut: false,
    exitCode: 1,
  });
  it('reads a refused connection as unreachable, whatever digits the digest quoted in it holds', () => {
    // Two messages skopeo printed in this suite's runs: digests holding "403" and "404".
    for (const digest of [`sha256:fe82${'0'.repeat(54)}403abc`, `sha256:884c${'1'.repeat(54)}404def`]) {
      const refused = `Error parsing image name "docker://127.0.0.1:34037/o/i@${digest}": pinging container registry 127.0.0.1:34037: Get "http://127.0.0.1:34037/v2/": dial tcp 127.0.0.1:34037: connect: connection refused`;
      expect(registryError('o/i', said(refused)).kind).toBe('unreachable');
    }
  });

  it('still reads statuses and messages a registry answers with', () => {
    expect(registryError('o/i', said('reading manifest 2026 in 127.0.0.1:5000/o/i: manifest unknown')).kind).toBe(
      'not-found',
    );
    expect(registryError('o/i', said('unexpected status code 404 Not Found')).kind).toBe('not-found');
    expect(registryError('o/i', said('unauthorized: authentication required')).kind).toBe('refused');
    expect(registryError('o/i', said('received unexpected HTTP status: 403 Forbidden')).kind).toBe('refused');
  });
});

describe('ImageStore (a real registry on loopback, skopeo and umoci)', () => {
  let registry: TestRegistry;
  let dataDir: string;
  let firstDigest: string;
  const store = (access = { insecureHosts: [registry.host] }) => new ImageStore({ dataDir, access, log });

  beforeAll(async () => {
    registry = await startTestRegistry();
    firstDigest = registry.push('test/tiny', '1', { 'etc/hello.txt': 'hello\n' }, [
      'PATH=/opt/x/bin:/usr/bin',
      'LANG=C',
    ]);
    dataDir = mkdtempSync(path.join(tmpdir(), 'image-store-'));
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('pulls a tag, pins its digest and unpacks it once; a repeat is a cache hit', async () => {
    const first = await store().pull(`${registry.host}/test/tiny:1`);
    expect(first).toMatchObject({
      digest: firstDigest,
      pinned: `${registry.host}/test/tiny@${firstDigest}`,
      env: ['PATH=/opt/x/bin:/usr/bin', 'LANG=C'],
      cwd: '/',
      cached: false,
    });
    expect(readFileSync(path.join(first.rootfs, 'etc/hello.txt'), 'utf8')).toBe('hello\n');
    expect(first.bytes).toBeGreaterThan(0);
    const unpackedAt = statSync(first.rootfs).mtimeMs;

    const again = await store().pull(`${registry.host}/test/tiny:1`);
    expect(again).toMatchObject({ digest: firstDigest, rootfs: first.rootfs, cached: true });
    expect(statSync(again.rootfs).mtimeMs).toBe(unpackedAt);
    expect(readdirSync(path.join(dataDir, 'environments/tmp'))).toEqual([]);
  });

  it('follows a tag that moved to a new digest, and keeps the old one by its digest', async () => {
    const moved = registry.push('test/moving', '1', { 'v.txt': 'one' });
    const a = await store().pull(`${registry.host}/test/moving:1`);
    const next = registry.push('test/moving', '1', { 'v.txt': 'two' });
    expect(next).not.toBe(moved);
    const b = await store().pull(`${registry.host}/test/moving:1`);
    expect(b.digest).toBe(next);
    expect(readFileSync(path.join(b.rootfs, 'v.txt'), 'utf8')).toBe('two');
    expect(readFileSync(path.join(a.rootfs, 'v.txt'), 'utf8')).toBe('one');
    expect((await store().pull(`${registry.host}/test/moving@${moved}`)).cached).toBe(true);
  });

  it('gives two workers pulling one digest at once one whole entry', async () => {
    const digest = registry.push('test/race', '1', { 'r.txt': 'race' });
    const [a, b] = await Promise.all([
      store().pull(`${registry.host}/test/race:1`),
      store().pull(`${registry.host}/test/race:1`),
    ]);
    expect(a.rootfs).toBe(b.rootfs);
    expect(a.digest).toBe(digest);
    expect(readFileSync(path.join(a.rootfs, 'r.txt'), 'utf8')).toBe('race');
    expect(
      readdirSync(path.join(dataDir, 'environments/images')).filter((e) => e.includes(digest.slice(7))),
    ).toHaveLength(1);
    expect(readdirSync(path.join(dataDir, 'environments/tmp'))).toEqual([]);
  });

  it('names the image and the cause when it cannot be pulled, and keeps nothing of it', async () => {
    const images = path.join(dataDir, 'environments/images');
    const entries = () => (existsSync(images) ? readdirSync(images).sort() : []);
    const before = entries();
    const failure = async (reference: string, access?: { insecureHosts: string[] }) => {
      const err = await store(access)
        .pull(reference)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(EnvironmentError);
      return err as EnvironmentError;
    };
    const unknown = await failure(`${registry.host}/test/nothing:1`);
    expect(unknown).toMatchObject({ kind: 'not-found', image: `${registry.host}/test/nothing:1` });
    expect(unknown.message).toMatch(/no such image or tag/);
    expect(await failure(`${registry.host}/test/tiny:no-such-tag`)).toMatchObject({ kind: 'not-found' });
    // Plain HTTP, and the host's own loopback or link-local addresses (its services, the
    // metadata service), only for the registries the operator lists.
    const unlisted = await failure(`${registry.host}/test/tiny:1`, { insecureHosts: [] });
    expect(unlisted).toMatchObject({ kind: 'refused' });
    expect(unlisted.message).toContain(`the registry ${registry.host} is at 127.0.0.1, a loopback address`);
    expect(unlisted.message).toContain('REGISTRY_INSECURE_HOSTS');
    const metadata = await failure('169.254.169.254/latest/meta-data:1');
    expect(metadata).toMatchObject({ kind: 'refused' });
    expect(metadata.message).toMatch(/is at 169\.254\.169\.254, a .* address the worker does not pull from/);
    expect(await failure('Not A Reference')).toMatchObject({ kind: 'bad-reference', image: 'Not A Reference' });
    expect(entries()).toEqual(before);
    const tmp = path.join(dataDir, 'environments/tmp');
    expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  });

  it('refuses an image that unpacks to more than the caches may hold, and keeps nothing of it', async () => {
    // 8 MiB of zeros: a layer of a few KiB that unpacks 1,000 times larger.
    registry.push('test/bomb', '1', { 'zeros.bin': '\0'.repeat(8 * 1024 * 1024) });
    const small = new ImageStore({
      dataDir,
      access: { insecureHosts: [registry.host] },
      log,
      maxBytes: 4 * 1024 * 1024,
    });
    const err = await small.pull(`${registry.host}/test/bomb:1`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ kind: 'too-large' });
    expect((err as EnvironmentError).message).toContain('the image unpacks to more than 4 MiB');
    const images = readdirSync(path.join(dataDir, 'environments/images'));
    expect(
      images
        .filter((e) => !e.endsWith('.lock'))
        .every((e) => existsSync(path.join(dataDir, 'environments/images', e, 'image.json'))),
    ).toBe(true);
    expect(readdirSync(path.join(dataDir, 'environments/tmp'))).toEqual([]);
  });

  it("asks the named registry even for a digest it has: another repository's pull is not this one's", async () => {
    const digest = registry.push('secret-org/internal-tool', '2026', { 'o.txt': 'internal' });
    const first = await store().pull(`${registry.host}/secret-org/internal-tool:2026`);
    expect(first.cached).toBe(false);
    // The same digest under a name the registry does not serve: refused, though it is unpacked here.
    const elsewhere = await store()
      .pull(`${registry.host}/someone-else/anything@${digest}`)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(elsewhere).toMatchObject({ kind: 'not-found' });
    // Served: the cached entry, under the asker's own names.
    const again = await store().pull(`${registry.host}/secret-org/internal-tool@${digest}`);
    expect(again).toMatchObject({
      cached: true,
      digest,
      reference: `${registry.host}/secret-org/internal-tool@${digest}`,
      pinned: `${registry.host}/secret-org/internal-tool@${digest}`,
    });
    expect(readFileSync(path.join(again.rootfs, 'o.txt'), 'utf8')).toBe('internal');
    await registry.stop();
    const gone = await store()
      .pull(`${registry.host}/secret-org/internal-tool@${digest}`)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(gone).toMatchObject({ kind: 'unreachable' });
  });
});
