/**
 * A stand-in for the Anthropic Messages API: a real HTTP server the real SDK talks to.
 * It refuses what the real API refuses (with the API's error envelope and messages as close
 * to the real ones as known), records every refusal in `violations`, and answers accepted
 * requests from a per-test scripted model, as JSON or as the API's SSE stream.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type Anthropic from '@anthropic-ai/sdk';

export type MessagesRequest = Anthropic.MessageCreateParams;
export type Usage = Anthropic.Usage;

export type ScriptedBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; name: string; input: unknown; id?: string };

export interface ScriptedReply {
  content: ScriptedBlock[];
  stop_reason?: 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence';
  usage?: Partial<Usage>;
}

export type ScriptedModel = (
  req: MessagesRequest,
  ctx: { callIndex: number },
) => ScriptedReply | Promise<ScriptedReply>;

export interface AnthropicStandInOptions {
  /** When set, only this key is accepted (otherwise any non-empty key is). */
  apiKey?: string;
  /**
   * Prefixes shorter than this many (estimated) tokens are not cached, as with the real
   * API's per-model minimum (1024–4096). Default 0 so small test prompts still cache.
   */
  minCacheableTokens?: number;
}

export interface AnthropicStandIn {
  url: string;
  setModel(m: ScriptedModel): void;
  /** Every accepted request body, in order. */
  requests: MessagesRequest[];
  /** One line per refused request (and per scripted reply the real model could not give). */
  violations: string[];
  /** Every POST to /v1/messages, accepted or not (retries show up here). */
  readonly attempts: number;
  /**
   * The next `times` POSTs to /v1/messages answer with this error instead (queued in call
   * order with `hangNext`; `times` may be Infinity for an outage that does not end).
   */
  failNext(status: number, body?: unknown, headers?: Record<string, string>, times?: number): void;
  /** The next streaming request starts normally, then gets an SSE `error` event. */
  failNextMidStream(errorType?: string, message?: string): void;
  /** The next streaming request starts normally, then its connection is cut (no error event). */
  dropNextMidStream(): void;
  /**
   * The next POST never gets an answer: before any header (default), or, with `afterStart`,
   * after the stream's first events. Hung requests are released by close().
   */
  hangNext(opts?: { afterStart?: boolean }): void;
  /** Forgets every queued fault (an endless `failNext` included). */
  clearFaults(): void;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

const ERROR_TYPE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

const DEFAULT_MESSAGE_BY_TYPE: Record<string, string> = {
  invalid_request_error: 'Invalid request',
  authentication_error: 'invalid x-api-key',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error: 'This request would exceed the rate limit for your organization of 50 requests per minute.',
  api_error: 'Internal server error',
  timeout_error: 'Request timed out',
  overloaded_error: 'Overloaded',
};

const TOP_LEVEL_FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'cache_control',
  'container',
  'diagnostics',
  'inference_geo',
  'metadata',
  'output_config',
  'service_tier',
  'speed',
  'stop_sequences',
  'stream',
  'system',
  'temperature',
  'thinking',
  'tool_choice',
  'tools',
  'top_k',
  'top_p',
  'user_profile_id',
  'workspace_id',
  'mcp_servers',
  'context_management',
  'output_format',
]);

const USER_BLOCK_TYPES = new Set(['text', 'image', 'document', 'search_result', 'tool_result']);
const ASSISTANT_BLOCK_TYPES = new Set([
  'text',
  'tool_use',
  'thinking',
  'redacted_thinking',
  'server_tool_use',
  'web_search_tool_result',
  'web_fetch_tool_result',
  'code_execution_tool_result',
  'bash_code_execution_tool_result',
  'text_editor_code_execution_tool_result',
  'tool_search_tool_result',
  'container_upload',
]);
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const TOOL_USE_ID = /^[a-zA-Z0-9_-]+$/;
const MAX_CACHE_BREAKPOINTS = 4;
const CACHE_LOOKBACK_BLOCKS = 20;

/** A refusal: HTTP status, error type and the message the API would give. */
class Refusal {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly message: string,
  ) {}
}

const bad = (message: string) => new Refusal(400, 'invalid_request_error', message);

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function id(prefix: string): string {
  // Real ids are base62-ish, 24 chars after the prefix.
  return prefix + randomBytes(18).toString('base64url').replace(/[-_]/g, 'x').slice(0, 24);
}

const tokensOf = (chars: number) => Math.ceil(chars / 4);

// ---------------------------------------------------------------------------------------
// Validation

function validateCacheControl(cc: unknown, path: string): void {
  if (cc === undefined || cc === null) return;
  const p = path ? `${path}.cache_control` : 'cache_control';
  if (!isObject(cc)) throw bad(`${p}: Input should be a valid dictionary`);
  if (cc.type !== 'ephemeral') throw bad(`${p}.type: Input should be 'ephemeral'`);
  if (cc.ttl !== undefined && cc.ttl !== '5m' && cc.ttl !== '1h') {
    throw bad(`${p}.ttl: Input should be '5m' or '1h'`);
  }
}

