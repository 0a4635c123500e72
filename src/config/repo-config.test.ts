import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkPathPolicy, PATH_RULE_SOURCE } from '../agent/tools/path-policy.js';
import {
  budgetsOf,
  checkpointOf,
  DEFAULT_TRIGGER_LABEL,
  parseRepoConfig,
  pathPolicyOf,
  REPO_CONFIG_PATH,
  REPO_CONFIG_SCHEMA_ID,
  RepoConfigError,
  repoConfigJsonSchema,
  repoConfigJsonSchemaText,
  stuckLimitsOf,
  triggerLabelOf,
  type ConfigProblem,
} from './repo-config.js';
import { DEFAULT_BUDGETS } from '../agent/budget.js';
import { DEFAULT_STUCK_LIMITS } from '../agent/stuck.js';
import { DEFAULT_TRIGGER_LABEL as WEB_DEFAULT_TRIGGER_LABEL } from '../web/triggers.js';
import { configErrorOf as errorOf } from '../../test/helpers/repo-config.js';

const problems = (text: string): ConfigProblem[] => errorOf(text).problems;

const SAMPLE = `# yaml-language-server: $schema=${REPO_CONFIG_SCHEMA_ID}
trigger_label: "ai: fix"
commands:
  install: npm ci
  test: npm test
  lint: npm run lint
  typecheck: npm run typecheck
paths:
  allow: ["src/**", "test/**", "README.md"]
  deny: [".github/**", "*.lock", "src/generated/**"]
max_rounds: 3
instructions: |
  Keep changes small.
checkpoint:
  min_confidence: 0.5
  max_files: 10
  max_lines: 400
models:
  mid: claude-sonnet-4-5
budgets:
  max_model_calls: 120
  max_input_tokens: 6000000
  max_output_tokens: 200000
  max_cost_usd: 10
  max_minutes: 45
  daily_cost_usd: 50
stuck:
  tool_failures_in_a_row: 5
  same_failing_call: 3
  turns_without_action: 3
  cycle_repeats: 3
`;

