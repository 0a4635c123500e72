import { z } from 'zod';
import type { Logger } from 'pino';
import type { PathPolicy } from './path-policy.js';
import type { Runner } from '../../sandbox/runner.js';

/** A structured error the model can act on: what went wrong and what to try. */
export interface ToolError {
  code: string;
  message: string;
  hint?: string;
  candidates?: string[];
}

/** Thrown by a tool's `run` to answer with a structured error instead of a crash. */
export class ToolFailure extends Error {
  constructor(readonly error: ToolError) {
    super(error.message);
    this.name = 'ToolFailure';
  }
}

export interface ToolCallRecord {
  tool: string;
  ok: boolean;
  errorCode?: string;
  durationMs: number;
  input: unknown;
}

export interface ToolContext {
  workTree: string;
  runner: Runner;
  /** Extra read-only paths the sandbox needs (the git mirror behind a shared clone). */
  sandboxReadOnlyPaths: string[];
  log: Logger;
  /** Files the stage may edit; undefined means the stage may edit none. */
  editable?: Set<string>;
  /** Files changed by this stage's edits, for the diff and the report. */
  touched: Set<string>;
  /** Files added to the editable set beyond the plan, each with the model's reason. */
  scopeRequests?: Array<{ path: string; reason: string }>;
  /** The repository's `paths` rules from .github/agent.yml; they win over the plan and request_scope. */
  pathPolicy?: PathPolicy;
  /** Aborted when a writer asks the job to stop: a running command is killed. */
  signal?: AbortSignal;
}

/** What a tool gives back: text for the model, and optional metadata for people and traces. */
export interface ToolOutput {
  output: string;
  metadata?: Record<string, unknown>;
}

export interface Tool<S extends z.ZodObject = z.ZodObject> {
  name: string;
  description: string;
  input: S;
  /** A terminal tool ends the stage when it succeeds; its input is the stage's result. */
  terminal?: boolean;
  /** A valid call, shown to the model when it gets one wrong. */
  example: z.infer<S>;
  run(input: z.infer<S>, ctx: ToolContext): Promise<ToolOutput>;
}

/** Keeps a tool's types tied to its schema. */
export function defineTool<S extends z.ZodObject>(tool: Tool<S>): Tool<S> {
  return tool;
}

export type ToolAnswer =
  | { ok: true; output: string; metadata?: Record<string, unknown> }
  | { ok: false; error: ToolError };

const MAX_OUTPUT_CHARS = 20_000;
const MAX_LINE_CHARS = 2_000;

/** Bounds text for a model: long lines clipped, then head and tail with an explicit marker. */
export function boundOutput(text: string, maxChars = MAX_OUTPUT_CHARS): string {
  const lines = text
    .split('\n')
    .map((l) => (l.length > MAX_LINE_CHARS ? `${l.slice(0, MAX_LINE_CHARS)}… [line clipped, ${l.length} chars]` : l));
  const joined = lines.join('\n');
  if (joined.length <= maxChars) return joined;
  const head: string[] = [];
  const tail: string[] = [];
  let budget = maxChars / 2;
  for (const l of lines) {
    if (budget - l.length - 1 < 0) break;
    head.push(l);
    budget -= l.length + 1;
  }
  budget = maxChars / 2;
  for (let i = lines.length - 1; i >= head.length; i--) {
    const l = lines[i]!;
    if (budget - l.length - 1 < 0) break;
    tail.unshift(l);
    budget -= l.length + 1;
  }
  const omitted = lines.length - head.length - tail.length;
  return [...head, `[… ${omitted} lines omitted …]`, ...tail].join('\n');
}

