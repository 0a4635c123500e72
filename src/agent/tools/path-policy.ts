import picomatch from 'picomatch';

/**
 * The file that holds the rule, as a refusal names it: `REPO_CONFIG_PATH` of
 * config/repo-config.ts, which parses it (a test there holds the two equal). The tools sit
 * below the config in the layering, so the rule's matcher lives here.
 */
export const PATH_RULE_SOURCE = '.github/agent.yml';

// Dotfiles match like any other file. A glob without "/" matches the file name at any depth
// (picomatch's own `basename` option also rewrites globs that have a "/", so it is done here.)
export const GLOB_OPTIONS: picomatch.PicomatchOptions = { dot: true };

/** Which files the agent may edit. An empty `allow` means every file not denied. */
export interface PathPolicy {
  allow: string[];
  deny: string[];
}

const matchers = new Map<string, (p: string) => boolean>();
function matches(globText: string, relPath: string): boolean {
  let m = matchers.get(globText);
  if (!m) {
    const test = picomatch(globText, GLOB_OPTIONS);
    m = globText.includes('/') ? test : (p) => test(p.slice(p.lastIndexOf('/') + 1));
    matchers.set(globText, m);
  }
  return m(relPath);
}

/** Whether the policy lets the agent edit `relPath` (relative to the repository root); deny wins. */
export function checkPathPolicy(policy: PathPolicy, relPath: string): { ok: true } | { ok: false; reason: string } {
  const p = relPath.replace(/\\/g, '/').replace(/^(\.\/)+/, '');
  const denied = policy.deny.find((g) => matches(g, p));
  if (denied !== undefined)
    return { ok: false, reason: `${p} matches the deny glob "${denied}" in ${PATH_RULE_SOURCE}` };
  if (policy.allow.length > 0 && !policy.allow.some((g) => matches(g, p))) {
    const globs = policy.allow.map((g) => `"${g}"`).join(', ');
    return { ok: false, reason: `${p} matches none of the allow globs in ${PATH_RULE_SOURCE} (${globs})` };
  }
  return { ok: true };
}
