import { ruleProblem } from '../sandbox/egress/allowlist.js';
import { parseImageRef } from '../sandbox/environment/image-ref.js';
import { editDistance } from '../util/edit-distance.js';
import picomatch from 'picomatch';
import { GLOB_OPTIONS, type PathPolicy } from '../agent/tools/path-policy.js';
import { z } from 'zod';
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type Range,
} from 'yaml';
import { DEFAULT_BUDGETS, type Budgets } from '../agent/budget.js';
import { DEFAULT_STUCK_LIMITS, type StuckLimits } from '../agent/stuck.js';

export const REPO_CONFIG_PATH = '.github/agent.yml';
/** Where editors fetch the config's JSON Schema (`schema/agent.schema.json` in this repository). */
export const REPO_CONFIG_SCHEMA_ID =
  'https://raw.githubusercontent.com/issue-agent/issue-agent/main/schema/agent.schema.json';
/** The same schema as a page for people. */
export const REPO_CONFIG_SCHEMA_PAGE = 'https://github.com/issue-agent/issue-agent/blob/main/schema/agent.schema.json';
/** The label that starts a job when the file names none; the web side's default too. */
export const DEFAULT_TRIGGER_LABEL = 'agent';

const command = z.string().trim().min(1).max(1000);
const modelId = z.string().regex(/^[a-z0-9][a-z0-9._-]{2,100}$/);

// Globs match dotfiles, and one without a "/" matches the file name at any depth, as in
// .gitignore: `*.pem` means every .pem file, `secrets/**` everything under the root's secrets/.
// The matcher and its options: agent/tools/path-policy.ts.

const glob = z
  .string()
  .min(1)
  .max(500)
  .describe('a picomatch glob, relative to the repository root')
  .refine((g) => !g.includes('\0'), 'must not contain NUL bytes')
  .refine((g) => !g.startsWith('/'), 'globs are relative to the repository root: drop the leading "/"')
  .refine((g) => !g.startsWith('!'), 'negated globs are not supported: list those files under deny instead')
  // picomatch compiles a malformed glob (an unclosed brace, a reversed range) to a regex that matches nothing.
  .refine(
    (g) => picomatch.makeRe(g, GLOB_OPTIONS).source !== '$^',
    'is not a valid glob: it can never match a path (an unclosed brace or a reversed range?)',
  );

