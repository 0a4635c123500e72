import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startAnthropicStandIn, type AnthropicStandIn } from '../../test/stand-ins/anthropic/server.js';
import { Spend } from './budget.js';
import { ModelCallAborted, ModelClient, ModelError, type ModelClientOptions, type ModelRequest } from './model.js';

const log = pino({ level: 'silent' });
const MODELS = { frontier: 'claude-opus-5-5', mid: 'claude-sonnet-5-5', fast: 'claude-haiku-5-5' };
// The stand-in asks the SDK to wait 1 ms between its retries (as the API's retry-after does).
const QUICK = { 'retry-after-ms': '1' };
const REQUEST: ModelRequest = {
  stage: 'scope',
  tier: 'fast',
  system: 'rules',
  tools: [],
  messages: [{ role: 'user', content: 'hi' }],
};

let api: AnthropicStandIn;
let spend: Spend;

function client(opts: Partial<ModelClientOptions> = {}): ModelClient {
  return new ModelClient({
    apiKey: 'sk-ant-test',
    baseURL: api.url,
    models: MODELS,
    log,
    spend,
    streamRetryDelayMs: 0,
    ...opts,
  });
}

async function failure(p: Promise<unknown>): Promise<ModelError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  return err as ModelError;
}

beforeAll(async () => {
  api = await startAnthropicStandIn();
  api.setModel(() => ({ content: [{ type: 'text', text: 'hello' }] }));
});
afterAll(() => api.close());

let attemptsBefore = 0;
const attempts = () => api.attempts - attemptsBefore;
beforeEach(() => {
  attemptsBefore = api.attempts;
  api.requests.length = 0;
  api.violations.length = 0;
  spend = new Spend();
});

describe('ModelClient against an unreliable model API', () => {
  it('rides out 529 three times (the SDK retries with retry-after) and returns one message', async () => {
    api.failNext(529, undefined, QUICK, 3);
    const reply = await client().call(REQUEST);
    expect(reply.content).toEqual([{ type: 'text', text: 'hello', citations: null }]);
    expect(attempts()).toBe(4);
    expect(api.requests).toHaveLength(1);
    expect(spend.calls).toBe(1);
    expect(api.violations).toEqual([]);
  });

  it('requests a stream again when it ends in an error event after it started', async () => {
    api.failNextMidStream('overloaded_error');
    const reply = await client().call(REQUEST);
    expect(reply.content).toEqual([{ type: 'text', text: 'hello', citations: null }]);
    expect(attempts()).toBe(2);
    // The finished reply is returned; the broken one counts with the usage it reported
    // (budgets err on the side of stopping early, not of overspending).
    expect(spend.calls).toBe(2);
  });

  it('requests a stream again when its connection is cut after it started, and counts what the cut one reported', async () => {
    api.dropNextMidStream();
    const reply = await client().call(REQUEST);
    expect(reply.stopReason).toBe('end_turn');
    expect(attempts()).toBe(2);
    // The cut reply's first event reported its input: it is spent, and counts as a call.
    expect(spend.calls).toBe(2);
    const whole = new Spend();
    await client({ spend: whole }).call(REQUEST);
    expect(whole.totalInput).toBeGreaterThan(0);
    expect(spend.totalInput).toBe(2 * whole.totalInput);
  });

  it('cuts a stream that stalls after it started and requests it again', async () => {
    api.hangNext({ afterStart: true });
    const reply = await client({ streamIdleTimeoutMs: 200 }).call(REQUEST);
    expect(reply.stopReason).toBe('end_turn');
    expect(attempts()).toBe(2);
  });

  it('gives up on a connection that never answers once the SDK timeout and retries are spent', async () => {
    api.hangNext();
    const reply = await client({ timeoutMs: 200 }).call(REQUEST);
    expect(reply.stopReason).toBe('end_turn');
    expect(attempts()).toBe(2);

    api.hangNext();
    api.hangNext();
    const err = await failure(client({ timeoutMs: 200, maxRetries: 1 }).call(REQUEST));
    expect(err.kind).toBe('unavailable');
    expect(err.message).toMatch(/did not start answering a request to claude-haiku-5-5 within 200 ms, 2 attempt/);
    expect(attempts()).toBe(4);
  });

  it('cuts a call in flight when the job stops, without retrying it, before or after the reply started', async () => {
    for (const afterStart of [false, true]) {
      api.hangNext({ afterStart });
      const stop = new AbortController();
      setTimeout(() => stop.abort('maintainer'), 200);
      // Without the signal the SDK would time out after a minute and its retry would succeed.
      const err = await client({ signal: stop.signal, timeoutMs: 60_000, streamIdleTimeoutMs: 60_000 })
        .call(REQUEST)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(ModelCallAborted);
    }
    expect(attempts()).toBe(2);
    // An aborted signal makes no request at all.
    const stopped = new AbortController();
    stopped.abort('maintainer');
    await expect(client({ signal: stopped.signal }).call(REQUEST)).rejects.toBeInstanceOf(ModelCallAborted);
    expect(attempts()).toBe(2);
    api.clearFaults();
  });

  it('ends a persistent overload in ModelError(unavailable) after the SDK retries', async () => {
    api.failNext(529, undefined, QUICK, Number.POSITIVE_INFINITY);
    try {
      const err = await failure(client({ maxRetries: 2 }).call(REQUEST));
      expect(err.kind).toBe('unavailable');
      expect(err.status).toBe(529);
      expect(err.message).toBe(
        'the model API kept failing for claude-haiku-5-5 (529 overloaded_error), 3 attempt(s) with backoff and retry-after: Overloaded',
      );
      expect(attempts()).toBe(3);
      expect(api.requests).toHaveLength(0);
    } finally {
      api.clearFaults();
    }
  });

  it('ends a stream that keeps breaking off in ModelError(unavailable) after its retries', async () => {
    for (let i = 0; i < 3; i++) api.failNextMidStream('api_error', 'Internal server error');
    const err = await failure(client({ streamRetries: 2 }).call(REQUEST));
    expect(err.kind).toBe('unavailable');
    expect(err.message).toBe(
      "the model API's reply from claude-haiku-5-5 broke off 3 time(s) after it started streaming (last: api_error: Internal server error); giving up",
    );
    expect(attempts()).toBe(3);
    expect(spend.calls).toBe(3);
  });

  it('does not repeat a request the API refused', async () => {
    api.failNext(400, {
      type: 'error',
      error: { type: 'invalid_request_error', message: 'prompt is too long: 210000 tokens > 200000 maximum' },
    });
    const err = await failure(client().call(REQUEST));
    expect(err.kind).toBe('refused');
    expect(err.status).toBe(400);
    expect(err.message).toContain('prompt is too long');
    expect(attempts()).toBe(1);
  });

  it('does not repeat a refusal sent in the middle of a stream', async () => {
    api.failNextMidStream('invalid_request_error', 'messages: tool_use ids must be unique');
    const err = await failure(client().call(REQUEST));
    expect(err.kind).toBe('refused');
    expect(attempts()).toBe(1);
  });
});
