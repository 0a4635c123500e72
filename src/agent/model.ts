import Anthropic from '@anthropic-ai/sdk';
import type { Logger } from 'pino';
import { sanitise } from '../util/sanitise.js';
import type { Tier } from './tiers.js';
import type { Spend } from './budget.js';
import type { Trace } from './trace.js';

export type MessageParam = Anthropic.MessageParam;
export type ContentBlock = Anthropic.ContentBlock;
export type ToolSpec = Anthropic.Tool;

export interface ModelRequest {
  stage: string;
  tier: Tier;
  /** Stable prefix: our rules, then repository rules. Cached. */
  system: string;
  tools: ToolSpec[];
  messages: MessageParam[];
  maxTokens?: number;
}

export interface ModelReply {
  content: ContentBlock[];
  stopReason: string | null;
  model: string;
}

const EPHEMERAL = { type: 'ephemeral' } as const;

/**
 * What reaches the model passes the same sanitiser as what reaches GitHub: a secret that a
 * repository or a command printed (the app's own are never in the sandbox) is redacted
 * before it leaves. Deterministic, so the cached prefix stays the same from call to call.
 */
function redact(m: MessageParam): MessageParam {
  if (m.role !== 'user') return m;
  if (typeof m.content === 'string') return { ...m, content: sanitise(m.content) };
  return {
    ...m,
    content: m.content.map((b) => {
      if (b.type === 'text') return { ...b, text: sanitise(b.text) };
      if (b.type === 'tool_result' && typeof b.content === 'string') return { ...b, content: sanitise(b.content) };
      return b;
    }),
  };
}

/**
 * Places the cache breakpoints: the system prompt, the last tool (so tools + system are one
 * cached prefix), the first user message (the task), and the conversation's last block.
 * Four at most, as the API allows.
 */
export function withCacheBreakpoints(req: Pick<ModelRequest, 'system' | 'tools' | 'messages'>): {
  system: Anthropic.TextBlockParam[];
  tools: ToolSpec[];
  messages: MessageParam[];
} {
  const tools = req.tools.map((t, i) => (i === req.tools.length - 1 ? { ...t, cache_control: EPHEMERAL } : t));
  const system: Anthropic.TextBlockParam[] = [{ type: 'text', text: sanitise(req.system), cache_control: EPHEMERAL }];
  const mark = (m: MessageParam): MessageParam => {
    const blocks: Anthropic.ContentBlockParam[] =
      typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
    const marked = blocks.map((b, i) =>
      i === blocks.length - 1 ? ({ ...b, cache_control: EPHEMERAL } as typeof b) : b,
    );
    return { ...m, content: marked } as MessageParam;
  };
  const last = req.messages.length - 1;
  const messages = req.messages.map(redact).map((m, i) => (i === 0 || (i === last && m.role === 'user') ? mark(m) : m));
  return { system, tools, messages };
}

/**
 * The model API failed after the SDK's own retries (429, 5xx, 529 and dropped connections
 * are retried with backoff and retry-after) and ours (a stream that broke off after it
 * started), or refused the request outright. The job escalates with this message rather
 * than running again.
 */
export class ModelError extends Error {
  constructor(
    readonly kind: 'refused' | 'unavailable',
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ModelError';
  }
}

/** The call was cut short by the job's abort signal (a maintainer's stop or a shutdown), not by the API. */
export class ModelCallAborted extends Error {
  constructor() {
    super('the model call was cut short: the job is stopping');
    this.name = 'ModelCallAborted';
  }
}

/** Error types the API sends for a request that would fail again unchanged. */
const REFUSAL_TYPES = new Set([
  'invalid_request_error',
  'authentication_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
]);

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').slice(0, 300);
}

/** The API's error type and message from an APIError's body, when it has one. */
function apiErrorDetail(err: InstanceType<typeof Anthropic.APIError>): { type?: string; message: string } {
  const body = err.error as { error?: { type?: unknown; message?: unknown } } | undefined;
  const type = typeof body?.error?.type === 'string' ? body.error.type : undefined;
  const message = typeof body?.error?.message === 'string' ? body.error.message : err.message;
  return { type, message: oneLine(message) };
}