/** `.github/agent.yml`: every field optional; read from the default branch only. */
export const RepoConfigSchema = z
  .object({
    trigger_label: z
      .string()
      .min(1)
      .max(50)
      .regex(/^[^,]*$/)
      .refine((l) => l.trim() === l, 'must not start or end with a space')
      .optional()
      .describe(
        'the label that starts a job when added to an issue: a GitHub label name of 1 to 50 characters without commas, compared ignoring case (default "agent")',
      )
      .meta({ examples: ['agent', 'ai: fix'] }),
    commands: z
      .object({
        install: command
          .optional()
          .describe(
            'installs dependencies; the only step that may reach package registries (default: from the lock file)',
          ),
        test: command
          .optional()
          .describe(
            'runs the tests (default: detected, e.g. the package.json test script, make test, pytest, cargo test, go test ./...)',
          ),
        lint: command.optional().describe('runs the linter (default: the package.json lint script, if any)'),
        typecheck: command
          .optional()
          .describe('runs the type-checker (default: the package.json typecheck script, if any)'),
      })
      .strict()
      .optional()
      .describe('the commands that validate a change, each run in the sandbox (default: detected from the repository)'),
    environment: z
      .strictObject({
        image: z
          .string()
          .superRefine((text, ctx) => {
            const parsed = parseImageRef(text);
            // The problem line shows the value already.
            if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.why.replace(`"${text}" `, '') });
          })
          .describe(
            'the OCI image the commands run on: [registry/]name[:tag][@sha256:digest]; a tag is pinned to its digest when the job starts',
          )
          .meta({ examples: ['python:3.12-bookworm', 'ghcr.io/owner/ci-image:2026-11'] }),
        setup: z
          .union([command, z.array(command).min(1).max(20)])
          .optional()
          .describe(
            "commands run once per environment, in order, on a private copy of the image, with the install step's network; the set-up copy is kept and reused while the image, these commands and the dependency manifests stay the same (default: none)",
          )
          .meta({ examples: ['pip install -r requirements-dev.txt'] }),
      })
      .optional()
      .describe(
        "where the repository's commands run: a container image and its setup, instead of the worker's own system (default: .devcontainer/devcontainer.json's image and create commands when there is one, else the worker's system)",
      ),
    // The install step never gets the worker host's network unless the operator allows it:
    // a repository's install (or a dependency's build step) in the host's network reaches
    // its loopback services, Redis among them, and the cloud metadata service.
    install_network: z
      .enum(['none', 'registries', 'full'])
      .optional()
      .describe(
        'network for the install command only: "registries" (a network of its own whose one way out is the app\'s egress proxy, to the package registries the operator allows), "none" (vendored or cached dependencies; no egress at all) or "full" (the worker host\'s own network: only where the operator allows it, and never for a revision of a pull request). The agent\'s commands and the tests never have network (default "registries")',
      ),
    install_registries: z
      .array(
        z
          .string()
          .max(300)
          .superRefine((entry, ctx) => {
            const problem = ruleProblem(entry);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          }),
      )
      .max(50)
      .optional()
      .describe(
        'narrows the registries the install step may reach to these hosts ("host", "host:port", "*.domain" or a registry URL); hosts the operator does not allow stay refused (default: every registry the operator allows)',
      )
      .meta({ examples: [['registry.npmjs.org']] }),
    paths: z
      .strictObject({
        allow: z
          .array(glob)
          .min(1)
          .max(200)
          .optional()
          .describe(
            'globs of the files the agent may edit or create; when set, no other file may be (default: every file)',
          )
          .meta({ examples: [['src/**', 'test/**']] }),
        deny: z
          .array(glob)
          .max(200)
          .optional()
          .describe('globs of the files the agent may never edit or create; deny wins over allow (default: none)')
          .meta({ examples: [['.github/**', '*.lock', 'vendor/**']] }),
      })
      .optional()
      .describe(
        'which files the agent may edit: picomatch globs relative to the repository root, matching dotfiles too; a glob without "/" matches the file name at any depth (default: every file)',
      ),
    max_rounds: z
      .number()
      .int()
      .min(1)
      .max(10)
      .optional()
      .describe('code ⇄ validate rounds before escalating (default 3)'),
    push_wip_branch: z
      .boolean()
      .optional()
      .describe(
        "when a job stops without a pull request, push its work to agent/wip/issue-<n>-attempt-<k>. A pushed branch runs the repository's push workflows, with their secrets, on code the agent wrote: exclude agent/** there first (on: push: branches-ignore: ['agent/**']) (default false)",
      ),
    pull_request: z
      .strictObject({
        draft_until_green: z
          .boolean()
          .optional()
          .describe(
            'open the pull request as a draft, and mark it ready for review once every check on its head commit passed (default false)',
          ),
      })
      .optional()
      .describe('how the pull request is opened'),
    ci: z
      .strictObject({
        max_fix_attempts: z
          .number()
          .int()
          .min(0)
          .max(10)
          .optional()
          .describe(
            'commits the app may push to one of its pull requests to fix failing checks, one per head commit; 0 watches without fixing: failures are reported (default 3)',
          ),
      })
      .optional()
      .describe(
        'what the app does when checks fail on a pull request it opened: re-run a job that failed on a runner error once, fix a failure the change caused, else report',
      ),
    checkpoint: z
      .strictObject({
        min_confidence: z
          .number()
          .min(0)
          .max(1)
          .optional()
          .describe('below this plan confidence, stop after planning and ask to go ahead (default 0.5)'),
        max_files: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe('above this many files to change, ask first (default 10)'),
        max_lines: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe('above this many estimated changed lines, ask first (default 400)'),
      })
      .optional()
      .describe('when to stop after planning and ask a person to go ahead'),
    models: z
      .strictObject({
        frontier: modelId
          .optional()
          .describe('model id for planning')
          .meta({ examples: ['claude-opus-4-1'] }),
        mid: modelId
          .optional()
          .describe('model id for coding')
          .meta({ examples: ['claude-sonnet-4-5'] }),
        fast: modelId
          .optional()
          .describe('model id for scoping and log summaries')
          .meta({ examples: ['claude-haiku-4-5'] }),
      })
      .optional()
      .describe("the model for each tier (default: the app's configured models)"),
    stuck: z
      .strictObject({
        tool_failures_in_a_row: z
          .number()
          .int()
          .min(2)
          .max(50)
          .optional()
          .describe('one tool failing this many times in a row (default 5)'),
        same_failing_call: z
          .number()
          .int()
          .min(2)
          .max(50)
          .optional()
          .describe('the same failing call this many times (default 3)'),
        turns_without_action: z
          .number()
          .int()
          .min(1)
          .max(20)
          .optional()
          .describe('model turns in a row without a tool call (default 3)'),
        cycle_repeats: z
          .number()
          .int()
          .min(2)
          .max(20)
          .optional()
          .describe('repetitions of a call cycle with no edit (default 3)'),
      })
      .optional()
      .describe('when the system, not the model, calls a job stuck'),
    budgets: z
      .strictObject({
        max_model_calls: z.number().int().min(1).max(2000).optional().describe('model calls per job (default 120)'),
        max_input_tokens: z
          .number()
          .int()
          .min(1000)
          .optional()
          .describe('input tokens per job, cached included (default 6,000,000)'),
        max_output_tokens: z.number().int().min(100).optional().describe('output tokens per job (default 200,000)'),
        max_cost_usd: z.number().positive().max(1000).optional().describe('dollars per job (default 10)'),
        max_minutes: z
          .number()
          .positive()
          .max(24 * 60)
          .optional()
          .describe('wall-clock minutes per job (default 45)'),
        daily_cost_usd: z
          .number()
          .positive()
          .max(100_000)
          .optional()
          .describe('dollars per repository per day (default 50)'),
      })
      .optional()
      .describe('limits per job, checked before every model call'),
    instructions: z.string().max(10_000).optional().describe('free text for the agent, read as repository rules'),
  })
  .strict();
