import { describe, expect, it } from 'vitest';
import { allows, formatRule, narrow, parseRule, parseRules } from './allowlist.js';
import { forbiddenAddress, privateNetworkList } from './forbidden-addresses.js';

describe('the egress allowlist', () => {
  it('reads hosts, ports, wildcards and registry URLs, and names a bad entry', () => {
    expect(
      parseRules('registry.npmjs.org, https://npm.corp.example:8443/repo/ *.pythonhosted.org pypi.org:443'),
    ).toEqual([
      { host: 'registry.npmjs.org' },
      { host: 'npm.corp.example', port: 8443 },
      { host: '*.pythonhosted.org' },
      { host: 'pypi.org', port: 443 },
    ]);
    expect(parseRule('http://Mirror.Example.')).toEqual({ host: 'mirror.example', port: 80 });
    expect(() => parseRule('file:///opt/pypi')).toThrow(
      '"file:///opt/pypi" is not reachable through the egress proxy: only http and https registries are',
    );
    expect(() => parseRule('exa mple.org')).toThrow(/not a host/);
    expect(() => parseRule('example.org:99999')).toThrow(/"example.org:99999"/);
  });

  it('matches a host on its port (443 and 80 without one), a wildcard only below its domain', () => {
    const rules = parseRules('registry.npmjs.org, *.example.org, mirror.corp:8081');
    expect(allows(rules, 'registry.npmjs.org', 443)).toBe(true);
    expect(allows(rules, 'REGISTRY.npmjs.org.', 80)).toBe(true);
    expect(allows(rules, 'registry.npmjs.org', 22)).toBe(false);
    expect(allows(rules, 'evil-registry.npmjs.org', 443)).toBe(false);
    expect(allows(rules, 'registry.npmjs.org.evil.test', 443)).toBe(false);
    expect(allows(rules, 'a.b.example.org', 443)).toBe(true);
    expect(allows(rules, 'example.org', 443)).toBe(false);
    expect(allows(rules, 'mirror.corp', 8081)).toBe(true);
    expect(allows(rules, 'mirror.corp', 443)).toBe(false);
  });

  it('lets a repository narrow the operator list, never widen it', () => {
    const operator = parseRules('registry.npmjs.org, *.pythonhosted.org, mirror.corp:8081');
    const { rules, dropped } = narrow(
      operator,
      parseRules(
        'registry.npmjs.org, files.pythonhosted.org, *.pythonhosted.org, evil.example, mirror.corp, registry.npmjs.org:22, *.org',
      ),
    );
    expect(rules.map(formatRule)).toEqual([
      'registry.npmjs.org',
      'files.pythonhosted.org',
      '*.pythonhosted.org',
      'mirror.corp:8081',
    ]);
    expect(dropped.map(formatRule)).toEqual(['evil.example', 'registry.npmjs.org:22', '*.org']);
  });
});

describe('the addresses egress never dials', () => {
  it('refuses loopback, link-local, private, metadata, unspecified and multicast, in every spelling', () => {
    const refused = [
      '127.0.0.1',
      '127.8.9.10',
      '0.0.0.0',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '100.64.0.1',
      '169.254.169.254',
      '224.0.0.1',
      '::1',
      '::',
      'fe80::1',
      'fd00:ec2::254',
      'fc00::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:169.254.169.254',
      '64:ff9b::a9fe:a9fe',
      '2002:7f00:1::',
      '::7f00:1',
    ];
    for (const ip of refused) expect(forbiddenAddress(ip), ip).toBeDefined();
    expect(forbiddenAddress('169.254.169.254')).toMatch(/link-local/);
    expect(forbiddenAddress('::ffff:127.0.0.1')).toMatch(/loopback/);
  });

  it('opens only the private networks an operator names, never loopback, link-local or metadata inside them', () => {
    const open = privateNetworkList(['10.20.0.0/16', 'fd12:3456::/32', '100.64.0.0/10']);
    expect(forbiddenAddress('10.20.3.4', open)).toBeUndefined();
    expect(forbiddenAddress('::ffff:10.20.3.4', open)).toBeUndefined();
    expect(forbiddenAddress('fd12:3456::9', open)).toBeUndefined();
    expect(forbiddenAddress('10.21.0.1', open)).toBe('private');
    expect(forbiddenAddress('100.100.100.200', open)).toBe('cloud metadata');
    expect(forbiddenAddress('fd00:ec2::254', privateNetworkList(['fd00::/16']))).toBe('cloud metadata');
    expect(forbiddenAddress('127.0.0.1', open)).toBe('loopback');
    expect(() => privateNetworkList(['127.0.0.0/8'])).toThrow(
      '"127.0.0.0/8" is not in a private range (its address is loopback): only private networks can be opened',
    );
    expect(() => privateNetworkList(['169.254.0.0/16'])).toThrow(/link-local/);
    expect(() => privateNetworkList(['8.8.8.0/24'])).toThrow(/its address is public/);
    expect(() => privateNetworkList(['10.0.0.0/4'])).toThrow(/at least \/8/);
  });

  it('lets public addresses through, documentation ranges included (some networks resolve registries there)', () => {
    for (const ip of [
      '104.16.1.1',
      '8.8.8.8',
      '203.0.113.80',
      '172.32.0.1',
      '100.128.0.1',
      '2606:4700::6810:1',
      '::ffff:8.8.8.8',
    ])
      expect(forbiddenAddress(ip), ip).toBeUndefined();
  });
});