function hasCacheControl(b: unknown): boolean {
  return isObject(b) && b.cache_control !== undefined && b.cache_control !== null;
}

function validateTextBlock(b: Json, path: string, scope: 'messages' | 'system'): void {
  if (typeof b.text !== 'string') throw bad(`${path}.text.text: Input should be a valid string`);
  if (b.text.length === 0) throw bad(`${scope}: text content blocks must be non-empty`);
  if (b.text.trim().length === 0) {
    throw bad(`${scope}: text content blocks must contain non-whitespace text`);
  }
  validateCacheControl(b.cache_control, path);
}

function validateToolResultContent(content: unknown, path: string): void {
  if (content === undefined || typeof content === 'string') return;
  if (!Array.isArray(content)) {
    throw bad(`${path}.tool_result.content: Input should be a valid string or list`);
  }
  content.forEach((inner: unknown, k) => {
    const p = `${path}.tool_result.content.${k}`;
    if (!isObject(inner)) throw bad(`${p}: Input should be a valid dictionary`);
    if (!['text', 'image', 'document', 'search_result', 'tool_reference'].includes(String(inner.type))) {
      throw bad(
        `${p}: Input tag '${String(inner.type)}' found using 'type' does not match any of the expected tags: 'text', 'image', 'search_result', 'document', 'tool_reference'`,
      );
    }
    if (inner.type === 'text') validateTextBlock(inner, p, 'messages');
    else validateCacheControl(inner.cache_control, p);
  });
}

function validateBlock(b: unknown, role: 'user' | 'assistant', path: string): void {
  if (!isObject(b)) throw bad(`${path}: Input should be a valid dictionary`);
  const type = String(b.type);
  const allowed = role === 'user' ? USER_BLOCK_TYPES : ASSISTANT_BLOCK_TYPES;
  if (!allowed.has(type)) {
    if (type === 'tool_use' || type === 'tool_result') {
      const other = type === 'tool_use' ? 'assistant' : 'user';
      throw bad(`${path}: \`${type}\` blocks can only be in \`${other}\` messages`);
    }
    throw bad(
      `${path}: Input tag '${type}' found using 'type' does not match any of the expected tags: ${[...allowed].map((t) => `'${t}'`).join(', ')}`,
    );
  }
  switch (type) {
    case 'text':
      validateTextBlock(b, path, 'messages');
      return;
    case 'tool_use':
      if (typeof b.id !== 'string') throw bad(`${path}.tool_use.id: Field required`);
      if (!TOOL_USE_ID.test(b.id)) {
        throw bad(`${path}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'`);
      }
      if (typeof b.name !== 'string') throw bad(`${path}.tool_use.name: Field required`);
      if (!isObject(b.input)) throw bad(`${path}.tool_use.input: Input should be a valid dictionary`);
      break;
    case 'tool_result':
      if (typeof b.tool_use_id !== 'string') throw bad(`${path}.tool_result.tool_use_id: Field required`);
      if (!TOOL_USE_ID.test(b.tool_use_id)) {
        throw bad(`${path}.tool_result.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'`);
      }
      if (b.is_error !== undefined && typeof b.is_error !== 'boolean') {
        throw bad(`${path}.tool_result.is_error: Input should be a valid boolean`);
      }
      validateToolResultContent(b.content, path);
      break;
    case 'thinking':
      if (typeof b.thinking !== 'string') throw bad(`${path}.thinking.thinking: Field required`);
      if (typeof b.signature !== 'string') throw bad(`${path}.thinking.signature: Field required`);
      break;
  }
  validateCacheControl(b.cache_control, path);
}

function validateTools(tools: unknown): Map<string, Json> {
  const byName = new Map<string, Json>();
  if (tools === undefined) return byName;
  if (!Array.isArray(tools)) throw bad('tools: Input should be a valid list');
  tools.forEach((t: unknown, i) => {
    const path = `tools.${i}`;
    if (!isObject(t)) throw bad(`${path}: Input should be a valid dictionary`);
    const custom = t.type === undefined || t.type === null || t.type === 'custom';
    const p = custom ? `${path}.custom` : `${path}.${String(t.type)}`;
    if (typeof t.name !== 'string') throw bad(`${p}.name: Field required`);
    if (!TOOL_NAME.test(t.name)) {
      throw bad(`${p}.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`);
    }
    if (custom) {
      if (t.input_schema === undefined) throw bad(`${p}.input_schema: Field required`);
      if (!isObject(t.input_schema)) throw bad(`${p}.input_schema: Input should be a valid dictionary`);
      if (t.input_schema.type !== 'object') throw bad(`${p}.input_schema.type: Input should be 'object'`);
      if (t.description !== undefined && typeof t.description !== 'string') {
        throw bad(`${p}.description: Input should be a valid string`);
      }
    }
    validateCacheControl(t.cache_control, p);
    if (byName.has(t.name)) throw bad('tools: Tool names must be unique.');
    byName.set(t.name, t);
  });
  return byName;
}