export type RepoConfig = z.infer<typeof RepoConfigSchema>;

export const DEFAULT_MAX_CI_FIXES = 3;

/** How many fixes the app may push to one of its pull requests for failing checks. */
export function maxCiFixesOf(config: RepoConfig): number {
  return config.ci?.max_fix_attempts ?? DEFAULT_MAX_CI_FIXES;
}

/** The job's budgets: the repository's settings over the defaults. */
export function budgetsOf(config: RepoConfig): Budgets {
  const b = config.budgets ?? {};
  return {
    maxModelCalls: b.max_model_calls ?? DEFAULT_BUDGETS.maxModelCalls,
    maxInputTokens: b.max_input_tokens ?? DEFAULT_BUDGETS.maxInputTokens,
    maxOutputTokens: b.max_output_tokens ?? DEFAULT_BUDGETS.maxOutputTokens,
    maxCostUsd: b.max_cost_usd ?? DEFAULT_BUDGETS.maxCostUsd,
    maxMinutes: b.max_minutes ?? DEFAULT_BUDGETS.maxMinutes,
    dailyCostUsd: b.daily_cost_usd ?? DEFAULT_BUDGETS.dailyCostUsd,
  };
}

export function stuckLimitsOf(config: RepoConfig): StuckLimits {
  const c = config.stuck ?? {};
  return {
    toolFailuresInARow: c.tool_failures_in_a_row ?? DEFAULT_STUCK_LIMITS.toolFailuresInARow,
    sameFailingCall: c.same_failing_call ?? DEFAULT_STUCK_LIMITS.sameFailingCall,
    turnsWithoutAction: c.turns_without_action ?? DEFAULT_STUCK_LIMITS.turnsWithoutAction,
    cycleRepeats: c.cycle_repeats ?? DEFAULT_STUCK_LIMITS.cycleRepeats,
  };
}

