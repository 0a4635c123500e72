import net from 'node:net';

/**
 * One destination the install step may reach: a host name (or `*.` and a domain, for any
 * name under it), and a port. Without a port, the web's two (443 and 80).
 */
export interface EgressRule {
  host: string;
  port?: number;
}

const HOST = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function normaliseHost(host: string): string {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** Why `text` is not a rule ("is not a valid URL", …), or its rule. */
function readRule(text: string): EgressRule | string {
  const t = text.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) {
    let url: URL;
    try {
      url = new URL(t);
    } catch {
      return 'is not a valid URL';
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      return 'is not reachable through the egress proxy: only http and https registries are';
    return {
      host: normaliseHost(url.hostname),
      port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
    };
  }
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(t);
  const host = m ? normaliseHost(m[1]!) : '';
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || !(HOST.test(host) || net.isIP(host)) || (port !== undefined && (port < 1 || port > 65535)))
    return 'is not a host, host:port, *.domain or http(s) URL';
  return port === undefined ? { host } : { host, port };
}

/** Why `text` is not a rule, or undefined when it is one (for config validation). */
export function ruleProblem(text: string): string | undefined {
  const r = readRule(text);
  return typeof r === 'string' ? r : undefined;
}

/**
 * Reads one rule: `host`, `host:port`, `*.domain`, `[v6]:port`, or a registry URL
 * (`https://npm.corp.example/`, whose host and port are taken). Throws, naming the entry.
 */
export function parseRule(text: string): EgressRule {
  const r = readRule(text);
  if (typeof r === 'string') throw new Error(`"${text}" ${r}`);
  return r;
}

/** Reads a comma- or whitespace-separated list of rules; throws naming the first bad entry. */
export function parseRules(list: string): EgressRule[] {
  return list
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(parseRule);
}

/**
 * Any host: only for the worker's own image pulls (a registry redirects blobs to a CDN it
 * names), never from a config; the proxy's address checks hold for it as for every rule.
 */
export const ANY_HOST = '*';

function hostMatches(rule: string, host: string): boolean {
  if (rule === ANY_HOST) return true;
  if (rule.startsWith('*.')) return host.endsWith(rule.slice(1)) && host.length > rule.length - 1;
  return rule === host;
}

/** Whether `host:port` is on the list. */
export function allows(rules: readonly EgressRule[], host: string, port: number): boolean {
  const h = normaliseHost(host);
  return rules.some(
    (r) => hostMatches(r.host, h) && (r.port === undefined ? port === 443 || port === 80 : r.port === port),
  );
}

/**
 * The repository's own list can only narrow the operator's: a repository entry counts
 * where an operator rule also admits it (a repository `*.domain` is kept only as far as
 * the operator admits the same wildcard). Returns what stays and what was dropped.
 */
export function narrow(
  operator: readonly EgressRule[],
  repository: readonly EgressRule[],
): { rules: EgressRule[]; dropped: EgressRule[] } {
  const rules: EgressRule[] = [];
  const dropped: EgressRule[] = [];
  for (const r of repository) {
    const within = operator.some((o) => {
      const hostOk = r.host.startsWith('*.')
        ? o.host === r.host || (o.host.startsWith('*.') && hostMatches(o.host, r.host.slice(2)))
        : hostMatches(o.host, r.host);
      const portOk = o.port === undefined ? r.port === undefined || r.port === 443 || r.port === 80 : r.port === o.port;
      return hostOk && portOk;
    });
    // A port-less repository rule under a port-pinned operator rule takes the operator's port.
    if (within) rules.push(r);
    else {
      const pinned = operator.find(
        (o) => o.port !== undefined && r.port === undefined && !r.host.startsWith('*.') && hostMatches(o.host, r.host),
      );
      if (pinned) rules.push({ host: r.host, port: pinned.port });
      else dropped.push(r);
    }
  }
  return { rules, dropped };
}

/** `host:port` as people read it. */
export function formatRule(r: EgressRule): string {
  const host = r.host.includes(':') ? `[${r.host}]` : r.host;
  return r.port === undefined ? host : `${host}:${r.port}`;
}
