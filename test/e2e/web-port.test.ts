import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueLabeledPayload, sendWebhook } from '../stand-ins/github/webhooks.js';
import { CALC_REPO, OWNER, startScenario, WEBHOOK_SECRET, type Scenario } from './harness.js';

/** The web port of the real app process: what it reads before a signature is checked, and replays. */
let s: Scenario;

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  await s?.stop();
});

/** Sends raw bytes and reads the answer's status line; undefined when none came within `waitMs`. */
function raw(port: number, head: string, body: Buffer, waitMs = 5_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, waitMs);
    socket.on('data', (d) => {
      answer += d.toString();
      if (answer.includes('\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answer.split('\r\n')[0]);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer ? answer.split('\r\n')[0] : undefined);
    });
    socket.write(head);
    socket.write(body, () => undefined);
  });
}

describe('the web port', () => {
  it('refuses a body over 25 MB from its Content-Length, before reading it', async () => {
    const port = Number(new URL(s.appUrl).port);
    // 64 MiB announced, 1 KiB sent: an answer can only come if the server did not wait for the rest.
    const head = `POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: issues\r\nX-GitHub-Delivery: big-1\r\nX-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`;
    expect(await raw(port, head, Buffer.alloc(1024, 'a'))).toBe('HTTP/1.1 413 Payload Too Large');
  });

  it("refuses a chunked body, and is still up after Probot's 9 s answer timeout", async () => {
    const port = Number(new URL(s.appUrl).port);
    const head =
      'POST /api/github/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: issues\r\nX-GitHub-Delivery: big-2\r\nX-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\n\r\n';
    // The answer comes before the body is read: the first chunk of an unending body is enough.
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    expect(await raw(port, head, frame)).toBe('HTTP/1.1 411 Length Required');
    // The app is unharmed and still answers, also once a handler's own timeout would have fired.
    await new Promise((r) => setTimeout(r, 10_000));
    expect(s.app.exitCode).toBeNull();
    expect((await fetch(`${s.appUrl}/healthz`)).status).toBe(200);
  });

  it("acts once on a signed body sent again under a new delivery id, and still takes GitHub's redelivery of the same id", async () => {
    await s.github.addRepo({ owner: OWNER, repo: 'replayed', files: CALC_REPO });
    s.github.setPermission(OWNER, 'replayed', 'reader', 'read');
    const payload = issueLabeledPayload({
      owner: OWNER,
      repo: 'replayed',
      issueNumber: 3,
      title: 'x',
      body: 'y',
      label: 'agent',
      sender: { login: 'reader', type: 'User' },
      installationId: s.github.installationId,
      url: s.github.url,
    });
    const send = (deliveryId: string) =>
      sendWebhook({
        url: `${s.appUrl}/api/github/webhooks`,
        secret: WEBHOOK_SECRET,
        event: 'issues',
        payload,
        deliveryId,
      });
    expect((await send('replay-original')).status).toBe(200);
    expect((await send('replay-original')).status).toBe(200);
    expect((await send('replay-copy')).status).toBe(200);
    const replays = () =>
      s
        .logs()
        .split('\n')
        .filter((l) => l.includes('already delivered under another delivery id'));
    await s.waitFor('the replay to be logged', () => (replays().length > 0 ? true : undefined), 10_000);
    expect(replays()).toHaveLength(1);
    expect(replays()[0]).toContain('replay-copy');
  });
});
