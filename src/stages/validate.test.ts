import { describe, expect, it } from 'vitest';
import type { Trace } from '../agent/trace.js';
import type { RunRequest, Runner } from '../sandbox/runner.js';
import { parseRules } from '../sandbox/egress/allowlist.js';
import { installNetworkFor } from '../sandbox/egress/policy.js';
import { detectChecks, failureExcerpt, runCheck } from './validate.js';

const reader = (files: Record<string, string>) => async (p: string) => files[p];

describe('detecting the checks', () => {
  it("takes package.json scripts, the install command from the lock file, and skips npm's placeholder test", async () => {
    const pkg = (scripts: Record<string, string>) => JSON.stringify({ scripts, devDependencies: { x: '1' } });
    const { toolchain, ...npm } = await detectChecks(
      reader({
        'package.json': pkg({ test: 'vitest run', lint: 'eslint .', typecheck: 'tsc' }),
        'package-lock.json': '{}',
      }),
      {},
    );
    expect(toolchain).toMatchObject({ name: 'node', outputs: ['node_modules'], env: {}, treeEnv: {}, treePath: [] });
    expect(npm).toEqual({
      install: { name: 'install', command: 'npm ci --ignore-scripts --no-audit --no-fund', source: 'detected' },
      checks: [
        { name: 'lint', command: 'npm run lint', source: 'detected' },
        { name: 'typecheck', command: 'npm run typecheck', source: 'detected' },
        { name: 'test', command: 'npm test', source: 'detected' },
      ],
    });
    const placeholder = await detectChecks(
      reader({ 'package.json': pkg({ test: 'echo "Error: no test specified" && exit 1' }), 'pnpm-lock.yaml': '' }),
      {},
    );
    expect(placeholder.checks).toEqual([]);
    // Neither the repository's .pnpmfile.cjs nor a yarn-path/yarnPath file of its own runs.
    expect(placeholder.install?.command).toBe('pnpm install --frozen-lockfile --ignore-scripts --ignore-pnpmfile');
    const yarn = await detectChecks(reader({ 'package.json': pkg({ test: 'jest' }), 'yarn.lock': '' }), {});
    expect(yarn.install?.command).toBe('YARN_IGNORE_PATH=1 yarn install --frozen-lockfile --ignore-scripts');
  });

  it('prefers .github/agent.yml commands over detection', async () => {
    const r = await detectChecks(reader({ 'package.json': JSON.stringify({ scripts: { test: 'jest' } }) }), {
      commands: { test: 'make check', install: 'true' },
    });
    expect({ install: r.install, checks: r.checks }).toEqual({
      install: { name: 'install', command: 'true', source: 'config' },
      checks: [{ name: 'test', command: 'make check', source: 'config' }],
    });
  });

  it('knows Rust, Go, Python, Maven, Gradle and Makefile projects: the install with network, the checks offline', async () => {
    const detect = async (files: Record<string, string>) => {
      const r = await detectChecks(reader(files), {}, Object.keys(files));
      return {
        install: r.install?.command,
        checks: r.checks.map((c) => c.command),
        outputs: r.toolchain?.outputs,
        env: r.toolchain && { ...r.toolchain.env, ...r.toolchain.treeEnv },
        path: r.toolchain?.treePath,
      };
    };
    expect(await detect({ 'Cargo.toml': '' })).toEqual({
      install: 'cargo fetch',
      checks: ['cargo test --offline'],
      outputs: ['.issue-agent/cargo'],
      env: { CARGO_HOME: '.issue-agent/cargo' },
      path: [],
    });
    expect(await detect({ 'go.mod': 'module x\n' })).toEqual({
      install: 'go mod download',
      checks: ['go vet ./...', 'go test ./...'],
      outputs: ['.issue-agent/go/mod'],
      env: {
        GOTOOLCHAIN: 'local',
        GOFLAGS: '-modcacherw',
        GOMODCACHE: '.issue-agent/go/mod',
        GOCACHE: '.issue-agent/go/build',
      },
      path: [],
    });
    const python = {
      outputs: ['.issue-agent/venv'],
      checks: ['python3 -m pytest -q'],
      path: ['.issue-agent/venv/bin'],
    };
    const venv = 'python3 -m venv --system-site-packages .issue-agent/venv';
    expect(await detect({ 'requirements.txt': '', 'requirements-dev.txt': '' })).toEqual({
      ...python,
      install: `${venv} && python3 -m pip install -r requirements-dev.txt -r requirements.txt`,
      env: { VIRTUAL_ENV: '.issue-agent/venv' },
    });
    expect(
      await detect({
        'pyproject.toml': '[project]\nname = "x"\n\n[project.optional-dependencies]\ndocs = []\ntest = ["pytest"]\n',
      }),
    ).toMatchObject({ ...python, install: `${venv} && python3 -m pip install -e '.[test]'` });
    expect(await detect({ 'pyproject.toml': '', 'poetry.lock': '' })).toMatchObject({
      install: `${venv} && poetry install --no-interaction --no-root`,
    });
    expect(await detect({ 'pyproject.toml': '', 'uv.lock': '' })).toMatchObject({
      install: 'uv sync --frozen',
      env: { VIRTUAL_ENV: '.issue-agent/venv', UV_PROJECT_ENVIRONMENT: '.issue-agent/venv' },
    });
    expect(await detect({ 'pytest.ini': '' })).toMatchObject({ ...python, install: undefined });
    expect(await detect({ 'pom.xml': '' })).toMatchObject({
      install: 'mvn -B -q -Dmaven.repo.local=.issue-agent/m2 dependency:go-offline',
      checks: ['mvn -B -q -o -Dmaven.repo.local=.issue-agent/m2 test'],
      outputs: ['.issue-agent/m2'],
    });
    expect(await detect({ 'build.gradle.kts': '', gradlew: '' })).toMatchObject({
      install: './gradlew --no-daemon -q testClasses',
      checks: ['./gradlew --no-daemon --offline -q test'],
      env: { GRADLE_USER_HOME: '.issue-agent/gradle' },
    });
    expect(await detect({ Makefile: 'all:\n\ttrue\ntest:\n\ttrue\n' })).toMatchObject({ checks: ['make test'] });
    expect(await detect({ 'README.md': '' })).toEqual({
      install: undefined,
      checks: [],
      outputs: undefined,
      env: undefined,
      path: undefined,
    });
  });
});