/** `attempts`: how many requests the SDK made (its retries included) before giving up. */
function toModelError(err: unknown, model: string, attempts: number, timeoutMs: number): unknown {
  if (err instanceof ModelError) return err;
  if (err instanceof Anthropic.APIConnectionTimeoutError) {
    return new ModelError(
      'unavailable',
      undefined,
      `the model API did not start answering a request to ${model} within ${timeoutMs} ms, ${attempts} attempt(s) with backoff`,
    );
  }
  if (err instanceof Anthropic.APIConnectionError) {
    return new ModelError(
      'unavailable',
      undefined,
      `the model API could not be reached for ${model}, ${attempts} attempt(s) with backoff: ${oneLine(err.message)}`,
    );
  }
  if (err instanceof Anthropic.APIError) {
    const status = err.status;
    const { type, message } = apiErrorDetail(err);
    const retryable =
      status !== undefined
        ? status === 408 || status === 409 || status === 429 || status >= 500
        : type === undefined || !REFUSAL_TYPES.has(type);
    const what = [status, type].filter((x) => x !== undefined).join(' ') || 'no status';
    return retryable
      ? new ModelError(
          'unavailable',
          status,
          `the model API kept failing for ${model} (${what}), ${attempts} attempt(s) with backoff and retry-after: ${message}`,
        )
      : new ModelError('refused', status, `the model API refused a request to ${model} (${what}): ${message}`);
  }
  return err;
}

/**
 * Whether a failure of a stream that had started is worth another request: it broke off
 * (connection cut, an `error` event such as overloaded_error, or our idle timeout), and
 * nothing of it was used yet. A refusal sent mid-stream would only repeat.
 */
function isBrokenStream(err: unknown): boolean {
  // An `error` event and our idle abort (APIUserAbortError) are APIErrors without a status.
  if (err instanceof Anthropic.APIError && err.status === undefined) {
    const { type } = apiErrorDetail(err);
    return type === undefined || !REFUSAL_TYPES.has(type);
  }
  // A cut connection surfaces as a plain AnthropicError ("terminated").
  return err instanceof Anthropic.AnthropicError && !(err instanceof Anthropic.APIError);
}

export interface ModelClientOptions {
  apiKey: string;
  baseURL?: string;
  models: Record<Tier, string>;
  log: Logger;
  spend: Spend;
  trace?: Trace;
  /** Aborts a call in flight (the HTTP request and the SDK's retries) when the job stops or the worker shuts down. */
  signal?: AbortSignal;
  /** The SDK's retries of 408/409/429/5xx/529 and failed or timed-out connections (backoff, retry-after). Default 4. */
  maxRetries?: number;
  /** Per attempt, how long the SDK waits for the response to start before it retries. Default 3 minutes. */
  timeoutMs?: number;
  /** A started stream that sends no event for this long is cut and counts as broken. Default 5 minutes. */
  streamIdleTimeoutMs?: number;
  /** How many times a stream that broke off after it started is requested again. Default 2. */
  streamRetries?: number;
  /** Pause before requesting a broken stream again, times the retry number. Default 2 s. */
  streamRetryDelayMs?: number;
}

export const MODEL_DEFAULTS = {
  maxRetries: 4,
  timeoutMs: 3 * 60_000,
  streamIdleTimeoutMs: 5 * 60_000,
  streamRetries: 2,
  streamRetryDelayMs: 2_000,
} as const;

/** The only module that talks to the Anthropic SDK. */
export class ModelClient {
  private readonly client: Anthropic;
  private readonly maxRetries: number;
  private readonly timeoutMs: number;
  private readonly limits: { streamIdleTimeoutMs: number; streamRetries: number; streamRetryDelayMs: number };

  constructor(private readonly opts: ModelClientOptions) {
    // The SDK retries 408/409/429/5xx/529 and connection failures with backoff and honours
    // retry-after; `timeout` bounds each attempt's wait for the response to start, so a
    // hung connection ends in an error after (maxRetries + 1) attempts, not never.
    this.maxRetries = opts.maxRetries ?? MODEL_DEFAULTS.maxRetries;
    this.timeoutMs = opts.timeoutMs ?? MODEL_DEFAULTS.timeoutMs;
    this.client = new Anthropic({
      apiKey: opts.apiKey,
      baseURL: opts.baseURL,
      maxRetries: this.maxRetries,
      timeout: this.timeoutMs,
    });
    this.limits = {
      streamIdleTimeoutMs: opts.streamIdleTimeoutMs ?? MODEL_DEFAULTS.streamIdleTimeoutMs,
      streamRetries: opts.streamRetries ?? MODEL_DEFAULTS.streamRetries,
      streamRetryDelayMs: opts.streamRetryDelayMs ?? MODEL_DEFAULTS.streamRetryDelayMs,
    };
  }

