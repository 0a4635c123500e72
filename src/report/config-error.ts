import {
  REPO_CONFIG_PATH,
  REPO_CONFIG_SCHEMA_ID,
  REPO_CONFIG_SCHEMA_PAGE,
  type ConfigProblem,
  type RepoConfigError,
} from '../config/repo-config.js';
import { STATUS_MARKER } from './status.js';

/** More problems than this are counted, not listed: one comment should stay readable. */
const MAX_LISTED = 20;

/** One line, with control, invisible and bidi characters shown as escapes so text cannot start a new block. */
function oneLine(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) =>
    c === '\t' ? ' ' : `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`,
  );
}

/**
 * Text from the file as plain markdown text inside a list item: the characters that open
 * inline markup (emphasis, code, links, HTML, entities, math, tables) are escaped; the
 * block-level ones cannot act because the text never starts a line.
 */
function escapeMarkdown(text: string): string {
  return oneLine(text).replace(/[\\`*_[\]<>#|~&@$!]/g, '\\$&');
}

/** An inline code span that the text's own backticks cannot close. */
function code(text: string): string {
  const t = oneLine(text);
  const longest = Math.max(0, ...[...t.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = '`'.repeat(longest + 1);
  const pad = t.startsWith('`') || t.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${t}${pad}${ticks}`;
}

/** Only plain https links are rendered as links. */
function safeUrl(url: string | undefined): string | undefined {
  return url && /^https:\/\/[^\s()<>"'`\\]+$/.test(url) ? url : undefined;
}

function problemLine(p: ConfigProblem, fileUrl: string | undefined): string {
  const where: string[] = [];
  if (p.line !== undefined) where.push(fileUrl ? `[line ${p.line}](${fileUrl}#L${p.line})` : `line ${p.line}`);
  where.push(p.field === '(top level)' ? 'top level' : `field ${code(p.field)}`);
  return `- ${where.join(', ')}: ${escapeMarkdown(p.problem)}${p.expected ? ` — expected: ${escapeMarkdown(p.expected)}` : ''}`;
}

/**
 * The comment that answers a trigger when `.github/agent.yml` does not parse: every
 * problem with its line and field, how to fix it, and where the schema is.
 */
export function configErrorComment(err: RepoConfigError, opts: { ref: string; fileUrl?: string }): string {
  const fileUrl = safeUrl(opts.fileUrl);
  const file = fileUrl ? `[${code(REPO_CONFIG_PATH)}](${fileUrl})` : code(REPO_CONFIG_PATH);
  const listed = err.problems.slice(0, MAX_LISTED).map((p) => problemLine(p, fileUrl));
  const more = err.problems.length - listed.length;
  return [
    STATUS_MARKER,
    `**issue-agent** ⚠️ did not start: ${file} on ${code(opts.ref)} is invalid, so nothing ran.`,
    '',
    `${err.problems.length === 1 ? 'The problem' : `The ${err.problems.length} problems`}:`,
    ...listed,
    ...(more > 0 ? [`- …and ${more} more`] : []),
    '',
    `**To fix:** edit ${code(REPO_CONFIG_PATH)} on the default branch (${code(opts.ref)}); the agent reads its config only from there. Then remove and add the trigger label again, or comment ${code('/agent retry')}.`,
    '',
    `The file's JSON Schema is [${code('schema/agent.schema.json')}](${REPO_CONFIG_SCHEMA_PAGE}). Editors with the YAML language server check the file as you type when its first line is ${code(`# yaml-language-server: $schema=${REPO_CONFIG_SCHEMA_ID}`)}.`,
  ].join('\n');
}
