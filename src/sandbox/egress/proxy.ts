import { lookup as dnsLookup } from 'node:dns/promises';
import { mkdtemp, rm, chmod } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { allows, type EgressRule } from './allowlist.js';
import { forbiddenAddress, privateNetworkList } from './forbidden-addresses.js';

/** A destination the install step was refused, and how many times it asked. */
export interface EgressRefusal {
  /** `host:port` as the package manager asked for it. */
  destination: string;
  /** "not an allowed registry", "resolves to 127.0.0.1 (loopback)", … */
  reason: string;
  count: number;
}

/** What the install step's egress did: the firewall report of one command. */
export interface EgressReport {
  /** Connections made to allowed registries. */
  allowed: number;
  refused: EgressRefusal[];
}

export type Lookup = (host: string) => Promise<Array<{ address: string; family: number }>>;

export interface EgressOptions {
  rules: readonly EgressRule[];
  log: Logger;
  /** Name resolution (default: the host's resolver, every address). */
  lookup?: Lookup;
  /** A connection with no traffic for this long is closed (default 2 min). */
  idleTimeoutMs?: number;
  /** Connections open at once; past it new ones are refused (default 256). */
  maxConnections?: number;
  /**
   * Private networks an operator's own registry lives on (a corporate mirror at 10.1.2.3):
   * addresses in them may be dialled for destinations on the list. Loopback, link-local,
   * unspecified and multicast addresses never are.
   */
  privateNetworks?: readonly string[];
}

/** One command's egress: a proxy on a unix socket of its own, reachable only by what binds the socket. */
export interface EgressSession {
  /** Host path of the proxy's unix socket, to bind into the sandbox. */
  socketPath: string;
  report(): EgressReport;
  close(): Promise<void>;
}

const DIAL_TIMEOUT_MS = 15_000;
const MAX_DESTINATION = 200;
const MAX_DISTINCT_REFUSALS = 50;
// Dials (each a name lookup and up to DIAL_TIMEOUT_MS of connecting) in flight at once.
const MAX_DIALS = 32;
// Headers that describe one hop, never forwarded (RFC 9110 7.6.1), and the proxy's own.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
]);

class Refused extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** Splits `host:port` or `[v6]:port`; undefined when it is neither. */
function splitTarget(target: string): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(target);
  const port = Number(m?.[2]);
  if (!m || !(port >= 1 && port <= 65535)) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** What one proxy knows while it runs: its options, the counts and the open sockets. */
interface ProxyState {
  opts: EgressOptions;
  lookup: Lookup;
  idleMs: number;
  privateOk: ReturnType<typeof privateNetworkList>;
  refused: Map<string, EgressRefusal>;
  allowedCount: number;
  dialling: number;
  sockets: Set<Duplex>;
}

// Destinations come from repository code: bounded in length and in number, the rest
// counted under one line, so a flood of names cannot grow the report or the host's memory.
function refuse(state: ProxyState, asked: string, reason: string): void {
  const { refused } = state;
  let destination = asked.length > MAX_DESTINATION ? `${asked.slice(0, MAX_DESTINATION)}…` : asked;
  if (refused.size >= MAX_DISTINCT_REFUSALS && !refused.has(`${destination}\0${reason}`)) {
    destination = 'other destinations';
    reason = `more than ${MAX_DISTINCT_REFUSALS} distinct refusals`;
  }
  const key = `${destination}\0${reason}`;
  const seen = refused.get(key);
  if (seen) seen.count++;
  else {
    refused.set(key, { destination, reason, count: 1 });
    state.opts.log.info({ destination, reason }, 'install egress refused');
  }
}

/** Checks the list and the addresses, then connects; throws Refused with the reason. */
async function dial(state: ProxyState, host: string, port: number): Promise<net.Socket> {
  if (!allows(state.opts.rules, host, port)) throw new Refused('not an allowed registry');
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await state.lookup(host)).map((a) => a.address);
    } catch (err) {
      throw new Refused(`does not resolve (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  const why = (a: string) => forbiddenAddress(a, state.privateOk);
  const usable = addresses.filter((a) => why(a) === undefined);
  if (usable.length === 0) {
    const first = addresses[0];
    throw new Refused(
      first === undefined ? 'does not resolve' : `${net.isIP(host) ? 'is' : 'resolves to'} ${first} (${why(first)})`,
    );
  }
  if (state.dialling >= MAX_DIALS) throw new Refused(`more than ${MAX_DIALS} connections being opened at once`);
  state.dialling++;
  try {
    return await dialFirst(usable, port);
  } finally {
    state.dialling--;
  }
}

/** The first of `usable` that answers on `port`, each given DIAL_TIMEOUT_MS. */
async function dialFirst(usable: string[], port: number): Promise<net.Socket> {
  let lastError: unknown;
  for (const address of usable) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: address, port });
        const timer = setTimeout(
          () => s.destroy(new Error(`no answer from ${address}:${port} in ${DIAL_TIMEOUT_MS / 1000} s`)),
          DIAL_TIMEOUT_MS,
        );
        s.once('connect', () => {
          clearTimeout(timer);
          resolve(s);
        });
        s.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

function track(state: ProxyState, s: Duplex): void {
  state.sockets.add(s);
  s.on('close', () => state.sockets.delete(s));
  if (s instanceof net.Socket) s.setTimeout(state.idleMs, () => s.destroy());
}

/** HTTPS (and anything else) by CONNECT host:port: a tunnel after the checks. */
function onConnect(state: ProxyState, req: http.IncomingMessage, client: Duplex, head: Buffer): void {
  client.on('error', () => client.destroy());
  const target = splitTarget(req.url ?? '');
  const destination = req.url ?? '';
  const deny = (status: string, reason: string) => {
    client.end(
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nissue-agent egress: refused ${destination}: ${reason}\n`,
    );
  };
  if (!target) {
    refuse(state, destination, 'not a host:port');
    deny('400 Bad Request', 'not a host:port');
    return;
  }
  dial(state, target.host, target.port).then(
    (upstream) => {
      state.allowedCount++;
      track(state, upstream);
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    },
    (err: unknown) => {
      const reason = err instanceof Refused ? err.reason : `could not connect (${(err as Error).message})`;
      refuse(state, destination, reason);
      deny(err instanceof Refused ? '403 Forbidden' : '502 Bad Gateway', reason);
    },
  );
}