  modelFor(tier: Tier): string {
    return this.opts.models[tier];
  }

  async call(req: ModelRequest): Promise<ModelReply> {
    const model = this.modelFor(req.tier);
    const started = Date.now();
    const { system, tools, messages } = withCacheBreakpoints(req);
    const params: Anthropic.MessageStreamParams = { model, max_tokens: req.maxTokens ?? 8192, system, tools, messages };
    let message: Anthropic.Message | undefined;
    // The SDK retries a request until its response starts; a stream that breaks off later
    // is ours to retry. That is safe: nothing of a broken reply has been acted on.
    for (let attempt = 0; message === undefined; attempt++) {
      if (this.opts.signal?.aborted) throw new ModelCallAborted();
      const outcome = await this.streamOnce(params);
      if (outcome.ok) {
        message = outcome.message;
        break;
      }
      // A reply cut after it started was still paid for: at least the input its first event
      // reported. It counts toward the budgets like any call.
      if (outcome.usage) this.account(req, model, outcome.usage, null, started);
      // Cut by a stop or a shutdown: the job ends here, not in a retry.
      if (this.opts.signal?.aborted) throw new ModelCallAborted();
      const broken = outcome.started && isBrokenStream(outcome.error);
      if (!broken) throw toModelError(outcome.error, model, this.maxRetries + 1, this.timeoutMs);
      const reason = outcome.idle ? `no event for ${this.limits.streamIdleTimeoutMs} ms` : describe(outcome.error);
      if (attempt >= this.limits.streamRetries) {
        throw new ModelError(
          'unavailable',
          undefined,
          `the model API's reply from ${model} broke off ${attempt + 1} time(s) after it started streaming (last: ${reason}); giving up`,
        );
      }
      this.opts.log.warn(
        { stage: req.stage, model, attempt: attempt + 1, reason },
        'model stream broke off after it started; requesting it again',
      );
      this.opts.trace?.write({
        type: 'note',
        message: 'model stream broke off; requesting it again',
        detail: { stage: req.stage, model, attempt: attempt + 1, reason },
      });
      await new Promise((r) => setTimeout(r, this.limits.streamRetryDelayMs * (attempt + 1)));
    }
    this.account(req, model, message.usage, message.stop_reason, started);
    return { content: message.content, stopReason: message.stop_reason, model };
  }

  /** Adds one reply's usage to the job's spend and trace; `stopReason` null for a reply that broke off. */
  private account(
    req: ModelRequest,
    model: string,
    u: Anthropic.Usage,
    stopReason: Anthropic.Message['stop_reason'],
    started: number,
  ): void {
    const usage = {
      input_tokens: u.input_tokens,
      output_tokens: u.output_tokens,
      cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
    };
    const costUsd = this.opts.spend.add(model, usage);
    this.opts.trace?.write({
      type: 'model',
      stage: req.stage,
      model,
      tier: req.tier,
      usage,
      costUsd,
      durationMs: Date.now() - started,
      stopReason,
    });
  }

  /**
   * One streamed request (with the SDK's own retries until it starts). Streaming keeps long
   * generations inside HTTP timeouts; an idle timer cuts a stream that stalls after it
   * started, which the SDK's timeout (up to the response headers) does not cover.
   */
  private async streamOnce(
    params: Anthropic.MessageStreamParams,
  ): Promise<
    | { ok: true; message: Anthropic.Message }
    | { ok: false; error: unknown; started: boolean; idle: boolean; usage?: Anthropic.Usage }
  > {
    const stream = this.client.messages.stream(params, this.opts.signal ? { signal: this.opts.signal } : undefined);
    let started = false;
    let idle = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        stream.abort();
      }, this.limits.streamIdleTimeoutMs);
    };
    stream.on('connect', () => {
      started = true;
      arm();
    });
    stream.on('streamEvent', arm);
    try {
      return { ok: true, message: await stream.finalMessage() };
    } catch (error) {
      return { ok: false, error, started, idle, usage: stream.currentMessage?.usage };
    } finally {
      clearTimeout(timer);
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof Anthropic.APIError) {
    const { type, message } = apiErrorDetail(err);
    return type ? `${type}: ${message}` : message;
  }
  return oneLine(err instanceof Error ? err.message : String(err));
}