export interface CheckpointRule {
  minConfidence: number;
  maxFiles: number;
  maxLines: number;
}

export function checkpointOf(config: RepoConfig): CheckpointRule {
  const c = config.checkpoint ?? {};
  return { minConfidence: c.min_confidence ?? 0.5, maxFiles: c.max_files ?? 10, maxLines: c.max_lines ?? 400 };
}

export function triggerLabelOf(config: RepoConfig): string {
  return config.trigger_label ?? DEFAULT_TRIGGER_LABEL;
}

// ── Path policy ──────────────────────────────────────────────────────────────────────

/** The repository's `paths` as the tools enforce it (agent/tools/path-policy.ts). */
export function pathPolicyOf(config: RepoConfig): PathPolicy {
  return { allow: config.paths?.allow ?? [], deny: config.paths?.deny ?? [] };
}

// ── JSON Schema ──────────────────────────────────────────────────────────────────────

/** The config's JSON Schema (draft 2020-12), for editors and for the `expected` of errors. */
export function repoConfigJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(RepoConfigSchema, { target: 'draft-2020-12', io: 'input' }) as Record<
    string,
    unknown
  >;
  return {
    $schema,
    $id: REPO_CONFIG_SCHEMA_ID,
    title: 'issue-agent repository config (.github/agent.yml)',
    description: `Per-repository settings for the issue-agent GitHub App, read from ${REPO_CONFIG_PATH} on the default branch. Every field is optional. Editors that use the YAML language server pick this schema up from a first line "# yaml-language-server: $schema=${REPO_CONFIG_SCHEMA_ID}".`,
    ...rest,
  };
}

/** The text of `schema/agent.schema.json`, exactly as `npm run schema` writes it. */
export function repoConfigJsonSchemaText(): string {
  return `${JSON.stringify(repoConfigJsonSchema(), null, 2)}\n`;
}

// ── Errors that name the line ────────────────────────────────────────────────────────

/** One thing wrong with the file. `field` is a dotted path (`budgets.max_cost_usd`, `paths.deny[0]`), or `(top level)`. */
export interface ConfigProblem {
  line?: number;
  field: string;
  problem: string;
  expected?: string;
}

/** One line of plain text for a problem: `line 4, budgets.max_cost_usd: … — expected: …`. */
export function formatConfigProblem(p: ConfigProblem): string {
  const where = [p.line !== undefined ? `line ${p.line}` : undefined, p.field].filter(Boolean).join(', ');
  return `${where}: ${p.problem}${p.expected ? ` — expected: ${p.expected}` : ''}`;
}

export class RepoConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(`${REPO_CONFIG_PATH} is invalid:\n${problems.map((p) => `- ${formatConfigProblem(p)}`).join('\n')}`);
    this.name = 'RepoConfigError';
  }
}

const TOP_LEVEL = '(top level)';

function fieldName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : `${out ? '.' : ''}${String(seg)}`;
  return out || TOP_LEVEL;
}

/** A value from the file, quoted for a message and kept short. */
function quote(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'has no value';
  if (Array.isArray(value)) return 'is a list';
  if (typeof value === 'object') return 'is a mapping';
  if (typeof value === 'string') return `is text (${quote(value)})`;
  return `is ${typeof value === 'boolean' ? 'a boolean' : 'a number'} (${quote(value)})`;
}