function checkToolPairing(messages: Json[]): void {
  const seenToolUseIds = new Set<string>();
  messages.forEach((m, i) => {
    const blocks = Array.isArray(m.content) ? (m.content as Json[]) : [];
    if (m.role === 'assistant') {
      const ids = blocks.filter((b) => b.type === 'tool_use').map((b) => String(b.id));
      for (const toolUseId of ids) {
        if (seenToolUseIds.has(toolUseId)) throw bad(`messages.${i}: \`tool_use\` ids must be unique`);
        seenToolUseIds.add(toolUseId);
      }
      if (ids.length === 0) return;
      const next = messages[i + 1];
      const nextBlocks = next && next.role === 'user' && Array.isArray(next.content) ? (next.content as Json[]) : [];
      // Results must lead the next user message; text placed before them breaks the pairing.
      const leading: Json[] = [];
      for (const b of nextBlocks) {
        if (b.type !== 'tool_result') break;
        leading.push(b);
      }
      const answered = new Set(leading.map((b) => String(b.tool_use_id)));
      const missing = ids.filter((x) => !answered.has(x));
      if (missing.length > 0) {
        throw bad(
          `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
        );
      }
    } else {
      const prev = messages[i - 1];
      const prevBlocks =
        prev && prev.role === 'assistant' && Array.isArray(prev.content) ? (prev.content as Json[]) : [];
      const offered = new Set(prevBlocks.filter((b) => b.type === 'tool_use').map((b) => String(b.id)));
      const seenHere = new Set<string>();
      blocks.forEach((b, j) => {
        if (b.type !== 'tool_result') return;
        const ref = String(b.tool_use_id);
        if (!offered.has(ref)) {
          throw bad(
            `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${ref}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
          );
        }
        if (seenHere.has(ref)) {
          throw bad(
            `messages.${i}.content.${j}: each \`tool_result\` block must have a unique \`tool_use_id\`: ${ref}`,
          );
        }
        seenHere.add(ref);
      });
    }
  });
}

