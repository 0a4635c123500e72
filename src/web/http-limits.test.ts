import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADERS_TIMEOUT_MS, limitRequests, REQUEST_TIMEOUT_MS } from './http-limits.js';

describe("the web port's request limits", () => {
  let server: http.Server;
  let url: string;
  const bodies: string[] = [];

  beforeAll(async () => {
    // Reads the body the way Probot's webhook middleware does: 'data' events to the end.
    server = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        bodies.push(Buffer.concat(parts).toString());
        res.end('read');
      });
    });
    limitRequests(server, { log: pino({ level: 'silent' }), maxBodyBytes: 1000 });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => server.close());

  it('sets header and request time limits', () => {
    expect([server.headersTimeout, server.requestTimeout]).toEqual([HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS]);
  });

  it('passes bodies up to the limit whole, and GETs as they are', async () => {
    const sized = await fetch(url, { method: 'POST', body: 'x'.repeat(1000) });
    expect(await sized.text()).toBe('read');
    expect((await fetch(url)).status).toBe(200);
    expect(bodies.slice(-2)).toEqual(['x'.repeat(1000), '']);
  });

  it('refuses a POST of unknown length (chunked), which GitHub never sends', async () => {
    const before = bodies.length;
    const chunked = await fetch(url, {
      method: 'POST',
      body: new Blob(['a'.repeat(600), 'b'.repeat(400)]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(411);
    expect(bodies.length).toBe(before);
  });

  it('answers 413 past the limit, and the handler never sees the request', async () => {
    const before = bodies.length;
    const sized = await fetch(url, { method: 'POST', body: 'x'.repeat(1001) });
    expect(sized.status).toBe(413);
    expect(await sized.text()).toBe('request body over 1000 bytes\n');
    expect(bodies.length).toBe(before);
  });
});
