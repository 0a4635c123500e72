/**
 * How a repository's dependencies are installed and its checks run, detected from the files
 * at its root, for each language the app knows: the install (the one step with network,
 * through the egress proxy) and the checks (offline). What an install writes stays inside
 * the work tree, under TOOL_DIR (or node_modules), so the checks after it find it with no
 * network, and the dependency cache can keep it for the next job.
 */

import { TOOL_DIR } from '../sandbox/worktree.js';

export interface Toolchain {
  name: 'node' | 'python' | 'go' | 'rust' | 'maven' | 'gradle';
  install?: string;
  lint?: string;
  typecheck?: string;
  test?: string;
  /** What the install writes, relative to the work tree: the dependency cache keeps these. */
  outputs: string[];
  /** Variables for every command of the job. */
  env: Record<string, string>;
  /** Variables for every command, naming paths relative to the work tree (made absolute per job). */
  treeEnv: Record<string, string>;
  /** Directories (relative to the work tree) put before PATH for every command. */
  treePath: string[];
}

export type FileReader = (path: string) => Promise<string | undefined>;

const NPM_PLACEHOLDER_TEST = /no test specified/;
const VENV = `${TOOL_DIR}/venv`;

/** The toolchain the root's files call for, in the order a polyglot repository is most likely meant. */
export async function detectToolchain(read: FileReader, rootFiles: readonly string[]): Promise<Toolchain | undefined> {
  const has = (name: string) => rootFiles.includes(name);
  const pkgText = await read('package.json');
  if (pkgText !== undefined) return node(pkgText, has);
  if (has('Cargo.toml')) return rust();
  if (has('go.mod')) return go();
  const requirements = rootFiles.filter((f) => /^requirements[\w.-]*\.txt$/.test(f)).sort();
  if (['pyproject.toml', 'setup.py', 'setup.cfg', 'pytest.ini', 'tox.ini'].some(has) || requirements.length > 0)
    return python(has, requirements, await read('pyproject.toml'));
  if (has('pom.xml')) return maven();
  if (['build.gradle', 'build.gradle.kts', 'settings.gradle', 'settings.gradle.kts'].some(has))
    return gradle(has('gradlew'));
  return undefined;
}

function base(name: Toolchain['name']): Toolchain {
  return { name, outputs: [], env: {}, treeEnv: {}, treePath: [] };
}

function node(pkgText: string, has: (f: string) => boolean): Toolchain {
  let pkg: { scripts?: Record<string, string>; dependencies?: object; devDependencies?: object } = {};
  try {
    pkg = JSON.parse(pkgText);
  } catch {
    // An unparseable package.json is the repository's problem; its test command will say so.
  }
  const scripts = pkg.scripts ?? {};
  const hasDeps = Object.keys(pkg.dependencies ?? {}).length + Object.keys(pkg.devDependencies ?? {}).length > 0;
  const run = has('pnpm-lock.yaml') ? 'pnpm' : has('yarn.lock') ? 'yarn' : 'npm';
  const t: Toolchain = { ...base('node'), outputs: ['node_modules'] };
  if (hasDeps) {
    t.install =
      run === 'pnpm'
        ? // --ignore-pnpmfile: the repository's .pnpmfile.cjs is code pnpm would run.
          'pnpm install --frozen-lockfile --ignore-scripts --ignore-pnpmfile'
        : run === 'yarn'
          ? // YARN_IGNORE_PATH: yarn would otherwise run the file the repository's yarn-path / yarnPath names.
            'YARN_IGNORE_PATH=1 yarn install --frozen-lockfile --ignore-scripts'
          : has('package-lock.json') || has('npm-shrinkwrap.json')
            ? 'npm ci --ignore-scripts --no-audit --no-fund'
            : 'npm install --ignore-scripts --no-audit --no-fund';
  }
  if (scripts.lint) t.lint = `${run} run lint`;
  if (scripts.typecheck) t.typecheck = `${run} run typecheck`;
  if (scripts.test && !NPM_PLACEHOLDER_TEST.test(scripts.test)) t.test = `${run} test`;
  return t;
}