/** Throws the Refusal the real API would answer for this body. */
function validateRequest(body: unknown, opts: { countTokens: boolean }): void {
  if (!isObject(body)) throw bad('Input should be a valid dictionary');
  for (const key of Object.keys(body)) {
    if (!TOP_LEVEL_FIELDS.has(key)) throw bad(`${key}: Extra inputs are not permitted`);
  }
  if (opts.countTokens && ('max_tokens' in body || 'stream' in body)) {
    throw bad(`${'max_tokens' in body ? 'max_tokens' : 'stream'}: Extra inputs are not permitted`);
  }

  if (body.model === undefined) throw bad('model: Field required');
  if (typeof body.model !== 'string' || body.model.length === 0) throw bad('model: Input should be a valid string');
  if (!opts.countTokens) {
    if (body.max_tokens === undefined) throw bad('max_tokens: Field required');
    if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens)) {
      throw bad('max_tokens: Input should be a valid integer');
    }
    if (body.max_tokens < 1) throw bad('max_tokens: Input should be greater than or equal to 1');
    if (body.stream !== undefined && typeof body.stream !== 'boolean') {
      throw bad('stream: Input should be a valid boolean');
    }
  }
  if (body.messages === undefined) throw bad('messages: Field required');
  if (!Array.isArray(body.messages)) throw bad('messages: Input should be a valid list');

  for (const [field, lo, hi] of [
    ['temperature', 0, 1],
    ['top_p', 0, 1],
  ] as const) {
    const v = body[field];
    if (v === undefined) continue;
    if (typeof v !== 'number') throw bad(`${field}: Input should be a valid number`);
    if (v < lo) throw bad(`${field}: Input should be greater than or equal to ${lo}`);
    if (v > hi) throw bad(`${field}: Input should be less than or equal to ${hi}`);
  }
  if (body.top_k !== undefined && (typeof body.top_k !== 'number' || !Number.isInteger(body.top_k) || body.top_k < 0)) {
    throw bad('top_k: Input should be a valid integer greater than or equal to 0');
  }
  if (body.stop_sequences !== undefined) {
    if (!Array.isArray(body.stop_sequences) || body.stop_sequences.some((s) => typeof s !== 'string')) {
      throw bad('stop_sequences: Input should be a valid list of strings');
    }
    if (body.stop_sequences.some((s: string) => s.trim().length === 0)) {
      throw bad('stop_sequences: each stop sequence must contain non-whitespace');
    }
  }
  if (body.metadata !== undefined) {
    if (!isObject(body.metadata)) throw bad('metadata: Input should be a valid dictionary');
    for (const key of Object.keys(body.metadata)) {
      if (key !== 'user_id') throw bad(`metadata.${key}: Extra inputs are not permitted`);
    }
  }

  // system
  if (body.system !== undefined) {
    if (Array.isArray(body.system)) {
      body.system.forEach((b: unknown, i) => {
        if (!isObject(b) || b.type !== 'text') throw bad(`system.${i}.type: Input should be 'text'`);
        validateTextBlock(b, `system.${i}`, 'system');
      });
    } else if (typeof body.system !== 'string') {
      throw bad('system: Input should be a valid string or list');
    }
  }

  // messages
  const messages = body.messages as unknown[];
  if (messages.length === 0) throw bad('messages: at least one message is required');
  messages.forEach((m, i) => {
    if (!isObject(m)) throw bad(`messages.${i}: Input should be a valid dictionary`);
    for (const key of Object.keys(m)) {
      if (key !== 'role' && key !== 'content') throw bad(`messages.${i}.${key}: Extra inputs are not permitted`);
    }
    if (m.role !== 'user' && m.role !== 'assistant') {
      throw bad(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    if (m.content === undefined) throw bad(`messages.${i}.content: Field required`);
    const last = i === messages.length - 1;
    if (typeof m.content === 'string') {
      if (m.content.length === 0 && !(last && m.role === 'assistant')) {
        throw bad(
          `messages.${i}: all messages must have non-empty content except for the optional final assistant message`,
        );
      }
    } else if (Array.isArray(m.content)) {
      if (m.content.length === 0 && !(last && m.role === 'assistant')) {
        throw bad(
          `messages.${i}: all messages must have non-empty content except for the optional final assistant message`,
        );
      }
      for (const [j, b] of (m.content as unknown[]).entries()) {
        validateBlock(b, m.role as 'user' | 'assistant', `messages.${i}.content.${j}`);
      }
    } else {
      throw bad(`messages.${i}.content: Input should be a valid string or list`);
    }
  });
  if ((messages[0] as Json).role !== 'user') throw bad('messages: first message must use the "user" role');
  const final = messages[messages.length - 1] as Json;
  if (final.role === 'assistant') {
    const text =
      typeof final.content === 'string'
        ? final.content
        : Array.isArray(final.content) &&
            isObject(final.content.at(-1)) &&
            (final.content.at(-1) as Json).type === 'text'
          ? String((final.content.at(-1) as Json).text)
          : '';
    if (text.length > 0 && /\s$/.test(text)) throw bad('final assistant content cannot end with trailing whitespace');
  }
  checkToolPairing(messages as Json[]);

  // tools and tool_choice
  const tools = validateTools(body.tools);
  if (body.tool_choice !== undefined) {
    const tc = body.tool_choice;
    if (!isObject(tc) || !['auto', 'any', 'tool', 'none'].includes(String(tc.type))) {
      throw bad(
        "tool_choice: Input tag found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'",
      );
    }
    if ((tc.type === 'any' || tc.type === 'tool') && tools.size === 0) {
      throw bad('tool_choice may only be specified while providing tools.');
    }
    if (tc.type === 'tool') {
      if (typeof tc.name !== 'string') throw bad('tool_choice.tool.name: Field required');
      if (!tools.has(tc.name)) throw bad(`tool_choice.tool.name: Tool '${tc.name}' not found in provided tools`);
    }
  }

  // thinking
  if (body.thinking !== undefined) {
    const th = body.thinking;
    if (!isObject(th) || !['enabled', 'disabled', 'adaptive'].includes(String(th.type))) {
      throw bad(
        "thinking: Input tag found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'",
      );
    }
    if (th.type === 'enabled') {
      if (typeof th.budget_tokens !== 'number' || !Number.isInteger(th.budget_tokens)) {
        throw bad('thinking.enabled.budget_tokens: Field required');
      }
      if (th.budget_tokens < 1024)
        throw bad('thinking.enabled.budget_tokens: Input should be greater than or equal to 1024');
      if (!opts.countTokens && th.budget_tokens >= (body.max_tokens as number)) {
        throw bad(
          '`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size',
        );
      }
      const tc = body.tool_choice;
      if (isObject(tc) && (tc.type === 'any' || tc.type === 'tool')) {
        throw bad('Thinking may not be enabled when tool_choice forces tool use.');
      }
    }
  }

  // cache_control count across tools, system, messages (and nested tool_result content)
  let breakpoints = body.cache_control !== undefined && body.cache_control !== null ? 1 : 0;
  validateCacheControl(body.cache_control, '');
  for (const t of (body.tools as unknown[] | undefined) ?? []) if (hasCacheControl(t)) breakpoints++;
  if (Array.isArray(body.system)) for (const b of body.system) if (hasCacheControl(b)) breakpoints++;
  for (const m of messages as Json[]) {
    if (!Array.isArray(m.content)) continue;
    for (const b of m.content as Json[]) {
      if (hasCacheControl(b)) breakpoints++;
      if (b.type === 'tool_result' && Array.isArray(b.content)) {
        for (const inner of b.content) if (hasCacheControl(inner)) breakpoints++;
      }
    }
  }
  if (breakpoints > MAX_CACHE_BREAKPOINTS) {
    throw bad(`A maximum of ${MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found ${breakpoints}.`);
  }

  if (!body.model.startsWith('claude-')) throw new Refusal(404, 'not_found_error', `model: ${body.model}`);
}

// ---------------------------------------------------------------------------------------
// Prompt cache simulation

interface Segment {
  key: string;
  tokens: number;
  ttl: '5m' | '1h' | null; // non-null: a breakpoint
}

function stripCacheControl(b: unknown): unknown {
  if (!isObject(b)) return b;
  const { cache_control: _ignored, ...rest } = b;
  if (rest.type === 'tool_result' && Array.isArray(rest.content)) {
    rest.content = rest.content.map(stripCacheControl);
  }
  return rest;
}

function ttlOf(b: unknown): '5m' | '1h' | null {
  if (!hasCacheControl(b)) return null;
  return ((b as Json).cache_control as Json).ttl === '1h' ? '1h' : '5m';
}

/** The prompt in cache order (tools, system, messages), one segment per block. */
function segmentsOf(req: Json): Segment[] {
  const segs: Segment[] = [];
  const push = (prefix: string, b: unknown, ttl: '5m' | '1h' | null) => {
    const key = prefix + JSON.stringify(stripCacheControl(b));
    segs.push({ key, tokens: tokensOf(key.length), ttl });
  };
  for (const t of (req.tools as unknown[] | undefined) ?? []) push('tool:', t, ttlOf(t));
  if (typeof req.system === 'string') push('system:', req.system, null);
  else if (Array.isArray(req.system)) for (const b of req.system) push('system:', b, ttlOf(b));
  (req.messages as Json[]).forEach((m, i) => {
    const prefix = `${String(m.role)}#${i}:`;
    if (typeof m.content === 'string') push(prefix, m.content, null);
    else
      for (const b of m.content as Json[]) {
        // A breakpoint on content nested in a tool_result caches through its whole block.
        const nested =
          b.type === 'tool_result' && Array.isArray(b.content)
            ? (b.content as unknown[]).map(ttlOf).find((t) => t)
            : null;
        push(prefix, b, ttlOf(b) ?? nested ?? null);
      }
  });
  // Automatic caching: a top-level cache_control puts a breakpoint on the last block.
  const last = segs.at(-1);
  if (last && isObject(req.cache_control) && last.ttl === null) {
    last.ttl = req.cache_control.ttl === '1h' ? '1h' : '5m';
  }
  return segs;
}

class PromptCache {
  private readonly entries = new Map<string, number>(); // prefix hash → expiry (ms)

  constructor(private readonly minTokens: number) {}

  /** Splits the request's input tokens into uncached / cache write / cache read. */
  account(req: Json) {
    const segs = segmentsOf(req);
    const hashes: string[] = [];
    const cumTokens: number[] = [];
    // Prefixes include the model: caches are per model.
    let h: Hash = createHash('sha256').update(String(req.model));
    let total = 0;
    for (const s of segs) {
      h = h.update(`${s.key}\u0000`);
      hashes.push(h.copy().digest('hex'));
      total += s.tokens;
      cumTokens.push(total);
    }
    const now = Date.now();
    const breakpoints = segs.flatMap((s, i) => (s.ttl ? [i] : []));
    let readUpTo = -1;
    for (const bp of breakpoints) {
      for (let j = bp; j >= 0 && j > bp - CACHE_LOOKBACK_BLOCKS; j--) {
        const expiry = this.entries.get(hashes[j]!);
        if (expiry !== undefined && expiry > now) {
          readUpTo = Math.max(readUpTo, j);
          break;
        }
      }
    }
    const read = readUpTo >= 0 ? cumTokens[readUpTo]! : 0;
    let written5m = 0;
    let written1h = 0;
    let writtenUpTo = readUpTo;
    for (const bp of breakpoints) {
      const seg = segs[bp]!;
      if (cumTokens[bp]! < this.minTokens) continue;
      const ttlMs = seg.ttl === '1h' ? 3_600_000 : 300_000;
      this.entries.set(hashes[bp]!, Math.max(this.entries.get(hashes[bp]!) ?? 0, now + ttlMs));
      if (bp > writtenUpTo) {
        const fresh = cumTokens[bp]! - (writtenUpTo >= 0 ? cumTokens[writtenUpTo]! : 0);
        if (seg.ttl === '1h') written1h += fresh;
        else written5m += fresh;
        writtenUpTo = bp;
      }
    }
    // A hit refreshes the entry it was read from.
    if (readUpTo >= 0) {
      const cur = this.entries.get(hashes[readUpTo]!) ?? 0;
      this.entries.set(hashes[readUpTo]!, Math.max(cur, now + 300_000));
    }
    const write = written5m + written1h;
    return {
      input_tokens: Math.max(0, total - read - write),
      cache_read_input_tokens: read,
      cache_creation_input_tokens: write,
      cache_creation: { ephemeral_5m_input_tokens: written5m, ephemeral_1h_input_tokens: written1h },
      total,
    };
  }
}

// ---------------------------------------------------------------------------------------
// Replies

type OutBlock =
  | { type: 'text'; text: string; citations: null }
  | { type: 'tool_use'; id: string; name: string; input: Json; caller: { type: 'direct' } };

/** Checks the scripted reply is one the real model could give for this request. */
function scriptProblems(req: Json, reply: ScriptedReply): string[] {
  const problems: string[] = [];
  if (!reply || !Array.isArray(reply.content)) return ['scripted reply has no content array'];
  const toolNames = new Set(((req.tools as Json[] | undefined) ?? []).map((t) => String(t.name)));
  const uses = reply.content.filter((b) => b.type === 'tool_use');
  for (const b of uses) {
    if (!toolNames.has(b.name)) problems.push(`scripted reply calls tool '${b.name}' that the request does not define`);
    if (!isObject(b.input)) problems.push(`scripted reply gives tool '${b.name}' an input that is not an object`);
  }
  for (const b of reply.content) {
    if (b.type === 'text' && typeof b.text !== 'string') problems.push('scripted text block has no text');
  }
  const tc = req.tool_choice as Json | undefined;
  if (tc?.type === 'none' && uses.length > 0) problems.push('scripted reply uses a tool although tool_choice is none');
  if ((tc?.type === 'any' || tc?.type === 'tool') && uses.length === 0) {
    problems.push(`scripted reply uses no tool although tool_choice is ${String(tc.type)}`);
  }
  if (tc?.type === 'tool' && uses.some((u) => u.name !== tc.name)) {
    problems.push(`scripted reply uses a tool other than tool_choice '${String(tc.name)}'`);
  }
  if (tc?.disable_parallel_tool_use === true && uses.length > 1) {
    problems.push('scripted reply uses several tools although disable_parallel_tool_use is set');
  }
  return problems;
}

function buildMessage(req: Json, reply: ScriptedReply, cache: PromptCache) {
  const content: OutBlock[] = reply.content.map((b) =>
    b.type === 'text'
      ? { type: 'text', text: b.text, citations: null }
      : {
          type: 'tool_use',
          id: b.id ?? id('toolu_01'),
          name: b.name,
          input: b.input as Json,
          caller: { type: 'direct' },
        },
  );
  let stopReason: string = reply.stop_reason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn');

  // The real model stops at max_tokens: cut text there and drop tool calls that do not fit.
  const maxTokens = req.max_tokens as number;
  const outChars = (b: OutBlock) =>
    b.type === 'text' ? b.text.length : JSON.stringify(b.input).length + b.name.length;
  let budget = maxTokens * 4;
  const kept: OutBlock[] = [];
  for (const b of content) {
    const chars = outChars(b);
    if (chars <= budget) {
      kept.push(b);
      budget -= chars;
      continue;
    }
    if (b.type === 'text' && budget > 0) kept.push({ ...b, text: b.text.slice(0, budget) });
    stopReason = 'max_tokens';
    break;
  }
  const outputTokens = Math.max(1, tokensOf(kept.reduce((n, b) => n + outChars(b), 0)));
  const { total: _total, ...cacheUsage } = cache.account(req);
  const usage = {
    ...cacheUsage,
    output_tokens: outputTokens,
    output_tokens_details: null,
    server_tool_use: null,
    service_tier: 'standard',
    inference_geo: null,
    speed: null,
    ...reply.usage,
  };
  return {
    id: id('msg_01'),
    type: 'message',
    role: 'assistant',
    model: req.model,
    content: kept,
    stop_reason: stopReason,
    stop_sequence: null,
    stop_details: null,
    container: null,
    diagnostics: null,
    usage,
  };
}

function chunks(s: string, n: number): string[] {
  if (s.length === 0) return [''];
  const size = Math.max(1, Math.ceil(s.length / n));
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

type Message = ReturnType<typeof buildMessage>;

type StreamFault = { kind: 'error'; error: { type: string; message: string } } | { kind: 'drop' } | { kind: 'hang' };

function sseEvents(msg: Message, midStreamError?: { type: string; message: string }): Array<[string, unknown]> {
  const events: Array<[string, unknown]> = [];
  const startUsage = { ...msg.usage, output_tokens: Math.min(msg.usage.output_tokens, 1) };
  events.push([
    'message_start',
    { type: 'message_start', message: { ...msg, content: [], stop_reason: null, usage: startUsage } },
  ]);
  events.push(['ping', { type: 'ping' }]);
  if (midStreamError) {
    events.push(['error', { type: 'error', error: midStreamError }]);
    return events;
  }
  msg.content.forEach((b, index) => {
    if (b.type === 'text') {
      events.push([
        'content_block_start',
        { type: 'content_block_start', index, content_block: { type: 'text', text: '', citations: null } },
      ]);
      for (const text of chunks(b.text, 3)) {
        events.push([
          'content_block_delta',
          { type: 'content_block_delta', index, delta: { type: 'text_delta', text } },
        ]);
      }
    } else {
      events.push(['content_block_start', { type: 'content_block_start', index, content_block: { ...b, input: {} } }]);
      // The API opens every tool input with an empty partial_json.
      for (const partial_json of ['', ...chunks(JSON.stringify(b.input), 3)]) {
        events.push([
          'content_block_delta',
          { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json } },
        ]);
      }
    }
    events.push(['content_block_stop', { type: 'content_block_stop', index }]);
    if (index === 0) events.push(['ping', { type: 'ping' }]);
  });
  events.push([
    'message_delta',
    {
      type: 'message_delta',
      delta: { stop_reason: msg.stop_reason, stop_sequence: null, stop_details: null, container: null },
      usage: {
        input_tokens: msg.usage.input_tokens,
        cache_creation_input_tokens: msg.usage.cache_creation_input_tokens,
        cache_read_input_tokens: msg.usage.cache_read_input_tokens,
        output_tokens: msg.usage.output_tokens,
        output_tokens_details: null,
        server_tool_use: null,
      },
    },
  ]);
  events.push(['message_stop', { type: 'message_stop' }]);
  return events;
}

// ---------------------------------------------------------------------------------------
// Server

export async function startAnthropicStandIn(options: AnthropicStandInOptions = {}): Promise<AnthropicStandIn> {
  let model: ScriptedModel | undefined;
  let attempts = 0;
  const requests: MessagesRequest[] = [];
  const violations: string[] = [];
  // Faults answered before the request is read: an error status (`remaining` calls) or a hang.
  const injected: Array<
    | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string>; remaining: number }
    | { kind: 'hang' }
  > = [];
  // Faults of a stream that has started: an SSE error event, a cut connection, or a stall.
  const streamFaults: StreamFault[] = [];
  const hung = new Set<() => void>();
  const hang = () => new Promise<void>((resolve) => hung.add(resolve));
  const cache = new PromptCache(options.minCacheableTokens ?? 0);

  const baseHeaders = () => ({
    'request-id': id('req_01'),
    'anthropic-organization-id': '00000000-0000-4000-8000-000000000000',
  });

  const sendJson = (res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) => {
    const headers = { ...baseHeaders(), ...extra };
    const payload = JSON.stringify(
      isObject(body) && body.type === 'error' && body.request_id === undefined
        ? { ...body, request_id: headers['request-id'] }
        : body,
    );
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      ...headers,
    });
    res.end(payload);
  };

  const sendError = (
    res: http.ServerResponse,
    status: number,
    type: string,
    message: string,
    extra?: Record<string, string>,
  ) => sendJson(res, status, { type: 'error', error: { type, message } }, extra);

  const refuse = (res: http.ServerResponse, r: Refusal) => {
    violations.push(r.message);
    sendError(res, r.status, r.type, r.message);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunksIn: Buffer[] = [];
    for await (const c of req) chunksIn.push(c as Buffer);
    const path = (req.url ?? '/').split('?')[0];
    const isCount = path === '/v1/messages/count_tokens';
    if (req.method !== 'POST' || (path !== '/v1/messages' && !isCount)) {
      return sendError(res, 404, 'not_found_error', 'Not found');
    }
    if (!isCount) attempts++;

    const apiKey = req.headers['x-api-key'] ?? /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (typeof apiKey !== 'string' || apiKey.length === 0) {
      return refuse(res, new Refusal(401, 'authentication_error', 'x-api-key header is required'));
    }
    if (options.apiKey !== undefined && apiKey !== options.apiKey) {
      return refuse(res, new Refusal(401, 'authentication_error', 'invalid x-api-key'));
    }
    const version = req.headers['anthropic-version'];
    if (typeof version !== 'string' || version.length === 0) {
      return refuse(res, bad('anthropic-version: header is required'));
    }
    // Which dated versions exist is not known here; any date-shaped one is accepted.
    if (!/^\d{4}-\d{2}-\d{2}$/.test(version)) {
      return refuse(res, bad(`anthropic-version: invalid version: ${version}`));
    }

    if (!isCount) {
      const fault = injected[0];
      if (fault?.kind === 'hang' || (fault && --fault.remaining <= 0)) injected.shift();
      if (fault?.kind === 'hang') return hang();
      if (fault) {
        const type =
          ERROR_TYPE_BY_STATUS[fault.status] ?? (fault.status >= 500 ? 'api_error' : 'invalid_request_error');
        const body = fault.body ?? {
          type: 'error',
          error: { type, message: DEFAULT_MESSAGE_BY_TYPE[type] ?? 'Error' },
        };
        return sendJson(res, fault.status, body, fault.headers);
      }
    }

    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunksIn).toString('utf8'));
    } catch {
      return refuse(res, bad('There was an issue with your request body: invalid JSON'));
    }
    try {
      validateRequest(body, { countTokens: isCount });
    } catch (e) {
      if (e instanceof Refusal) return refuse(res, e);
      throw e;
    }
    const request = body as Json;

    if (isCount) {
      const segs = segmentsOf(request);
      return sendJson(res, 200, { input_tokens: segs.reduce((n, s) => n + s.tokens, 0) });
    }

    const callIndex = requests.length;
    requests.push(structuredClone(request) as unknown as MessagesRequest);
    if (!model) {
      violations.push('stand-in: request received but no scripted model is set');
      return sendError(res, 500, 'api_error', 'Internal server error (stand-in: no scripted model set)');
    }
    let reply: ScriptedReply;
    try {
      reply = await model(structuredClone(request) as unknown as MessagesRequest, { callIndex });
    } catch (e) {
      return sendError(res, 500, 'api_error', `Internal server error (scripted model threw: ${(e as Error).message})`);
    }
    const problems = scriptProblems(request, reply);
    if (problems.length > 0) {
      violations.push(...problems.map((p) => `call ${callIndex}: ${p}`));
      return sendError(res, 500, 'api_error', `Internal server error (${problems.join('; ')})`);
    }
    const message = buildMessage(request, reply, cache);

    if (request.stream !== true) return sendJson(res, 200, message);

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...baseHeaders(),
    });
    const fault = streamFaults.shift();
    const events = sseEvents(message, fault?.kind === 'error' ? fault.error : undefined);
    // A cut or a stall comes after message_start and a ping, as a real one would.
    const stopAfter = fault && fault.kind !== 'error' ? 2 : events.length;
    for (const [i, [event, data]] of events.slice(0, stopAfter).entries()) {
      const raw = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      // Split some events across writes so clients must reassemble SSE frames.
      if (i % 3 === 1) {
        const cut = Math.floor(raw.length / 2);
        res.write(raw.slice(0, cut));
        await new Promise((r) => setImmediate(r));
        res.write(raw.slice(cut));
      } else {
        res.write(raw);
      }
      await new Promise((r) => setImmediate(r));
    }
    if (fault?.kind === 'drop') {
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === 'hang') return hang();
    res.end();
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      violations.push(`stand-in crashed: ${(e as Error).message}`);
      if (!res.headersSent) sendError(res, 500, 'api_error', 'Internal server error');
      else res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    setModel(m) {
      model = m;
    },
    requests,
    violations,
    get attempts() {
      return attempts;
    },
    failNext(status, body, headers, times = 1) {
      if (!(times >= 1)) throw new Error(`failNext: times must be at least 1, got ${times}`);
      injected.push({ kind: 'status', status, body, headers, remaining: times });
    },
    failNextMidStream(errorType = 'overloaded_error', message = DEFAULT_MESSAGE_BY_TYPE[errorType] ?? 'Error') {
      streamFaults.push({ kind: 'error', error: { type: errorType, message } });
    },
    dropNextMidStream() {
      streamFaults.push({ kind: 'drop' });
    },
    hangNext(opts = {}) {
      if (opts.afterStart) streamFaults.push({ kind: 'hang' });
      else injected.push({ kind: 'hang' });
    },
    clearFaults() {
      injected.length = 0;
      streamFaults.length = 0;
    },
    close() {
      for (const release of hung) release();
      hung.clear();
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

// ---------------------------------------------------------------------------------------
// Helpers for scripted models

function lastUserMessage(req: MessagesRequest) {
  return [...req.messages].reverse().find((m) => m.role === 'user');
}

/** The tool_result blocks of the last user message. */
export function toolResultsOf(req: MessagesRequest): Anthropic.ToolResultBlockParam[] {
  const m = lastUserMessage(req);
  if (!m || typeof m.content === 'string') return [];
  return m.content.filter((b): b is Anthropic.ToolResultBlockParam => b.type === 'tool_result');
}

/** The text of the last user message (its text blocks joined by newlines). */
export function lastUserText(req: MessagesRequest): string {
  const m = lastUserMessage(req);
  if (!m) return '';
  if (typeof m.content === 'string') return m.content;
  return m.content
    .filter((b): b is Anthropic.TextBlockParam => b.type === 'text')
    .map((b) => b.text)
    .join('\n');
}
