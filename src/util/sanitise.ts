/**
 * The one sanitiser for everything posted to GitHub: comments, PR bodies, replies.
 * It redacts known secret values and anything shaped like a credential.
 */
const TOKEN_PATTERNS: RegExp[] = [
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
  /\bgh[pousr]_[A-Za-z0-9]{20,255}\b/g, // GitHub tokens: ghp_, gho_, ghu_, ghs_, ghr_
  /\bgithub_pat_[A-Za-z0-9_]{22,255}\b/g,
  /\bsk-ant-[A-Za-z0-9_-]{10,}\b/g, // Anthropic keys
  /\bsk-[A-Za-z0-9]{20,}\b/g,
  /\bAKIA[0-9A-Z]{16}\b/g, // AWS access key ids
  /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/g, // Slack
  /\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b/g, // JWTs
  /(x-access-token:)[^@\s]+@/g,
  /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s/]+@/gi, // credentials in URLs: redis://user:pass@host
  /(Authorization:\s*(?:Basic|Bearer|token)\s+)[A-Za-z0-9+/=._-]+/gi,
];

const known = new Set<string>();

/** Registers a secret value (an installation token, the webhook secret) to redact verbatim. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 8) known.add(value);
}

export function sanitise(text: string): string {
  let out = text;
  for (const secret of known) out = out.split(secret).join('[REDACTED]');
  for (const pattern of TOKEN_PATTERNS) {
    out = out.replace(pattern, (match, prefix?: unknown) =>
      typeof prefix === 'string' && match.startsWith(prefix)
        ? `${prefix}[REDACTED]${match.endsWith('@') ? '@' : ''}`
        : '[REDACTED]',
    );
  }
  return out;
}