const TYPE_NOUN: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'text',
  object: 'a mapping',
  array: 'a list',
  boolean: 'true or false',
};

type JsonNode = Record<string, unknown>;
let jsonSchemaCache: JsonNode | undefined;

/** The JSON Schema node for a path into the config, when there is one. */
function schemaAt(path: readonly PropertyKey[]): JsonNode | undefined {
  jsonSchemaCache ??= repoConfigJsonSchema();
  let node: JsonNode | undefined = jsonSchemaCache;
  for (const seg of path) {
    if (!node) return undefined;
    if (typeof seg === 'number') node = node.items as JsonNode | undefined;
    else node = (node.properties as Record<string, JsonNode> | undefined)?.[String(seg)];
  }
  return node;
}

const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 6 });
const bounded = (n: unknown): n is number => typeof n === 'number' && Math.abs(n) < Number.MAX_SAFE_INTEGER;

/** What a schema node accepts, in words: "a whole number from 1 to 10 (rounds … (default 3))". */
function expectedOf(node: JsonNode | undefined, withDescription = true): string | undefined {
  if (!node) return undefined;
  let what: string;
  const type = node.type;
  if (type === 'integer' || type === 'number') {
    const lo = bounded(node.minimum) ? node.minimum : undefined;
    const loEx = bounded(node.exclusiveMinimum) ? node.exclusiveMinimum : undefined;
    const hi = bounded(node.maximum) ? node.maximum : undefined;
    const noun = type === 'integer' ? 'a whole number' : 'a number';
    if (lo !== undefined && hi !== undefined) what = `${noun} from ${fmt(lo)} to ${fmt(hi)}`;
    else if (loEx !== undefined && hi !== undefined) what = `${noun} above ${fmt(loEx)} and at most ${fmt(hi)}`;
    else if (lo !== undefined) what = `${noun} of at least ${fmt(lo)}`;
    else if (loEx !== undefined) what = `${noun} above ${fmt(loEx)}`;
    else if (hi !== undefined) what = `${noun} of at most ${fmt(hi)}`;
    else what = noun;
  } else if (type === 'string') {
    const min = typeof node.minLength === 'number' ? node.minLength : 0;
    const max = typeof node.maxLength === 'number' ? node.maxLength : undefined;
    what =
      max !== undefined
        ? min > 0
          ? `text of ${fmt(min)} to ${fmt(max)} characters`
          : `text of at most ${fmt(max)} characters`
        : min > 0
          ? 'text that is not empty'
          : 'text';
    if (typeof node.pattern === 'string') what += ` matching ${node.pattern}`;
  } else if (type === 'array') {
    const item = node.items as JsonNode | undefined;
    what = `a list of ${item?.type === 'string' ? 'strings' : 'values'}`;
    if (typeof node.minItems === 'number' && node.minItems > 0) what += ` (at least ${node.minItems})`;
  } else if (type === 'object') {
    const keys = Object.keys((node.properties as object | undefined) ?? {});
    what = keys.length ? `a mapping with any of the keys ${keys.join(', ')}` : 'a mapping';
  } else {
    return typeof node.description === 'string' ? node.description : undefined;
  }
  if (Array.isArray(node.examples) && typeof node.examples[0] === 'string') what += `, e.g. ${node.examples[0]}`;
  return withDescription && typeof node.description === 'string' ? `${what} (${node.description})` : what;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** The allowed key a misspelt one most likely meant: same letters, a prefix, or a typo or two away. */
function closestKey(key: string, allowed: string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const k = norm(key);
  if (!k) return undefined;
  return (
    allowed.find((a) => norm(a) === k) ??
    allowed.find((a) => norm(a).startsWith(k) || k.startsWith(norm(a))) ??
    allowed
      .map((a) => ({ a, d: editDistance(norm(a), k) }))
      .filter(({ d }) => d <= Math.min(2, Math.floor(k.length / 3)))
      .sort((x, y) => x.d - y.d)[0]?.a
  );
}

/** Problem and expectation for one zod issue; an unknown-keys issue becomes one problem per key. */
function describeIssue(
  issue: z.core.$ZodIssue,
  data: unknown,
): Array<{ path: PropertyKey[]; key?: boolean; problem: string; expected?: string }> {
  const path = issue.path;
  const value = valueAt(data, path);
  const node = schemaAt(path);
  // The whole file's description is too long to repeat in an error.
  const expected = expectedOf(node, path.length > 0);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = Object.keys((node?.properties as object | undefined) ?? {});
      return issue.keys.map((k) => {
        const meant = closestKey(k, allowed);
        return {
          path: [...path, k],
          key: true,
          problem: `unknown key ${quote(k)}${path.length ? ` in ${fieldName(path)}` : ''}${meant ? ` (did you mean ${meant}?)` : ''}`,
          expected: `one of the keys ${allowed.join(', ')}`,
        };
      });
    }
    case 'invalid_type':
      if (issue.expected === 'int') return [{ path, problem: `${quote(value)} is not a whole number`, expected }];
      return [
        { path, problem: `${describeValue(value)}, not ${TYPE_NOUN[issue.expected] ?? issue.expected}`, expected },
      ];
    case 'too_small': {
      const n = Number(issue.minimum);
      if (issue.origin === 'string')
        return [{ path, problem: n <= 1 ? 'is empty' : `is shorter than ${fmt(n)} characters`, expected }];
      if (issue.origin === 'array')
        return [{ path, problem: n <= 1 ? 'is an empty list' : `has fewer than ${fmt(n)} items`, expected }];
      return [
        {
          path,
          problem: issue.inclusive
            ? `${quote(value)} is below the minimum of ${fmt(n)}`
            : `${quote(value)} is not above ${fmt(n)}`,
          expected,
        },
      ];
    }
    case 'too_big': {
      const n = Number(issue.maximum);
      if (issue.origin === 'string')
        return [
          {
            path,
            problem: `is ${typeof value === 'string' ? fmt(value.length) : 'more than'} characters long, over the limit of ${fmt(n)}`,
            expected,
          },
        ];
      if (issue.origin === 'array')
        return [
          {
            path,
            problem: `has ${Array.isArray(value) ? fmt(value.length) : 'more than'} items, over the limit of ${fmt(n)}`,
            expected,
          },
        ];
      return [
        {
          path,
          problem: issue.inclusive
            ? `${quote(value)} is above the maximum of ${fmt(n)}`
            : `${quote(value)} is not below ${fmt(n)}`,
          expected,
        },
      ];
    }
    case 'invalid_format':
      return [{ path, problem: `${quote(value)} does not have the expected form`, expected }];
    case 'invalid_value':
      return [
        { path, problem: `${quote(value)} is not one of ${issue.values.map((v) => quote(v)).join(', ')}`, expected },
      ];
    case 'custom':
      return [{ path, problem: `${quote(value)}: ${issue.message}`, expected }];
    default:
      return [{ path, problem: issue.message, expected }];
  }
}

