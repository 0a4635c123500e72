import Anthropic from '@anthropic-ai/sdk';
import type { Logger } from 'pino';
import type { Tier } from '../config/env.js';
import type { Spend } from './budget.js';
import { priceOf } from './pricing.js';
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
  const system: Anthropic.TextBlockParam[] = [{ type: 'text', text: req.system, cache_control: EPHEMERAL }];
  const mark = (m: MessageParam): MessageParam => {
    const blocks: Anthropic.ContentBlockParam[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
    const marked = blocks.map((b, i) => (i === blocks.length - 1 ? ({ ...b, cache_control: EPHEMERAL } as typeof b) : b));
    return { ...m, content: marked } as MessageParam;
  };
  const last = req.messages.length - 1;
  const messages = req.messages.map((m, i) => (i === 0 || (i === last && m.role === 'user') ? mark(m) : m));
  return { system, tools, messages };
}

/**
 * The model API failed after the SDK's own retries (429, 5xx, 529 and dropped connections
 * are retried with backoff and retry-after), or refused the request outright. The job
 * escalates with this message rather than running again.
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

function toModelError(err: unknown, model: string): unknown {
  if (err instanceof Anthropic.APIConnectionError) return new ModelError('unavailable', undefined, `the model API could not be reached (${err.message})`);
  if (err instanceof Anthropic.APIError) {
    const status = err.status;
    const retryable = status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
    const detail = err.message.replace(/\s+/g, ' ').slice(0, 300);
    return retryable
      ? new ModelError('unavailable', status, `the model API kept failing (${status ?? 'no status'}) after retries: ${detail}`)
      : new ModelError('refused', status, `the model API refused a request to ${model} (${status}): ${detail}`);
  }
  return err;
}

/** The only module that talks to the Anthropic SDK. */
export class ModelClient {
  private readonly client: Anthropic;

  constructor(
    private readonly opts: { apiKey: string; baseURL?: string; models: Record<Tier, string>; log: Logger; spend: Spend; trace?: Trace; maxRetries?: number },
  ) {
    // The SDK retries 408/409/429/5xx/529 with backoff and honours retry-after.
    this.client = new Anthropic({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: opts.maxRetries ?? 4, timeout: 10 * 60 * 1000 });
    for (const [tier, model] of Object.entries(opts.models)) {
      if (!priceOf(model)) opts.log.warn({ tier, model }, 'no price known for this model; its cost is counted as 0');
    }
  }

  modelFor(tier: Tier): string {
    return this.opts.models[tier];
  }

  async call(req: ModelRequest): Promise<ModelReply> {
    const model = this.modelFor(req.tier);
    const started = Date.now();
    const { system, tools, messages } = withCacheBreakpoints(req);
    // Streaming keeps long generations inside HTTP timeouts; finalMessage() assembles it.
    const message = await this.client.messages
      .stream({ model, max_tokens: req.maxTokens ?? 8192, system, tools, messages })
      .finalMessage()
      .catch((err: unknown) => {
        throw toModelError(err, model);
      });
    const usage = {
      input_tokens: message.usage.input_tokens,
      output_tokens: message.usage.output_tokens,
      cache_creation_input_tokens: message.usage.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: message.usage.cache_read_input_tokens ?? 0,
    };
    const costUsd = this.opts.spend.add(model, usage);
    this.opts.trace?.write({ type: 'model', stage: req.stage, model, tier: req.tier, usage, costUsd, durationMs: Date.now() - started, stopReason: message.stop_reason });
    return { content: message.content, stopReason: message.stop_reason, model };
  }
}