/** The JSON Schema of a tool's input, through zod's own converter. */
export function inputJsonSchema(tool: Tool): Record<string, unknown> {
  const schema = z.toJSONSchema(tool.input, { target: 'draft-2020-12' }) as Record<string, unknown>;
  delete schema.$schema;
  return schema;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let v: unknown = input;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function looksLikeEncodedJson(s: string): boolean {
  const t = s.trim();
  if (!/^[[{"]|^(true|false|null|-?\d)/.test(t)) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}

/** Every zod issue, with the field path, what was expected and what was received. */
export function describeInvalidInput(tool: Tool, input: unknown, issues: z.core.$ZodIssue[]): ToolError {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return {
      code: 'invalid_input',
      message: `${tool.name} takes an object of named fields, but received ${describeType(input)}${typeof input === 'string' ? ' (JSON encoded as a string?)' : ''}`,
      hint: `call it like this: ${JSON.stringify(tool.example)}`,
    };
  }
  // Unknown fields first: a misnamed field usually also shows up as a missing one.
  const ordered = [...issues].sort(
    (a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'),
  );
  const lines = ordered.map((i) => {
    const where = i.path.length ? i.path.join('.') : '(input)';
    const got = valueAt(input, i.path);
    const received = got === undefined ? 'nothing' : `${describeType(got)} ${JSON.stringify(got)?.slice(0, 80)}`;
    // zod says "received undefined" for a missing field; say it plainly.
    let line =
      got === undefined && i.code === 'invalid_type'
        ? `${where}: required, ${i.message.replace(/^Invalid input: /, '').replace(/, received undefined$/, '')}, but missing`
        : `${where}: ${i.message} (received ${received})`;
    if (i.code === 'unrecognized_keys') {
      const fields = Object.keys(tool.input.shape);
      const meant = i.keys
        .map(
          (k) =>
            [
              k,
              fields.find(
                (f) =>
                  f !== k &&
                  (f.startsWith(k) || k.startsWith(f) || f.replace(/_/g, '') === k.toLowerCase().replace(/[_-]/g, '')),
              ),
            ] as const,
        )
        .filter(([, f]) => f);
      line = `${i.keys.map((k) => `"${k}"`).join(', ')}: not a field of ${tool.name}; its fields are ${fields.join(', ')}${meant.length ? ` (did you mean ${meant.map(([k, f]) => `${f} for ${k}`).join(', ')}?)` : ''}`;
    }
    if (typeof got === 'string' && i.code === 'invalid_type' && looksLikeEncodedJson(got))
      line += '; this looks like JSON encoded as a string: pass the value itself';
    return line;
  });
  const shape = tool.input.shape as Record<string, z.ZodType>;
  const fields = Object.entries(shape).map(
    ([k, s]) => `${k}${s.safeParse(undefined).success ? '?' : ''}: ${s.description ?? ''}`,
  );
  return {
    code: 'invalid_input',
    message: `${tool.name} was called with invalid input:\n${lines.join('\n')}`,
    hint: `${tool.name} takes: ${fields.join('; ')}. A valid call: ${JSON.stringify(tool.example)}`,
  };
}

/**
 * The one wrapper every tool call passes through: it validates the input, turns every
 * failure into a structured error, bounds the output and records the call.
 */
export async function callTool(
  tools: readonly Tool[],
  name: string,
  input: unknown,
  ctx: ToolContext,
  record: (r: ToolCallRecord) => void,
): Promise<ToolAnswer> {
  const started = Date.now();
  const answer = await answerCall(tools, name, input, ctx);
  record({
    tool: name,
    ok: answer.ok,
    errorCode: answer.ok ? undefined : answer.error.code,
    durationMs: Date.now() - started,
    input,
  });
  return answer;
}

async function answerCall(tools: readonly Tool[], name: string, input: unknown, ctx: ToolContext): Promise<ToolAnswer> {
  const tool = tools.find((t) => t.name === name);
  if (!tool) {
    const norm = (n: string) => n.toLowerCase().replace(/[^a-z0-9]/g, '');
    const meant = tools.find((t) => norm(t.name) === norm(name));
    return {
      ok: false,
      error: {
        code: 'unknown_tool',
        message: `there is no tool "${name}" in this stage${meant ? `; did you mean "${meant.name}"?` : ''}`,
        hint: meant ? `call "${meant.name}" with the same input` : 'call one of the candidates',
        candidates: tools.map((t) => t.name),
      },
    };
  }
  const parsed = tool.input.safeParse(input);
  if (!parsed.success) return { ok: false, error: describeInvalidInput(tool, input, parsed.error.issues) };
  try {
    const result = await tool.run(parsed.data, ctx);
    return { ok: true, output: boundOutput(result.output), metadata: result.metadata };
  } catch (err) {
    if (err instanceof ToolFailure) return { ok: false, error: err.error };
    ctx.log.warn({ err, tool: name }, 'tool threw');
    const message = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      error: {
        code: 'internal_error',
        message: `${name} failed: ${message}`,
        hint: 'this is a fault of the tool, not of your input; try another approach',
      },
    };
  }
}

/** The text a tool_result carries back to the model. */
export function answerText(answer: ToolAnswer): string {
  if (answer.ok) return answer.output || '(no output)';
  const { code, message, hint, candidates } = answer.error;
  return [
    `error (${code}): ${message}`,
    hint ? `hint: ${hint}` : '',
    candidates?.length ? `candidates: ${candidates.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('\n');
}