/**
 * A virtual environment in the work tree that also sees the image's packages (pytest from
 * the image or its setup), active for every command by VIRTUAL_ENV and PATH.
 */
function python(has: (f: string) => boolean, requirements: string[], pyproject: string | undefined): Toolchain {
  const t: Toolchain = {
    ...base('python'),
    outputs: [VENV],
    treeEnv: { VIRTUAL_ENV: VENV },
    treePath: [`${VENV}/bin`],
    test: 'python3 -m pytest -q',
  };
  const venv = `python3 -m venv --system-site-packages ${VENV}`;
  if (has('uv.lock')) {
    t.install = 'uv sync --frozen';
    t.treeEnv.UV_PROJECT_ENVIRONMENT = VENV;
  } else if (has('poetry.lock')) {
    t.install = `${venv} && poetry install --no-interaction --no-root`;
  } else if (requirements.length > 0) {
    t.install = `${venv} && python3 -m pip install ${requirements.map((r) => `-r ${r}`).join(' ')}`;
  } else if (pyproject !== undefined || has('setup.py') || has('setup.cfg')) {
    const extras = testExtras(pyproject ?? '');
    t.install = `${venv} && python3 -m pip install -e '.${extras.length ? `[${extras.join(',')}]` : ''}'`;
  }
  return t;
}

/** The optional-dependency groups of a pyproject.toml that hold what the tests need. */
function testExtras(pyproject: string): string[] {
  const section = /^\[project\.optional-dependencies\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(pyproject)?.[1] ?? '';
  const names = [...section.matchAll(/^\s*([A-Za-z0-9_.-]+)\s*=/gm)].map((m) => m[1]!);
  return names.filter((n) => /^(test|tests|testing|dev)$/i.test(n));
}

function go(): Toolchain {
  return {
    ...base('go'),
    install: 'go mod download',
    lint: 'go vet ./...',
    test: 'go test ./...',
    outputs: [`${TOOL_DIR}/go/mod`],
    // A go.mod asking for a newer Go fails with the version it needs, instead of a download.
    env: { GOTOOLCHAIN: 'local', GOFLAGS: '-modcacherw' },
    treeEnv: { GOMODCACHE: `${TOOL_DIR}/go/mod`, GOCACHE: `${TOOL_DIR}/go/build` },
  };
}

function rust(): Toolchain {
  return {
    ...base('rust'),
    install: 'cargo fetch',
    test: 'cargo test --offline',
    outputs: [`${TOOL_DIR}/cargo`],
    treeEnv: { CARGO_HOME: `${TOOL_DIR}/cargo` },
  };
}

function maven(): Toolchain {
  const repo = `-Dmaven.repo.local=${TOOL_DIR}/m2`;
  return {
    ...base('maven'),
    install: `mvn -B -q ${repo} dependency:go-offline`,
    test: `mvn -B -q -o ${repo} test`,
    outputs: [`${TOOL_DIR}/m2`],
  };
}

function gradle(wrapper: boolean): Toolchain {
  const g = wrapper ? './gradlew' : 'gradle';
  return {
    ...base('gradle'),
    install: `${g} --no-daemon -q testClasses`,
    test: `${g} --no-daemon --offline -q test`,
    outputs: [`${TOOL_DIR}/gradle`],
    treeEnv: { GRADLE_USER_HOME: `${TOOL_DIR}/gradle` },
  };
}

/** The toolchain's variables for a work tree: its paths made absolute, its PATH entries first. */
export function toolchainEnv(
  t: Toolchain | undefined,
  workTree: string,
): { env: Record<string, string>; pathPrefix: string[] } {
  if (!t) return { env: {}, pathPrefix: [] };
  const env = { ...t.env };
  for (const [k, rel] of Object.entries(t.treeEnv)) env[k] = `${workTree}/${rel}`;
  return { env, pathPrefix: t.treePath.map((rel) => `${workTree}/${rel}`) };
}
