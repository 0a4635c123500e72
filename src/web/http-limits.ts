import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/** GitHub caps a webhook's payload at 25 MB; anything larger is not GitHub's. */
export const MAX_WEBHOOK_BODY_BYTES = 25 * 1024 * 1024;
/** A client has this long to send its headers, and this long for the whole request. */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 60_000;

function refuse(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  if (!res.headersSent)
    res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' }).end(`${message}\n`);
  // Nothing more of the body is read: the connection goes once the answer is out.
  res.once('finish', () => req.socket.destroy());
  req.unpipe();
}

/**
 * Bounds what the web port reads before the signature is even checked: a body past
 * `maxBodyBytes` is refused from its Content-Length before a byte of it is read, a POST
 * without one (chunked) is refused; headers and whole requests have time limits. Probot's
 * server buffers a webhook whole before checking it, so without this an unsigned 64 MiB
 * body was read into memory before its 400. Runs first for every request of `server`.
 */
export function limitRequests(server: Server, opts: { log: Logger; maxBodyBytes?: number }): void {
  const max = opts.maxBodyBytes ?? MAX_WEBHOOK_BODY_BYTES;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  const handlers = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      opts.log.warn({ bytes: declared, url: req.url }, `refused a request body over ${max} bytes`);
      refuse(req, res, 413, `request body over ${max} bytes`);
      return;
    }
    // GitHub always says how long a delivery is. A body of unknown length (chunked) could
    // only be cut while a handler reads it, which leaves that handler waiting for an end
    // that never comes (Probot's answers its own timeout on a closed response and throws).
    if (req.method === 'POST' && req.headers['content-length'] === undefined) {
      opts.log.warn({ url: req.url }, 'refused a POST without Content-Length');
      refuse(req, res, 411, 'a Content-Length is required');
      return;
    }
    for (const handler of handlers) handler.call(server, req, res);
  });
}
