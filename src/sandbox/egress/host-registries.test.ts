import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostRegistries } from './host-registries.js';

// Stand-in hosts use the reserved .example domain: no real registry name belongs in this code base.
let root: string;
let home: string;
let bin: string;

async function script(dir: string, name: string, body: string): Promise<void> {
  await writeFile(path.join(dir, name), `#!/bin/sh\n${body}\n`);
  await chmod(path.join(dir, name), 0o755);
}

beforeAll(async () => {
  root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'host-registries-')));
  home = path.join(root, 'home');
  bin = path.join(root, 'bin');
  await mkdir(path.join(home, '.cargo'), { recursive: true });
  await mkdir(path.join(home, '.m2'), { recursive: true });
  await mkdir(bin);
  // Each stand-in fails loudly when called with other arguments or outside the home dir.
  const guard = `[ "$(pwd -P)" = "${home}" ] || { echo "cwd is $(pwd -P), not home" >&2; exit 3; }`;
  await script(
    bin,
    'npm',
    `${guard}
[ "$*" = "config list --json" ] || { echo "unexpected: $*" >&2; exit 2; }
cat <<'EOF'
{ "registry": "https://npm.corp.example/", "@corp:registry": "https://npm-private.corp.example/",
  "@local:registry": "file:///srv/npm/", "cache": "/root/.npm", "replace-registry-host": "npmjs" }
EOF`,
  );
  await script(
    bin,
    'python3',
    `${guard}
case "$*" in
  "-m pip config list") [ -z "$STANDIN_INDEX" ] || echo "global.index-url='$STANDIN_INDEX'"
    printf '%s\\n' ":env:.cert='/etc/ssl/certs/ca.crt'" "global.cert='/etc/ssl/certs/ca.crt'" \\
    "global.extra-index-url='https://extra.corp.example/simple file:///opt/pypi/simple'" \\
    "install.extra-index-url='https://install-extra.corp.example/simple'" ;;
  "-c "*PyPI*) printf '%s\\n' 'https://pypi.builtin.example/simple' 'files.builtin.example' ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac`,
  );
  await script(
    bin,
    'go',
    `${guard}
[ "$*" = "env -json GOPROXY GOSUMDB" ] || { echo "unexpected: $*" >&2; exit 2; }
printf '%s\\n' '{' '"GOPROXY": "https://goproxy.corp.example|https://goproxy2.corp.example/mod,direct",' '"GOSUMDB": "sum.corp.example+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"' '}'`,
  );
  await script(bin, 'cargo', 'exit 0');
  await script(bin, 'mvn', 'exit 0');
  await writeFile(
    path.join(home, '.cargo', 'config.toml'),
    `# the corporate mirror
[source.crates-io]
replace-with = "corp"   # a comment

[source.corp]
registry = "sparse+https://cargo.corp.example/api/index/" # "#" in a comment

[registries]
internal = { index = 'https://git.corp.example/crates-index.git', token = "ignored" }

[[bin]]
registry = "https://not-a-source.example/"
`,
  );
  await writeFile(
    path.join(home, '.m2', 'settings.xml'),
    `<?xml version="1.0"?>
<settings>
  <!-- <mirror><id>old</id><mirrorOf>*</mirrorOf><url>https://old.corp.example/</url></mirror> -->
  <mirrors>
    <mirror><id>corp</id><mirrorOf>*</mirrorOf><url> https://maven.corp.example/repository/all/ </url></mirror>
    <mirror><id>blocker</id><mirrorOf>external:http:*</mirrorOf><url>http://0.0.0.0/</url><blocked>true</blocked></mirror>
  </mirrors>
  <profiles><profile><repositories>
    <repository><id>releases</id><url>https://maven.corp.example/releases/</url></repository>
  </repositories></profile></profiles>
</settings>
`,
  );
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('hostRegistries', () => {
  it('reads every ecosystem from the host tools and config files', async () => {
    const env = { PATH: process.env.PATH, CARGO_REGISTRIES_EXTRA_INDEX: 'sparse+https://cargo-extra.corp.example/' };
    const result = await hostRegistries({ env, home, searchPath: bin });
    expect(result.skipped).toEqual([]);
    expect(result.registries).toEqual([
      { ecosystem: 'npm', url: 'https://npm.corp.example/', from: 'npm config list: registry' },
      { ecosystem: 'npm', url: 'https://npm-private.corp.example/', from: 'npm config list: @corp:registry' },
      { ecosystem: 'pip', url: 'https://extra.corp.example/simple', from: 'pip config: global.extra-index-url' },
      {
        ecosystem: 'pip',
        url: 'https://install-extra.corp.example/simple',
        from: 'pip config: install.extra-index-url',
      },
      { ecosystem: 'pip', url: 'https://pypi.builtin.example/simple', from: 'pip built-in: PyPI.simple_url' },
      { ecosystem: 'pip', url: 'https://files.builtin.example/', from: 'pip built-in: PyPI.file_storage_domain' },
      { ecosystem: 'go', url: 'https://goproxy.corp.example', from: 'go env GOPROXY' },
      { ecosystem: 'go', url: 'https://goproxy2.corp.example/mod', from: 'go env GOPROXY' },
      { ecosystem: 'go', url: 'https://sum.corp.example/', from: 'go env GOSUMDB' },
      {
        ecosystem: 'cargo',
        url: 'https://cargo.corp.example/api/index/',
        from: '~/.cargo/config.toml source.corp.registry',
      },
      {
        ecosystem: 'cargo',
        url: 'https://git.corp.example/crates-index.git',
        from: '~/.cargo/config.toml registries.internal.index',
      },
      { ecosystem: 'cargo', url: 'https://cargo-extra.corp.example/', from: 'env CARGO_REGISTRIES_EXTRA_INDEX' },
      { ecosystem: 'maven', url: 'https://maven.corp.example/repository/all/', from: '~/.m2/settings.xml mirror' },
      { ecosystem: 'maven', url: 'https://maven.corp.example/releases/', from: '~/.m2/settings.xml repository' },
    ]);
  });

  it('prefers a configured pip index, strips its credentials, and skips a tool that times out', async () => {
    const slowBin = path.join(root, 'slow-bin');
    await mkdir(slowBin);
    await script(slowBin, 'go', 'exec sleep 5');
    const env = { PATH: process.env.PATH, PIP_INDEX_URL: 'https://ci:s3cret@pypi.corp.example/simple' };
    const result = await hostRegistries({ env, home, searchPath: [slowBin, bin].join(path.delimiter), timeoutMs: 400 });
    expect(result.registries.filter((r) => r.ecosystem === 'pip')).toEqual([
      { ecosystem: 'pip', url: 'https://pypi.corp.example/simple', from: 'env PIP_INDEX_URL' },
      { ecosystem: 'pip', url: 'https://extra.corp.example/simple', from: 'pip config: global.extra-index-url' },
      {
        ecosystem: 'pip',
        url: 'https://install-extra.corp.example/simple',
        from: 'pip config: install.extra-index-url',
      },
    ]);
    expect(JSON.stringify(result)).not.toContain('s3cret');
    expect(result.registries.filter((r) => r.ecosystem === 'go')).toEqual([]);
    expect(result.skipped).toEqual([{ ecosystem: 'go', why: 'go env timed out after 400 ms' }]);
  });

  it("drops pip's built-in index when pip config sets index-url", async () => {
    const env = { PATH: process.env.PATH, STANDIN_INDEX: 'https://pypi.corp.example/simple' };
    const result = await hostRegistries({ env, home, searchPath: bin });
    expect(result.registries.filter((r) => r.ecosystem === 'pip').map((r) => r.from)).toEqual([
      'pip config: global.index-url',
      'pip config: global.extra-index-url',
      'pip config: install.extra-index-url',
    ]);
  });

  it('lists every ecosystem as skipped, without throwing, when no tool or config exists', async () => {
    const emptyHome = await mkdtemp(path.join(root, 'empty-home-'));
    const result = await hostRegistries({ env: {}, home: emptyHome, searchPath: '' });
    expect(result.registries).toEqual([]);
    expect(result.skipped.map((s) => s.ecosystem).sort()).toEqual(['cargo', 'go', 'maven', 'npm', 'pip']);
    expect(result.skipped.find((s) => s.ecosystem === 'npm')?.why).toBe('npm not found on PATH');
  });

  it('reports the cargo built-in default as skipped, naming the operator variable', async () => {
    const bareHome = await mkdtemp(path.join(root, 'bare-home-'));
    const result = await hostRegistries({ env: {}, home: bareHome, searchPath: bin });
    expect(result.skipped.find((s) => s.ecosystem === 'cargo')?.why).toMatch(/SANDBOX_EGRESS_ALLOW_EXTRA/);
    expect(result.skipped.find((s) => s.ecosystem === 'maven')?.why).toMatch(/SANDBOX_EGRESS_ALLOW_EXTRA/);
  });

  it("agrees with the real host's npm about its registry", async () => {
    const [{ stdout }, result] = await Promise.all([
      promisify(execFile)('npm', ['config', 'get', 'registry'], { cwd: os.homedir() }),
      hostRegistries({ searchPath: process.env.PATH }),
    ]);
    const npmRegistry = result.registries.find((r) => r.ecosystem === 'npm' && r.from === 'npm config list: registry');
    expect(npmRegistry?.url).toBe(stdout.trim());
  }, 15_000);
});
