import Anthropic from '@anthropic-ai/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  lastUserText,
  startAnthropicStandIn,
  toolResultsOf,
  type AnthropicStandIn,
  type MessagesRequest,
} from './server.js';

const MODEL = 'claude-sonnet-5-5';

const readFile: Anthropic.Tool = {
  name: 'read_file',
  description: 'Read a file',
  input_schema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
};

let standIn: AnthropicStandIn;
let client: Anthropic;

beforeEach(async () => {
  standIn = await startAnthropicStandIn();
  client = new Anthropic({ apiKey: 'test', baseURL: standIn.url, maxRetries: 0 });
});

afterEach(async () => {
  await standIn.close();
});

describe('round trips', () => {
  beforeEach(() => {
    standIn.setModel((req) =>
      lastUserText(req).includes('tool')
        ? {
            content: [
              { type: 'text', text: 'Reading it.' },
              { type: 'tool_use', name: 'read_file', input: { path: 'src/a.ts', n: [1, 2, { deep: 'ünïcode "q"' }] } },
            ],
          }
        : { content: [{ type: 'text', text: 'Hello there, this is a longer answer split into chunks.' }] },
    );
  });

  it('answers JSON with text', async () => {
    const msg = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.model).toBe(MODEL);
    expect(msg.content).toEqual([
      { type: 'text', text: 'Hello there, this is a longer answer split into chunks.', citations: null },
    ]);
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.usage.input_tokens).toBeGreaterThan(0);
    expect(msg.usage.output_tokens).toBe(
      Math.ceil('Hello there, this is a longer answer split into chunks.'.length / 4),
    );
    expect(msg._request_id).toMatch(/^req_/);
    expect(standIn.requests).toHaveLength(1);
    expect(standIn.violations).toEqual([]);
  });

  it('answers JSON with tool_use and stop_reason tool_use', async () => {
    const msg = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      tools: [readFile],
      messages: [{ role: 'user', content: 'use a tool' }],
    });
    expect(msg.stop_reason).toBe('tool_use');
    const use = msg.content[1];
    expect(use).toMatchObject({
      type: 'tool_use',
      name: 'read_file',
      input: { path: 'src/a.ts', n: [1, 2, { deep: 'ünïcode "q"' }] },
    });
    expect(use?.type === 'tool_use' && use.id).toMatch(/^toolu_/);
  });

  it('streams text and tool_use that MessageStream reassembles exactly', async () => {
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 100,
      tools: [readFile],
      messages: [{ role: 'user', content: 'use a tool' }],
    });
    const texts: string[] = [];
    stream.on('text', (t) => texts.push(t));
    const msg = await stream.finalMessage();
    expect(texts.length).toBeGreaterThan(1);
    expect(msg.content[0]).toEqual({ type: 'text', text: 'Reading it.', citations: null });
    expect(msg.content[1]).toMatchObject({
      type: 'tool_use',
      name: 'read_file',
      input: { path: 'src/a.ts', n: [1, 2, { deep: 'ünïcode "q"' }] },
    });
    expect(msg.stop_reason).toBe('tool_use');
    expect(msg.usage.output_tokens).toBeGreaterThan(1);
  });

  it('streams raw events through create({stream:true}) in the API order', async () => {
    const stream = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      stream: true,
      tools: [readFile],
      messages: [{ role: 'user', content: 'use a tool' }],
    });
    const types: string[] = [];
    let text = '';
    let json = '';
    let stop: string | null = null;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
      if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') json += ev.delta.partial_json;
      if (ev.type === 'content_block_start' && ev.content_block.type === 'tool_use')
        expect(ev.content_block.input).toEqual({});
      if (ev.type === 'message_delta') stop = ev.delta.stop_reason;
    }
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    expect(types.at(-2)).toBe('message_delta');
    expect(types.filter((t) => t === 'content_block_start')).toHaveLength(2);
    expect(types.filter((t) => t === 'content_block_stop')).toHaveLength(2);
    expect(text).toBe('Reading it.');
    expect(JSON.parse(json)).toEqual({ path: 'src/a.ts', n: [1, 2, { deep: 'ünïcode "q"' }] });
    expect(stop).toBe('tool_use');
  });

  it('cuts the reply at max_tokens like the real model', async () => {
    const msg = await client.messages.create({
      model: MODEL,
      max_tokens: 2,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(msg.stop_reason).toBe('max_tokens');
    expect(msg.content[0]).toMatchObject({ type: 'text', text: 'Hello th' });
  });

  it('counts tokens', async () => {
    const r = await client.messages.countTokens({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] });
    expect(r.input_tokens).toBeGreaterThan(0);
  });
});