function keyName(node: unknown): string | undefined {
  if (isScalar(node)) return String(node.value);
  return node === null || node === undefined ? undefined : String(node);
}

/**
 * The node where a problem is best shown: the value at `path` (its key when `key` is set
 * or the value is empty), else the nearest ancestor that exists in the file.
 */
function rangeAt(doc: Document, path: readonly PropertyKey[], key: boolean): Range | undefined {
  let node: unknown = doc.contents;
  let best = (node as YamlNode | null)?.range ?? undefined;
  for (const [i, seg] of path.entries()) {
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyName(p.key) === String(seg));
      if (!pair) return best;
      const keyRange = (pair.key as YamlNode | null)?.range ?? undefined;
      const valueRange = (pair.value as YamlNode | null)?.range ?? undefined;
      if (last && key) return keyRange ?? best;
      best = valueRange ?? keyRange ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (!item) return best;
      best = (item as YamlNode).range ?? best;
      node = item;
    } else {
      return best;
    }
  }
  return best;
}

/** The dotted key path around an offset, for a YAML syntax error. */
function fieldAtOffset(doc: Document, offset: number): string {
  const path: PropertyKey[] = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const start = (p.key as YamlNode | null)?.range?.[0];
        const end = (p.value as YamlNode | null)?.range?.[2] ?? (p.key as YamlNode | null)?.range?.[2];
        return start !== undefined && end !== undefined && start <= offset && offset <= end;
      });
      if (!pair || !isPair(pair)) break;
      path.push(keyName(pair.key) ?? '');
      node = pair.value;
    } else break; // inside a list the key above names the field well enough
  }
  return fieldName(path);
}

