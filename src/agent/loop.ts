import type { Logger } from 'pino';
import type { Tier } from './tiers.js';
import type { ModelClient, MessageParam, ToolSpec } from './model.js';
import { maybeCompact, type CompactionOptions } from './compaction.js';
import { StuckDetector, type Stuck, type StuckLimits } from './stuck.js';
import { answerText, callTool, inputJsonSchema, type Tool, type ToolContext } from './tools/tool.js';
import type { Trace } from './trace.js';

export type LoopResult = { kind: 'done'; tool: string; input: unknown } | ({ kind: 'stuck' } & Stuck);

export interface LoopOptions {
  stage: string;
  tier: Tier;
  model: ModelClient;
  system: string;
  task: string;
  tools: readonly Tool[];
  ctx: ToolContext;
  maxTurns: number;
  trace?: Trace;
  log: Logger;
  /** Called for every tool call, for metrics. */
  onToolCall?: (tool: string, ok: boolean, errorCode?: string) => void;
  /** Job-wide limits (budgets, wall clock), checked before every model call. */
  guard?: () => Stuck | undefined;
  stuckLimits?: StuckLimits;
  /** Rolling compaction of old tool outputs; off when unset. */
  compaction?: CompactionOptions;
}

export function toolSpecs(tools: readonly Tool[]): ToolSpec[] {
  return tools.map((t) => ({
    name: t.name,
    description: t.description,
    input_schema: inputJsonSchema(t) as ToolSpec['input_schema'],
  }));
}

/**
 * Model ⇄ tools until a terminal tool succeeds or the stuck detector or the turn budget
 * stops it.
 */
export async function runLoop(o: LoopOptions): Promise<LoopResult> {
  const tools = toolSpecs(o.tools);
  const messages: MessageParam[] = [{ role: 'user', content: [{ type: 'text', text: o.task }] }];
  const stuck = new StuckDetector(o.stuckLimits);
  for (let turn = 1; turn <= o.maxTurns; turn++) {
    const over = o.guard?.();
    if (over) return { kind: 'stuck', ...over };
    const reply = await o.model.call({ stage: o.stage, tier: o.tier, system: o.system, tools, messages });
    // Empty text blocks are refused by the API when sent back; drop them.
    const content = reply.content.filter((b) => !(b.type === 'text' && b.text.trim() === ''));
    if (content.length > 0) messages.push({ role: 'assistant', content });
    const uses = content.filter((b) => b.type === 'tool_use');
    const silent = stuck.observeTurn(uses.length);
    if (silent) return { kind: 'stuck', ...silent };
    if (uses.length === 0) {
      const nudge = `Act with a tool. When you are done, call ${o.tools
        .filter((t) => t.terminal)
        .map((t) => t.name)
        .join(' or ')}.`;
      const last = messages.at(-1);
      if (last?.role === 'user' && Array.isArray(last.content)) last.content.push({ type: 'text', text: nudge });
      else messages.push({ role: 'user', content: [{ type: 'text', text: nudge }] });
      continue;
    }
    const results: Array<{ type: 'tool_result'; tool_use_id: string; content: string; is_error?: boolean }> = [];
    let done: LoopResult | undefined;
    let stop: Stuck | undefined;
    for (const use of uses) {
      if (done || stop) {
        // Every tool_use needs its tool_result, even the ones we do not run.
        results.push({
          type: 'tool_result',
          tool_use_id: use.id,
          content: 'not run: the stage ended with an earlier call',
          is_error: true,
        });
        continue;
      }
      const answer = await callTool(o.tools, use.name, use.input, o.ctx, (r) => {
        o.trace?.write({ type: 'tool', stage: o.stage, ...r });
        o.onToolCall?.(r.tool, r.ok, r.errorCode);
      });
      results.push({
        type: 'tool_result',
        tool_use_id: use.id,
        content: answerText(answer),
        ...(answer.ok ? {} : { is_error: true }),
      });
      stop = stuck.observeCall(
        use.name,
        use.input,
        answer.ok ? { ok: true } : { ok: false, code: answer.error.code, message: answer.error.message },
      );
      const tool = o.tools.find((t) => t.name === use.name);
      if (answer.ok && tool?.terminal) done = { kind: 'done', tool: use.name, input: tool.input.parse(use.input) };
    }
    if (done) return done;
    if (stop) return { kind: 'stuck', ...stop };
    messages.push({ role: 'user', content: results });
    if (o.compaction) {
      const compacted = await maybeCompact(messages, o.compaction);
      if (compacted > 0)
        o.trace?.write({ type: 'note', message: 'compacted', detail: { stage: o.stage, turn, outputs: compacted } });
    }
  }
  return {
    kind: 'stuck',
    reason: 'budget-turns',
    evidence: `${o.maxTurns} model turns used without finishing the ${o.stage} stage`,
  };
}
