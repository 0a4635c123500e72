import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseEnv } from './env.js';

const pem = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs1', format: 'pem' })
  .toString();
const complete = { APP_ID: '123', PRIVATE_KEY: pem, WEBHOOK_SECRET: 'hooks-secret', ANTHROPIC_API_KEY: 'sk-ant-test' };

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('environment', () => {
  it('applies defaults and builds the GitHub Enterprise API URL from GHE_HOST', () => {
    const c = loadConfig({ ...complete, GHE_HOST: 'ghe.example.com:8443', GHE_PROTOCOL: 'http' }, ['web', 'worker']);
    expect(c.githubApiUrl).toBe('http://ghe.example.com:8443/api/v3');
    expect(c.env.PORT).toBe(3000);
    expect(c.appId).toBe(123);
    expect(c.models.frontier).toMatch(/^claude-/);
    expect(loadConfig(complete, ['web']).githubApiUrl).toBe('https://api.github.com');
  });

  it('names each bad variable and what was expected', () => {
    const problems = problemsOf(() =>
      parseEnv({ ...complete, PORT: 'eighty', GHE_PROTOCOL: 'ftp', REDIS_URL: 'not a url' }),
    );
    expect(problems).toHaveLength(3);
    expect(problems.find((p) => p.startsWith('PORT:'))).toContain('"eighty"');
    expect(problems.find((p) => p.startsWith('GHE_PROTOCOL:'))).toMatch(/https.*http/);
    expect(problems.some((p) => p.startsWith('REDIS_URL:'))).toBe(true);
  });

  it('requires what each role needs', () => {
    const { WEBHOOK_SECRET: _w, ANTHROPIC_API_KEY: _a, ...rest } = complete;
    expect(problemsOf(() => loadConfig(rest, ['web']))).toEqual([expect.stringMatching(/^WEBHOOK_SECRET: required/)]);
    expect(problemsOf(() => loadConfig(rest, ['worker']))).toEqual([
      expect.stringMatching(/^ANTHROPIC_API_KEY: required/),
    ]);
    expect(loadConfig({ ...rest, ANTHROPIC_API_KEY: 'k' }, ['worker']).webhookSecret).toBe('');
  });

  it('refuses a worker whose model has no known price (it would be costed at $0), and reads the cost caps', () => {
    expect(problemsOf(() => loadConfig({ ...complete, MODEL_MID: 'claude-unreleased-9' }, ['worker']))).toEqual([
      'MODEL_MID: no price is known for claude-unreleased-9, so its spend could not be counted or bounded; use a model on the price list (src/agent/pricing.ts)',
    ]);
    expect(loadConfig({ ...complete, MODEL_MID: 'claude-unreleased-9' }, ['web']).models.mid).toBe(
      'claude-unreleased-9',
    );
    expect(loadConfig(complete, ['worker']).env).toMatchObject({
      MAX_JOB_COST_USD: 25,
      MAX_DAILY_COST_USD: 100,
      REDIS_ALLOW_NO_AUTH: false,
      SANDBOX_ALLOW_HOST_NETWORK: false,
      SANDBOX_ALLOW_ROOT_MAPPED: false,
    });
    expect(problemsOf(() => loadConfig({ ...complete, MAX_JOB_COST_USD: '0' }, ['worker']))[0]).toMatch(
      /^MAX_JOB_COST_USD:/,
    );
    expect(problemsOf(() => parseEnv({ SANDBOX_EGRESS_ALLOW: 'registry.npmjs.org, file:///x' }))[0]).toMatch(
      /^SANDBOX_EGRESS_ALLOW: "file:\/\/\/x" is not reachable through the egress proxy/,
    );
    expect(problemsOf(() => parseEnv({ SANDBOX_EGRESS_PRIVATE_NETWORKS: '127.0.0.0/8' }))[0]).toMatch(
      /^SANDBOX_EGRESS_PRIVATE_NETWORKS: "127\.0\.0\.0\/8" is not in a private range/,
    );
  });

  it('reads the key from PRIVATE_KEY_PATH and says when the file is missing or not a key', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ia-env-'));
    const file = path.join(dir, 'key.pem');
    writeFileSync(file, pem);
    const { PRIVATE_KEY: _k, ...rest } = complete;
    expect(loadConfig({ ...rest, PRIVATE_KEY_PATH: file }, ['web']).privateKey).toBe(pem);
    expect(problemsOf(() => loadConfig({ ...rest, PRIVATE_KEY_PATH: path.join(dir, 'nope.pem') }, ['web']))[0]).toMatch(
      /PRIVATE_KEY_PATH: cannot read .*ENOENT/,
    );
    expect(problemsOf(() => loadConfig({ ...rest, PRIVATE_KEY: 'hello' }, ['web']))[0]).toMatch(
      /PRIVATE_KEY: expected a PEM/,
    );
    expect(problemsOf(() => loadConfig({ ...rest, PRIVATE_KEY: pem, PRIVATE_KEY_PATH: file }, ['web']))[0]).toMatch(
      /not both/,
    );
  });

  it('never echoes a secret value in an error', () => {
    const problems = problemsOf(() => parseEnv({ ...complete, ANTHROPIC_BASE_URL: 'sk-ant-supersecretvalue' }));
    expect(problems.join('\n')).not.toContain('supersecret');
  });

  it('treats empty values as unset, as .env files write them', () => {
    expect(parseEnv({ ...complete, PORT: '', REDIS_URL: '' }).PORT).toBe(3000);
  });
});
