import { describe, expect, it } from 'vitest';
import { registerSecret, sanitise } from './sanitise.js';

describe('the sanitiser', () => {
  it('redacts token-shaped strings, keys, URL credentials and registered secrets', () => {
    registerSecret('hunter2-very-secret');
    const text = [
      'token ghs_abcdefghijklmnopqrstuvwxyz0123456789',
      'pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz',
      'key sk-ant-api03-abcdefghijklmnop',
      'url https://x-access-token:ghs_zzzzzzzzzzzzzzzzzzzzzzzzzz@github.com/o/r.git',
      'redis rediss://default:p4ssw0rd@redis.example.com:6380',
      'header Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hz',
      'the webhook secret is hunter2-very-secret',
      '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----',
    ].join('\n');
    const out = sanitise(text);
    for (const leaked of [
      'ghs_abc',
      'github_pat_11',
      'sk-ant-api03',
      'ghs_zzz',
      'p4ssw0rd',
      'eC1hY2Nlc3Mt',
      'hunter2',
      'MIIEow',
    ])
      expect(out).not.toContain(leaked);
    expect(out).toContain('redis.example.com:6380');
    expect(out).toContain('Authorization: Basic [REDACTED]');
  });

  it('leaves ordinary text alone', () => {
    const text = 'add() returns a - b; see https://github.com/o/r/pull/3 and commit 0123456789abcdef';
    expect(sanitise(text)).toBe(text);
  });
});