describe('a valid multi-turn tool conversation', () => {
  it('is accepted with zero violations and the scripted model sees tool results', async () => {
    standIn.setModel((req, { callIndex }) => {
      if (callIndex === 0) {
        return {
          content: [
            { type: 'tool_use', name: 'read_file', input: { path: 'a' } },
            { type: 'tool_use', name: 'read_file', input: { path: 'b' } },
          ],
        };
      }
      const results = toolResultsOf(req);
      return {
        content: [{ type: 'text', text: `got ${results.length}: ${results.map((r) => String(r.content)).join(',')}` }],
      };
    });
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'read a and b' }];
    const first = await client.messages.create({ model: MODEL, max_tokens: 100, tools: [readFile], messages });
    messages.push({ role: 'assistant', content: first.content });
    messages.push({
      role: 'user',
      content: [
        ...first.content.flatMap((b) =>
          b.type === 'tool_use'
            ? [
                {
                  type: 'tool_result' as const,
                  tool_use_id: b.id,
                  content: `contents of ${(b.input as { path: string }).path}`,
                },
              ]
            : [],
        ),
        { type: 'text', text: 'go on' },
      ],
    });
    const second = await client.messages
      .stream({ model: MODEL, max_tokens: 100, tools: [readFile], messages })
      .finalMessage();
    expect(second.content).toEqual([{ type: 'text', text: 'got 2: contents of a,contents of b', citations: null }]);
    expect(standIn.requests).toHaveLength(2);
    expect(standIn.violations).toEqual([]);
  });
});

