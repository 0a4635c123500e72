import type { MessageParam } from './model.js';

export interface CompactionOptions {
  /** Compact when the conversation after the task is estimated above this many tokens. */
  thresholdTokens: number;
  /** The latest assistant/user turn pairs that are always kept verbatim. */
  keepRecentTurns: number;
  /**
   * The state the model must never lose (the latest content of the files it changed),
   * rendered fresh at each compaction and put at the end of the conversation.
   */
  snapshot?: () => Promise<string>;
}

// Low enough that a long stage stays near the size of its first dozen steps: the sawtooth
// between the threshold and the compacted size is the price of keeping the cache warm.
export const DEFAULT_COMPACTION: CompactionOptions = { thresholdTokens: 40_000, keepRecentTurns: 6 };

const BIG_INPUT_CHARS = 400;
/** After compacting, the conversation should be at most this share of the threshold. */
const LOW_WATER = 0.6;
const STUB_PREFIX = '[output compacted';

/** A rough token count: the API's tokenizer averages about four characters a token. */
export function estimateTokens(value: unknown): number {
  return Math.ceil(JSON.stringify(value).length / 4);
}

type Block = Exclude<MessageParam['content'], string>[number];

function describeCall(use: { name: string; input: unknown } | undefined): string {
  if (!use) return 'a tool call';
  const input = (use.input ?? {}) as Record<string, unknown>;
  const args = Object.entries(input)
    .filter(([, v]) => typeof v === 'string' || typeof v === 'number')
    .map(([k, v]) => `${k}=${JSON.stringify(typeof v === 'string' && v.length > 60 ? `${v.slice(0, 60)}…` : v)}`)
    .join(' ');
  return `${use.name} ${args}`.trim();
}

function stub(content: unknown, use: { name: string; input: unknown } | undefined, isError: boolean): string {
  const text = typeof content === 'string' ? content : JSON.stringify(content);
  const lines = text.split('\n');
  const first = lines[0]!.slice(0, 120);
  return `${STUB_PREFIX}: ${describeCall(use)} → ${isError ? 'error' : 'ok'}, ${lines.length} lines; first: ${first}; call it again to see it]`;
}

/**
 * Replaces old tool outputs by one-line summaries, in place. The task (first message), every
 * assistant text, the latest `keepRecentTurns` turns and every tool_use/tool_result pairing
 * are kept, so the request stays one the API accepts. Returns how many outputs were compacted.
 */
export function compactMessages(messages: MessageParam[], keepRecentTurns: number): number {
  const boundary = Math.max(1, messages.length - keepRecentTurns * 2);
  let compacted = 0;
  for (let i = 1; i < boundary; i++) {
    const m = messages[i]!;
    if (typeof m.content === 'string') continue;
    if (m.role === 'assistant') {
      // Large inputs (a whole new file, a long replacement) shrink to their size.
      m.content = m.content.map((b): Block => {
        if (b.type !== 'tool_use' || estimateTokens(b.input) * 4 < BIG_INPUT_CHARS) return b;
        const input = Object.fromEntries(
          Object.entries(b.input as Record<string, unknown>).map(([k, v]) => [
            k,
            typeof v === 'string' && v.length > BIG_INPUT_CHARS ? `[compacted: ${v.length} chars]` : v,
          ]),
        );
        return { ...b, input };
      });
      continue;
    }
    const prev = messages[i - 1];
    const uses = new Map<string, { name: string; input: unknown }>();
    if (prev && prev.role === 'assistant' && typeof prev.content !== 'string') {
      for (const b of prev.content) if (b.type === 'tool_use') uses.set(b.id, { name: b.name, input: b.input });
    }
    m.content = m.content.map((b): Block => {
      if (b.type === 'tool_result') {
        const text = typeof b.content === 'string' ? b.content : JSON.stringify(b.content ?? '');
        if (text.startsWith(STUB_PREFIX) || text.length < 200) return b;
        compacted += 1;
        return { ...b, content: stub(b.content, uses.get(b.tool_use_id), b.is_error === true) };
      }
      return b;
    });
  }
  return compacted;
}

/** Compacts when the conversation is over the threshold, then appends a fresh state snapshot. */
export async function maybeCompact(messages: MessageParam[], o: CompactionOptions): Promise<number> {
  if (estimateTokens(messages.slice(1)) <= o.thresholdTokens) return 0;
  // Compact well below the threshold (fewer verbatim turns if need be), so the next several
  // turns grow on an unchanged, cached prefix instead of rewriting it every turn.
  let n = 0;
  for (let keep = o.keepRecentTurns; keep >= 2; keep--) {
    n += compactMessages(messages, keep);
    if (estimateTokens(messages.slice(1)) <= o.thresholdTokens * LOW_WATER) break;
  }
  const last = messages.at(-1);
  if (o.snapshot && last && last.role === 'user' && typeof last.content !== 'string') {
    const state = await o.snapshot();
    if (state.trim()) {
      // Only the newest snapshot is kept whole: an older one is superseded, wherever it is.
      for (const m of messages) {
        if (typeof m.content === 'string') continue;
        m.content = m.content.map(
          (b): Block =>
            b.type === 'text' && b.text.startsWith('<current-state>')
              ? { type: 'text', text: '[an earlier state snapshot, superseded by a later one]' }
              : b,
        );
      }
      last.content.push({ type: 'text', text: `<current-state>\n${state}\n</current-state>` });
    }
  }
  return n;
}