describe('.github/agent.yml', () => {
  it('reads a valid file, and an absent or empty one as defaults', () => {
    expect(parseRepoConfig('commands:\n  test: make check\nmax_rounds: 2\n')).toEqual({
      commands: { test: 'make check' },
      max_rounds: 2,
    });
    expect(parseRepoConfig(undefined)).toEqual({});
    expect(parseRepoConfig('# nothing\n')).toEqual({});
    expect(parseRepoConfig(SAMPLE).paths?.deny).toEqual(['.github/**', '*.lock', 'src/generated/**']);
  });

  it('names the line of a YAML syntax error, and the key around it', () => {
    const [p, ...rest] = problems('max_rounds: 2\ncommands:\n  test: [unclosed\n');
    expect(rest).toEqual([]);
    expect(p).toMatchObject({
      line: 3,
      field: 'commands.test',
      problem: expect.stringMatching(/^YAML syntax: .*end with a \]/),
      expected: expect.stringContaining('closed'),
    });
    expect(problems('a: 1\nb: 2\na: 3\n')).toEqual([
      expect.objectContaining({ line: 3, problem: expect.stringMatching(/unique/) }),
    ]);
    expect(problems('commands:\n\ttest: x\n')).toEqual([
      expect.objectContaining({ line: 2, expected: 'indentation with spaces, not tabs' }),
    ]);
    expect(problems('max_rounds: *nowhere\n')).toEqual([
      expect.objectContaining({ problem: expect.stringMatching(/alias/) }),
    ]);
  });

  it('names the line, the field, the problem and the expectation of a value that does not fit', () => {
    expect(problems('max_rounds: 50\n')).toEqual([
      {
        line: 1,
        field: 'max_rounds',
        problem: '50 is above the maximum of 10',
        expected: 'a whole number from 1 to 10 (code ⇄ validate rounds before escalating (default 3))',
      },
    ]);
    expect(problems('instructions: hi\nmax_rounds: 2.5\n')).toEqual([
      expect.objectContaining({ line: 2, problem: '2.5 is not a whole number' }),
    ]);
    expect(problems('\nmax_rounds:\n')).toEqual([
      expect.objectContaining({ line: 2, field: 'max_rounds', problem: 'has no value, not a number' }),
    ]);
    expect(problems('- a\n- b\n')).toEqual([
      expect.objectContaining({ line: 1, field: '(top level)', problem: 'is a list, not a mapping' }),
    ]);
    expect(problems('budgets: 5\n')).toEqual([
      expect.objectContaining({
        field: 'budgets',
        problem: 'is a number (5), not a mapping',
        expected: expect.stringMatching(/^a mapping with any of the keys max_model_calls, .*daily_cost_usd \(/),
      }),
    ]);
  });

  it('finds the line of an error nested two levels deep', () => {
    const text = '# the agent\nmax_rounds: 2\nbudgets:\n  max_cost_usd: "ten"\n  max_minutes: 10\n';
    expect(problems(text)).toEqual([
      {
        line: 4,
        field: 'budgets.max_cost_usd',
        problem: 'is text ("ten"), not a number',
        expected: 'a number above 0 and at most 1,000 (dollars per job (default 10))',
      },
    ]);
    // Flow style and several problems at once, each on its own line, in file order.
    const many = problems('budgets: {max_minutes: 0}\nstuck:\n  cycle_repeats: 1\nmodels:\n  fast: "gpt 4; rm -rf"\n');
    expect(many.map((p) => [p.line, p.field])).toEqual([
      [1, 'budgets.max_minutes'],
      [3, 'stuck.cycle_repeats'],
      [5, 'models.fast'],
    ]);
    expect(many[2]?.expected).toMatch(/^text matching .*, e\.g\. claude-haiku-4-5 \(model id for scoping/);
  });

  it('names an unknown key at its own line and lists the keys allowed there', () => {
    expect(problems('max_rounds: 2\ncommands:\n  test: npm test\n  tests: npm test\n')).toEqual([
      {
        line: 4,
        field: 'commands.tests',
        problem: 'unknown key "tests" in commands (did you mean test?)',
        expected: 'one of the keys install, test, lint, typecheck',
      },
    ]);
    const [top] = problems('comands: {}\n');
    expect(top).toMatchObject({
      line: 1,
      field: 'comands',
      problem: expect.stringContaining('did you mean commands?'),
    });
    expect(top?.expected).toBe(
      'one of the keys trigger_label, commands, environment, install_network, install_registries, paths, max_rounds, push_wip_branch, pull_request, ci, checkpoint, models, stuck, budgets, instructions',
    );
    expect(problems('stuck:\n  retries: 3\n  whatever: 1\n').map((p) => [p.line, p.field])).toEqual([
      [2, 'stuck.retries'],
      [3, 'stuck.whatever'],
    ]);
  });

  it("refuses install_network: full unless the operator allows the host's network, naming the line and how", () => {
    const text = 'max_rounds: 2\ninstall_network: full\n';
    expect(problems(text)).toEqual([
      {
        line: 2,
        field: 'install_network',
        problem: '"full" (the worker host\'s own network) is not allowed by this app\'s operator',
        expected:
          '"registries" (the package registries, through the egress proxy) or "none"; an operator allows "full" with SANDBOX_ALLOW_HOST_NETWORK=1',
      },
    ]);
    expect(parseRepoConfig(text, { allowHostNetwork: true }).install_network).toBe('full');
    expect(
      parseRepoConfig(
        'install_network: registries\ninstall_registries: [registry.npmjs.org, "https://npm.corp.example:8443/"]\n',
      ),
    ).toEqual({
      install_network: 'registries',
      install_registries: ['registry.npmjs.org', 'https://npm.corp.example:8443/'],
    });
    expect(problems('install_registries: ["file:///opt/pypi"]\n')).toEqual([
      expect.objectContaining({
        line: 1,
        field: 'install_registries[0]',
        problem: '"file:///opt/pypi": is not reachable through the egress proxy: only http and https registries are',
      }),
    ]);
  });

  it('keeps a readable message for logs and escalations', () => {
    const err = errorOf('budgets:\n  max_cost_usd: -1\n');
    expect(err.message).toBe(
      '.github/agent.yml is invalid:\n- line 2, budgets.max_cost_usd: -1 is not above 0 — expected: a number above 0 and at most 1,000 (dollars per job (default 10))',
    );
    expect(err.name).toBe('RepoConfigError');
  });

  it('puts budgets, stuck limits and the checkpoint rule over sane defaults', () => {
    expect(budgetsOf({})).toEqual(DEFAULT_BUDGETS);
    expect(stuckLimitsOf({})).toEqual(DEFAULT_STUCK_LIMITS);
    expect(checkpointOf({})).toEqual({ minConfidence: 0.5, maxFiles: 10, maxLines: 400 });
    const c = parseRepoConfig(
      'budgets:\n  max_cost_usd: 2.5\n  max_minutes: 10\nstuck:\n  cycle_repeats: 4\ncheckpoint:\n  min_confidence: 0.7\n',
    );
    expect(budgetsOf(c)).toEqual({ ...DEFAULT_BUDGETS, maxCostUsd: 2.5, maxMinutes: 10 });
    expect(stuckLimitsOf(c)).toEqual({ ...DEFAULT_STUCK_LIMITS, cycleRepeats: 4 });
    expect(checkpointOf(c).minConfidence).toBe(0.7);
    expect(parseRepoConfig('models:\n  mid: claude-opus-5-5\n').models).toEqual({ mid: 'claude-opus-5-5' });
  });
});

describe('trigger_label', () => {
  it("defaults to the web side's label and takes any GitHub label name", () => {
    expect(triggerLabelOf({})).toBe(WEB_DEFAULT_TRIGGER_LABEL);
    expect(DEFAULT_TRIGGER_LABEL).toBe('agent');
    expect(triggerLabelOf(parseRepoConfig('trigger_label: "ai: fix 🤖"\n'))).toBe('ai: fix 🤖');
  });

  it('refuses what GitHub would not take as one label', () => {
    expect(problems('trigger_label: "bug,agent"\n')).toEqual([
      expect.objectContaining({
        line: 1,
        field: 'trigger_label',
        problem: '"bug,agent" does not have the expected form',
      }),
    ]);
    expect(problems('trigger_label: ""\n')).toEqual([
      expect.objectContaining({ problem: 'is empty', expected: expect.stringMatching(/^text of 1 to 50 characters/) }),
    ]);
    expect(problems(`trigger_label: ${'x'.repeat(51)}\n`)).toEqual([
      expect.objectContaining({ problem: 'is 51 characters long, over the limit of 50' }),
    ]);
    expect(problems('trigger_label: " agent"\n')).toEqual([
      expect.objectContaining({ problem: expect.stringContaining('must not start or end with a space') }),
    ]);
    expect(problems('trigger_label: 7\n')).toEqual([expect.objectContaining({ problem: 'is a number (7), not text' })]);
  });
});

describe('paths', () => {
  it('reads allow and deny; absent means every file', () => {
    expect(pathPolicyOf({})).toEqual({ allow: [], deny: [] });
    expect(pathPolicyOf(parseRepoConfig('paths:\n  deny: ["*.lock"]\n'))).toEqual({ allow: [], deny: ['*.lock'] });
    expect(pathPolicyOf(parseRepoConfig('paths:\n  allow:\n    - src/**\n'))).toEqual({ allow: ['src/**'], deny: [] });
  });

  it('refuses globs that cannot mean what was meant, naming the item', () => {
    const found = problems(
      'paths:\n  allow: []\n  deny:\n    - ok/**\n    - /abs/**\n    - "!keep"\n    - "src/{a,b"\n    - 3\n',
    );
    expect(found.map((p) => [p.line, p.field])).toEqual([
      [2, 'paths.allow'],
      [5, 'paths.deny[1]'],
      [6, 'paths.deny[2]'],
      [7, 'paths.deny[3]'],
      [8, 'paths.deny[4]'],
    ]);
    expect(found[0]?.problem).toBe('is an empty list');
    expect(found[1]?.problem).toMatch(/relative to the repository root/);
    expect(found[2]?.problem).toMatch(/negated globs/);
    expect(found[3]?.problem).toMatch(/never match/);
    expect(found[4]?.expected).toMatch(/a picomatch glob/);
    expect(problems('paths:\n  only: [src]\n')).toEqual([
      expect.objectContaining({ field: 'paths.only', expected: 'one of the keys allow, deny' }),
    ]);
  });
});

describe('checkPathPolicy', () => {
  it('names the file the rule comes from', () => {
    // The tools sit below the config: the matcher keeps its own copy of the name.
    expect(PATH_RULE_SOURCE).toBe(REPO_CONFIG_PATH);
  });

  const policy = (allow: string[], deny: string[] = []) => ({ allow, deny });

  it('lets everything through when nothing is set', () => {
    expect(checkPathPolicy(policy([]), 'anything/at/all.ts')).toEqual({ ok: true });
  });

  it('with allow set, lets through only matching files, naming the globs otherwise', () => {
    const p = policy(['src/**', 'README.md']);
    expect(checkPathPolicy(p, 'src/a.ts')).toEqual({ ok: true });
    expect(checkPathPolicy(p, 'src/deep/nested/dir/a.ts')).toEqual({ ok: true });
    expect(checkPathPolicy(p, './src/a.ts')).toEqual({ ok: true });
    expect(checkPathPolicy(p, 'README.md')).toEqual({ ok: true });
    expect(checkPathPolicy(p, 'lib/a.ts')).toEqual({
      ok: false,
      reason: 'lib/a.ts matches none of the allow globs in .github/agent.yml ("src/**", "README.md")',
    });
    expect(checkPathPolicy(p, 'docs/README.md').ok).toBe(true); // no "/" in the glob: any depth
    expect(checkPathPolicy(policy(['src/**']), 'srcs/a.ts').ok).toBe(false);
  });

  it('lets deny win over allow and name the glob', () => {
    const p = policy(['src/**'], ['src/generated/**', '*.lock']);
    expect(checkPathPolicy(p, 'src/generated/api.ts')).toEqual({
      ok: false,
      reason: 'src/generated/api.ts matches the deny glob "src/generated/**" in .github/agent.yml',
    });
    expect(checkPathPolicy(p, 'src/generated/deeper/x.ts').ok).toBe(false);
    expect(checkPathPolicy(p, 'src/sub/yarn.lock')).toEqual({
      ok: false,
      reason: 'src/sub/yarn.lock matches the deny glob "*.lock" in .github/agent.yml',
    });
    expect(checkPathPolicy(p, 'src/generator.ts')).toEqual({ ok: true });
  });

  it('matches dotfiles and dot-directories', () => {
    expect(checkPathPolicy(policy(['src/**']), 'src/.eslintrc.json')).toEqual({ ok: true });
    expect(checkPathPolicy(policy(['src/**']), 'src/.config/x.json')).toEqual({ ok: true });
    expect(checkPathPolicy(policy([], ['.github/**']), '.github/workflows/ci.yml').ok).toBe(false);
    expect(checkPathPolicy(policy([], ['**/*.pem']), 'certs/.hidden/key.pem').ok).toBe(false);
    expect(checkPathPolicy(policy([], ['.env*']), 'packages/api/.env.local')).toEqual({
      ok: false,
      reason: expect.stringContaining('".env*"'),
    });
  });

  it('anchors a glob with a "/" at the root, and a glob without one at any depth', () => {
    const p = policy([], ['vendor/**', 'Makefile']);
    expect(checkPathPolicy(p, 'vendor/x/y.go').ok).toBe(false);
    expect(checkPathPolicy(p, 'src/vendor/y.go').ok).toBe(true);
    expect(checkPathPolicy(p, 'Makefile').ok).toBe(false);
    expect(checkPathPolicy(p, 'sub/Makefile').ok).toBe(false);
    expect(checkPathPolicy(p, 'Makefile.old').ok).toBe(true);
  });
});

describe('the JSON Schema for editors', () => {
  const onDisk = readFileSync(new URL('../../schema/agent.schema.json', import.meta.url), 'utf8');

  it('is up to date with the zod schema (regenerate with npm run schema)', () => {
    expect(onDisk).toBe(repoConfigJsonSchemaText());
    const schema = repoConfigJsonSchema();
    expect(schema).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: REPO_CONFIG_SCHEMA_ID,
      title: expect.any(String),
      description: expect.any(String),
    });
  });

  it('describes every field', () => {
    const missing: string[] = [];
    const walk = (node: Record<string, unknown>, at: string) => {
      for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
        if (typeof v.description !== 'string') missing.push(`${at}${k}`);
        walk(v, `${at}${k}.`);
      }
    };
    walk(JSON.parse(onDisk) as Record<string, unknown>, '');
    expect(missing).toEqual([]);
  });

  it('accepts a valid sample and refuses what the parser refuses', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    const validate = ajv.compile(JSON.parse(onDisk) as object);
    const sample = parseYaml(SAMPLE) as unknown;
    expect(validate(sample), JSON.stringify(validate.errors)).toBe(true);
    expect(parseRepoConfig(SAMPLE)).toEqual(sample);
    for (const bad of [
      'max_rounds: 50\n',
      'commands:\n  tests: x\n',
      'budgets:\n  max_cost_usd: "ten"\n',
      'paths:\n  allow: []\n',
      'trigger_label: "a,b"\n',
      'models:\n  fast: "gpt 4"\n',
    ]) {
      expect(validate(parseYaml(bad)), bad).toBe(false);
      expect(() => parseRepoConfig(bad), bad).toThrow(RepoConfigError);
    }
  });
});