/** An error at the end of the file or on a blank line is shown on the last line with text before it. */
function lineOf(text: string, lineCounter: LineCounter, offset: number): number {
  const lines = text.split('\n');
  let line = lineCounter.linePos(Math.min(offset, text.length)).line;
  while (line > 1 && (lines[line - 1] ?? '').trim() === '') line--;
  return line;
}

const SYNTAX_EXPECTED: Record<string, string> = {
  TAB_AS_INDENT: 'indentation with spaces, not tabs',
  DUPLICATE_KEY: 'each key once in a mapping',
  BAD_INDENT: 'consistent indentation, and every [ or { closed',
  MISSING_CHAR: 'every quote and bracket closed',
};

/** Parses the file's text; a YAML or schema error names the line and the field. */
/** What the operator, not the repository, decides about a repository's config. */
export interface OperatorPolicy {
  /** SANDBOX_ALLOW_HOST_NETWORK: whether `install_network: full` may be honoured. */
  allowHostNetwork?: boolean;
}

/**
 * Parses `.github/agent.yml`; throws RepoConfigError naming each problem and its line. A
 * setting the operator does not allow is a problem of the file too, so it is explained the same way.
 */
export function parseRepoConfig(text: string | undefined, operator: OperatorPolicy = {}): RepoConfig {
  if (text === undefined || text.trim() === '') return {};
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new RepoConfigError(
      doc.errors.map((e) => ({
        line: lineOf(text, lineCounter, e.pos[0]),
        field: fieldAtOffset(doc, e.pos[0]),
        // prettyErrors appends the position and an excerpt; the line is carried apart.
        problem: `YAML syntax: ${(e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '')}`,
        expected: SYNTAX_EXPECTED[e.code],
      })),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS() ?? {};
  } catch (err) {
    // An unresolved alias or an alias bomb only shows when the document is built.
    throw new RepoConfigError([
      { field: TOP_LEVEL, problem: `YAML: ${err instanceof Error ? err.message : String(err)}` },
    ]);
  }
  const parsed = RepoConfigSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue) =>
      describeIssue(issue, data).map(({ path, key, problem, expected }) => {
        const range = rangeAt(doc, path, key ?? false);
        return {
          ...(range ? { line: lineOf(text, lineCounter, range[0]) } : {}),
          field: fieldName(path),
          problem,
          ...(expected ? { expected } : {}),
        };
      }),
    );
    throw new RepoConfigError(problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
  }
  if (parsed.data.install_network === 'full' && !operator.allowHostNetwork) {
    const range = rangeAt(doc, ['install_network'], false);
    throw new RepoConfigError([
      {
        ...(range ? { line: lineOf(text, lineCounter, range[0]) } : {}),
        field: 'install_network',
        problem: '"full" (the worker host\'s own network) is not allowed by this app\'s operator',
        expected:
          '"registries" (the package registries, through the egress proxy) or "none"; an operator allows "full" with SANDBOX_ALLOW_HOST_NETWORK=1',
      },
    ]);
  }
  return parsed.data;
}