describe("the install step's network", () => {
  it('follows install_network for the install command (default: the registries), and is always none for the other checks', async () => {
    const asked: RunRequest[] = [];
    const runner: Runner = {
      backend: 'unsandboxed',
      async run(req) {
        asked.push(req);
        return {
          command: req.command,
          exitCode: 0,
          signal: null,
          timedOut: false,
          durationMs: 1,
          output: '',
          omittedBytes: 0,
        };
      },
    };
    const egress = { rules: parseRules('registry.npmjs.org') };
    const deps = {
      runner,
      workTree: '/w',
      sandboxReadOnlyPaths: [],
      trace: { write: () => undefined } as unknown as Trace,
      stage: 'validate',
      egress,
    };
    const files = reader({
      'package.json': JSON.stringify({ scripts: { test: 'node --test' }, dependencies: { x: '1' } }),
    });
    for (const [config, expected] of [
      [{}, 'registries'],
      [{ install_network: 'none' as const }, 'none'],
      [{ install_network: 'registries' as const }, 'registries'],
      [{ install_network: 'full' as const }, 'full'],
    ] as const) {
      const { install, checks } = await detectChecks(files, config);
      await runCheck(deps, install!);
      await runCheck(deps, checks[0]!);
      const [i, t] = asked.splice(0);
      expect([i?.network, t?.network]).toEqual([expected, 'none']);
      // Only the install step is told where egress may go.
      expect([i?.egress, t?.egress]).toEqual([egress, undefined]);
    }
  });

  it("bounds what the repository asks by the operator's policy", () => {
    const operator = {
      allowHostNetwork: false,
      registries: parseRules('registry.npmjs.org, pypi.org, files.pythonhosted.org'),
    };
    expect(installNetworkFor(operator, {}, { changesInTree: false })).toEqual({
      network: 'registries',
      egress: { rules: operator.registries, privateNetworks: [] },
      notes: [],
    });
    const full = installNetworkFor(operator, { install_network: 'full' }, { changesInTree: false });
    expect(full.network).toBe('registries');
    expect(full.notes[0]).toMatch(/not allowed by the operator/);
    expect(
      installNetworkFor({ ...operator, allowHostNetwork: true }, { install_network: 'full' }, { changesInTree: false })
        .network,
    ).toBe('full');
    // A revision's tree holds commits nobody with write access may have read: never the host's network.
    const revision = installNetworkFor(
      { ...operator, allowHostNetwork: true },
      { install_network: 'full' },
      { changesInTree: true },
    );
    expect(revision.network).toBe('registries');
    expect(revision.notes[0]).toMatch(/registries only/);
    expect(installNetworkFor(operator, { install_network: 'none' }, { changesInTree: true }).network).toBe('none');
    const narrowed = installNetworkFor(
      operator,
      { install_registries: ['pypi.org', 'evil.example'] },
      { changesInTree: false },
    );
    expect(narrowed.egress.rules).toEqual(parseRules('pypi.org'));
    expect(narrowed.notes[0]).toContain('evil.example');
  });
});

describe('the failure excerpt', () => {
  it('puts the lines that name failures first, then the tail', () => {
    const tail = [
      'TAP version 13',
      'not ok 2 - adds a negative number',
      ...Array.from({ length: 30 }, (_, i) => `  detail ${i}`),
      '# fail 1',
    ].join('\n');
    const excerpt = failureExcerpt(
      { name: 'test', command: 'npm test', ok: false, exitCode: 1, timedOut: false, durationMs: 1, tail, output: tail },
      5,
    ).split('\n');
    expect(excerpt[0]).toBe('not ok 2 - adds a negative number');
    expect(excerpt[1]).toBe('…');
    expect(excerpt.at(-1)).toBe('# fail 1');
    expect(excerpt).toHaveLength(7);
  });
});