/** Sends `req` over `upstream`, the socket to the checked address, and its answer back to `res`. */
function forward(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  upstream: net.Socket,
  port: number,
  destination: string,
): void {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
  headers.host = url.host;
  // No agent: only then does the request go over `upstream`, the socket to the checked
  // address (an agent would open a connection of its own, to host and port).
  const out = http.request({
    createConnection: () => upstream,
    host: upstream.remoteAddress,
    port,
    method: req.method,
    path: `${url.pathname}${url.search}`,
    headers,
  });
  out.on('response', (answer) => {
    const back: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) back[k] = v;
    res.writeHead(answer.statusCode ?? 502, back);
    answer.pipe(res);
  });
  out.on('error', (err) => {
    if (!res.headersSent)
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`issue-agent egress: ${destination}: ${err.message}\n`);
    else res.destroy();
  });
  req.pipe(out);
}

/** Plain HTTP: an absolute-form request, forwarded to the address the proxy resolved. */
function onRequest(state: ProxyState, req: http.IncomingMessage, res: http.ServerResponse): void {
  let url: URL | undefined;
  try {
    url = new URL(req.url ?? '');
  } catch {
    url = undefined;
  }
  const fail = (status: number, destination: string, reason: string) => {
    refuse(state, destination, reason);
    res
      .writeHead(status, { 'content-type': 'text/plain', connection: 'close' })
      .end(`issue-agent egress: refused ${destination}: ${reason}\n`);
  };
  if (url?.protocol !== 'http:') {
    fail(400, String(req.url), 'not an absolute http:// URL (https goes by CONNECT)');
    return;
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port ? Number(url.port) : 80;
  const destination = `${url.hostname}:${port}`;
  dial(state, host, port).then(
    (upstream) => {
      state.allowedCount++;
      track(state, upstream);
      forward(req, res, url, upstream, port, destination);
    },
    (err: unknown) =>
      fail(
        err instanceof Refused ? 403 : 502,
        destination,
        err instanceof Refused ? err.reason : `could not connect (${(err as Error).message})`,
      ),
  );
}

/** Listens on a unix socket in a directory of its own: the socket is reachable only through what binds it. */
async function listenPrivately(server: http.Server): Promise<{ dir: string; socketPath: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'issue-agent-egress-'));
  const socketPath = path.join(dir, 'egress.sock');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // The sandbox's uid may differ from ours ('host-uid' mode): it reaches the socket only by
  // the bind mount, so the directory stays private and the socket itself is open.
  await chmod(socketPath, 0o666);
  return { dir, socketPath };
}

/**
 * Starts the install step's egress proxy: HTTP (absolute-form requests) and HTTPS by
 * CONNECT, for destinations on `rules` only. It resolves names itself and dials only
 * addresses outside loopback, link-local, private and unspecified ranges, so what a name
 * resolves to cannot bring a sandbox to the host, its metadata service or its network.
 */
export async function openEgress(opts: EgressOptions): Promise<EgressSession> {
  const state: ProxyState = {
    opts,
    lookup: opts.lookup ?? ((host) => dnsLookup(host, { all: true, verbatim: true })),
    idleMs: opts.idleTimeoutMs ?? 120_000,
    privateOk: privateNetworkList(opts.privateNetworks ?? []),
    refused: new Map(),
    allowedCount: 0,
    dialling: 0,
    sockets: new Set(),
  };
  const server = http.createServer();
  server.maxConnections = opts.maxConnections ?? 256;
  server.headersTimeout = 30_000;
  server.requestTimeout = 0;
  server.keepAliveTimeout = state.idleMs;
  server.on('connection', (s: Duplex) => track(state, s));
  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) =>
    onConnect(state, req, client, head),
  );
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => onRequest(state, req, res));
  const { dir, socketPath } = await listenPrivately(server);

  let closed: Promise<void> | undefined;
  return {
    socketPath,
    report: () => ({ allowed: state.allowedCount, refused: [...state.refused.values()].map((r) => ({ ...r })) }),
    close() {
      closed ??= (async () => {
        for (const s of state.sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}