describe('refusals', () => {
  const user = (content: Anthropic.MessageParam['content']): Anthropic.MessageParam => ({ role: 'user', content });
  const tool = (name: string): Anthropic.Tool => ({ name, input_schema: { type: 'object' } });
  const useBlock = (id: string): Anthropic.ToolUseBlockParam => ({
    type: 'tool_use',
    id,
    name: 'read_file',
    input: {},
  });
  const cached = (text: string): Anthropic.TextBlockParam => ({
    type: 'text',
    text,
    cache_control: { type: 'ephemeral' },
  });

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing model', { max_tokens: 10, messages: [user('hi')] }, /^model: Field required$/],
    ['missing max_tokens', { model: MODEL, messages: [user('hi')] }, /^max_tokens: Field required$/],
    [
      'zero max_tokens',
      { model: MODEL, max_tokens: 0, messages: [user('hi')] },
      /^max_tokens: Input should be greater than or equal to 1$/,
    ],
    [
      'fractional max_tokens',
      { model: MODEL, max_tokens: 1.5, messages: [user('hi')] },
      /^max_tokens: Input should be a valid integer$/,
    ],
    ['empty messages', { model: MODEL, max_tokens: 10, messages: [] }, /^messages: at least one message is required$/],
    [
      'messages not a list',
      { model: MODEL, max_tokens: 10, messages: 'hi' },
      /^messages: Input should be a valid list$/,
    ],
    [
      'assistant first',
      { model: MODEL, max_tokens: 10, messages: [{ role: 'assistant', content: 'x' }, user('hi')] },
      /first message must use the "user" role/,
    ],
    [
      'bad role',
      { model: MODEL, max_tokens: 10, messages: [{ role: 'system', content: 'x' }] },
      /^messages\.0\.role: Input should be 'user' or 'assistant'$/,
    ],
    [
      'unknown field',
      { model: MODEL, max_tokens: 10, messages: [user('hi')], foo: 1 },
      /^foo: Extra inputs are not permitted$/,
    ],
    [
      'empty text block',
      { model: MODEL, max_tokens: 10, messages: [user([{ type: 'text', text: '' }])] },
      /^messages: text content blocks must be non-empty$/,
    ],
    [
      'empty string content',
      { model: MODEL, max_tokens: 10, messages: [user('')] },
      /^messages\.0: all messages must have non-empty content/,
    ],
    [
      'empty system block',
      { model: MODEL, max_tokens: 10, system: [{ type: 'text', text: '' }], messages: [user('hi')] },
      /^system: text content blocks must be non-empty$/,
    ],
    [
      'tool_use without tool_result',
      {
        model: MODEL,
        max_tokens: 10,
        tools: [readFile],
        messages: [user('hi'), { role: 'assistant', content: [useBlock('toolu_01A')] }, user('what now')],
      },
      /^messages\.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01A\./,
    ],
    [
      'tool_result after text',
      {
        model: MODEL,
        max_tokens: 10,
        tools: [readFile],
        messages: [
          user('hi'),
          { role: 'assistant', content: [useBlock('toolu_01A')] },
          user([
            { type: 'text', text: 'x' },
            { type: 'tool_result', tool_use_id: 'toolu_01A', content: 'ok' },
          ]),
        ],
      },
      /^messages\.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01A/,
    ],
    [
      'tool_result for an unknown tool_use',
      {
        model: MODEL,
        max_tokens: 10,
        tools: [readFile],
        messages: [
          user('hi'),
          { role: 'assistant', content: [useBlock('toolu_01A')] },
          user([
            { type: 'tool_result', tool_use_id: 'toolu_01A', content: 'ok' },
            { type: 'tool_result', tool_use_id: 'toolu_01B', content: 'ok' },
          ]),
        ],
      },
      /^messages\.2\.content\.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01B/,
    ],
    [
      'five cache_control blocks',
      {
        model: MODEL,
        max_tokens: 10,
        tools: [{ ...readFile, cache_control: { type: 'ephemeral' } }],
        system: [cached('s1'), cached('s2')],
        messages: [user([cached('a'), cached('b')])],
      },
      /^A maximum of 4 blocks with cache_control may be provided\. Found 5\.$/,
    ],
    [
      'bad tool name',
      { model: MODEL, max_tokens: 10, tools: [tool('read file')], messages: [user('hi')] },
      /^tools\.0\.custom\.name: String should match pattern/,
    ],
    [
      'tool name too long',
      { model: MODEL, max_tokens: 10, tools: [tool('x'.repeat(65))], messages: [user('hi')] },
      /^tools\.0\.custom\.name: String should match pattern/,
    ],
    [
      'schema not an object type',
      {
        model: MODEL,
        max_tokens: 10,
        tools: [{ name: 'a', input_schema: { type: 'string' } }],
        messages: [user('hi')],
      },
      /^tools\.0\.custom\.input_schema\.type: Input should be 'object'$/,
    ],
    [
      'missing schema',
      { model: MODEL, max_tokens: 10, tools: [{ name: 'a' }], messages: [user('hi')] },
      /^tools\.0\.custom\.input_schema: Field required$/,
    ],
    [
      'duplicate tool names',
      { model: MODEL, max_tokens: 10, tools: [tool('a'), tool('a')], messages: [user('hi')] },
      /^tools: Tool names must be unique\.$/,
    ],
    [
      'tool_choice of an unknown tool',
      {
        model: MODEL,
        max_tokens: 10,
        tools: [tool('a')],
        tool_choice: { type: 'tool', name: 'b' },
        messages: [user('hi')],
      },
      /Tool 'b' not found/,
    ],
    [
      'tool_choice without tools',
      { model: MODEL, max_tokens: 10, tool_choice: { type: 'any' }, messages: [user('hi')] },
      /tool_choice may only be specified while providing tools/,
    ],
    [
      'trailing whitespace in prefill',
      { model: MODEL, max_tokens: 10, messages: [user('hi'), { role: 'assistant', content: 'Sure ' }] },
      /^final assistant content cannot end with trailing whitespace$/,
    ],
  ];

  it.each(cases)('refuses %s with a 400 and records it', async (_name, body, message) => {
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'never' }] }));
    const err = await client.messages
      .create(body as unknown as Anthropic.MessageCreateParamsNonStreaming)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    const e = err as InstanceType<typeof Anthropic.BadRequestError>;
    expect(e.status).toBe(400);
    expect(e.requestID).toMatch(/^req_/);
    expect(e.error).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringMatching(message) },
    });
    expect(standIn.violations).toHaveLength(1);
    expect(standIn.violations[0]).toMatch(message);
    expect(standIn.requests).toHaveLength(0);
  });

  it('refuses an unknown model with 404', async () => {
    const err = await client.messages
      .create({ model: 'gpt-4', max_tokens: 10, messages: [user('hi')] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect(standIn.violations).toEqual(['model: gpt-4']);
  });

  it('requires an API key and anthropic-version', async () => {
    const noKey = await fetch(`${standIn.url}/v1/messages`, {
      method: 'POST',
      headers: { 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('request-id')).toMatch(/^req_/);
    expect(await noKey.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    const noVersion = await fetch(`${standIn.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'k', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(noVersion.status).toBe(400);
    expect(await noVersion.json()).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'anthropic-version: header is required' },
    });
    const bearer = new Anthropic({ authToken: 'tok', apiKey: null, baseURL: standIn.url, maxRetries: 0 });
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    await expect(
      bearer.messages.create({ model: MODEL, max_tokens: 10, messages: [user('hi')] }),
    ).resolves.toMatchObject({ content: [{ text: 'ok' }] });
    expect(standIn.violations).toHaveLength(2);
  });

  it('records scripted replies the real model could not give', async () => {
    standIn.setModel(() => ({ content: [{ type: 'tool_use', name: 'nope', input: {} }] }));
    const err = await client.messages
      .create({ model: MODEL, max_tokens: 10, tools: [readFile], messages: [user('hi')] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.InternalServerError);
    expect(standIn.violations).toEqual(["call 0: scripted reply calls tool 'nope' that the request does not define"]);
  });
});

describe('prompt cache', () => {
  it('writes on the first call and reads the same prefix on the second', async () => {
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const system: Anthropic.TextBlockParam[] = [
      { type: 'text', text: 'You are a careful engineer. '.repeat(50), cache_control: { type: 'ephemeral' } },
    ];
    const req = (question: string): Anthropic.MessageCreateParamsNonStreaming => ({
      model: MODEL,
      max_tokens: 10,
      tools: [readFile],
      system,
      messages: [{ role: 'user', content: question }],
    });
    const first = await client.messages.create(req('first question'));
    expect(first.usage.cache_read_input_tokens).toBe(0);
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(300);
    const second = await client.messages.create(req('a different second question'));
    expect(second.usage.cache_read_input_tokens).toBe(first.usage.cache_creation_input_tokens);
    expect(second.usage.cache_creation_input_tokens).toBe(0);
    expect(second.usage.input_tokens).toBeLessThan(20);

    // A changed prefix misses.
    const changed = await client.messages.create({
      ...req('q'),
      system: [{ ...system[0]!, text: 'Other. '.repeat(50) }],
    });
    expect(changed.usage.cache_read_input_tokens).toBe(0);
    expect(changed.usage.cache_creation_input_tokens).toBeGreaterThan(0);
  });

  it('reads an earlier breakpoint when the conversation grows (lookback), in streams too', async () => {
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const turn1: Anthropic.MessageParam[] = [
      {
        role: 'user',
        content: [{ type: 'text', text: 'long question '.repeat(40), cache_control: { type: 'ephemeral' } }],
      },
    ];
    const a = await client.messages.create({ model: MODEL, max_tokens: 10, messages: turn1 });
    const turn2: Anthropic.MessageParam[] = [
      { role: 'user', content: [{ type: 'text', text: 'long question '.repeat(40) }] },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: [{ type: 'text', text: 'next', cache_control: { type: 'ephemeral' } }] },
    ];
    const b = await client.messages.stream({ model: MODEL, max_tokens: 10, messages: turn2 }).finalMessage();
    expect(b.usage.cache_read_input_tokens).toBe(a.usage.cache_creation_input_tokens);
    expect(b.usage.cache_creation_input_tokens).toBeGreaterThan(0);
    expect(standIn.violations).toEqual([]);
  });
});

describe('faults', () => {
  it('injects one error response, then answers normally', async () => {
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    standIn.failNext(529);
    standIn.failNext(429, undefined, { 'retry-after': '0' });
    const params = { model: MODEL, max_tokens: 10, messages: [{ role: 'user' as const, content: 'hi' }] };
    const overloaded = await client.messages.create(params).catch((e: unknown) => e);
    expect(overloaded).toBeInstanceOf(Anthropic.InternalServerError);
    expect((overloaded as InstanceType<typeof Anthropic.APIError>).status).toBe(529);
    expect((overloaded as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({
      error: { type: 'overloaded_error' },
    });
    const limited = await client.messages.create(params).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(Anthropic.RateLimitError);
    expect((limited as InstanceType<typeof Anthropic.APIError>).headers?.get('retry-after')).toBe('0');
    await expect(client.messages.create(params)).resolves.toMatchObject({ content: [{ text: 'ok' }] });
    expect(standIn.attempts).toBe(3);
    expect(standIn.requests).toHaveLength(1);
  });

  it('lets the SDK retry an injected failure', async () => {
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    standIn.failNext(529, undefined, { 'retry-after-ms': '1' });
    const retrying = new Anthropic({ apiKey: 'test', baseURL: standIn.url, maxRetries: 1 });
    await expect(
      retrying.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    ).resolves.toMatchObject({ content: [{ text: 'ok' }] });
    expect(standIn.attempts).toBe(2);
  });

  it('fails the next N calls, or every call until the faults are cleared', async () => {
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const params = { model: MODEL, max_tokens: 10, messages: [{ role: 'user' as const, content: 'hi' }] };
    standIn.failNext(503, undefined, undefined, 2);
    standIn.failNext(429);
    const statuses: unknown[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push(
        await client.messages.create(params).then(
          () => 200,
          (e: { status?: number }) => e.status,
        ),
      );
    expect(statuses).toEqual([503, 503, 429, 200]);
    standIn.failNext(529, undefined, undefined, Number.POSITIVE_INFINITY);
    for (let i = 0; i < 3; i++) await expect(client.messages.create(params)).rejects.toMatchObject({ status: 529 });
    standIn.clearFaults();
    await expect(client.messages.create(params)).resolves.toMatchObject({ content: [{ text: 'ok' }] });
    expect(standIn.attempts).toBe(8);
  });

  it("cuts a started stream's connection, or stalls it or the response until close", async () => {
    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const params = { model: MODEL, max_tokens: 10, messages: [{ role: 'user' as const, content: 'hi' }] };
    standIn.dropNextMidStream();
    const dropped = client.messages.stream(params);
    const events: string[] = [];
    dropped.on('streamEvent', (e) => events.push(e.type));
    const cut = await dropped.finalMessage().catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(Anthropic.AnthropicError);
    expect(String(cut)).toMatch(/terminated/);
    // The SDK does not surface pings: the cut came after message_start.
    expect(events).toEqual(['message_start']);

    standIn.hangNext({ afterStart: true });
    const stalled = client.messages.stream(params);
    stalled.on('streamEvent', (e) => {
      if (e.type === 'message_start') stalled.abort();
    });
    await expect(stalled.finalMessage()).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);

    standIn.hangNext();
    const timingOut = new Anthropic({ apiKey: 'test', baseURL: standIn.url, maxRetries: 0, timeout: 100 });
    await expect(timingOut.messages.create(params)).rejects.toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
    await expect(client.messages.create(params)).resolves.toMatchObject({ content: [{ text: 'ok' }] });
  });

  it('answers 500 when the scripted model throws, and can fail mid-stream', async () => {
    standIn.setModel(() => {
      throw new Error('boom');
    });
    const err = await client.messages
      .create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.InternalServerError);

    standIn.setModel(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    standIn.failNextMidStream();
    const mid = await client.messages
      .stream({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage()
      .catch((e: unknown) => e);
    expect(mid).toBeInstanceOf(Anthropic.APIError);
    expect(String(mid)).toMatch(/Overloaded/);
  });
});

// Type-level check that the helpers accept what the SDK sends.
const _typed: (r: MessagesRequest) => number = (r) => toolResultsOf(r).length;
void _typed;
