/**
 * The sandbox's side of the install egress. The sandbox has a network namespace of its own
 * with only loopback in it; a small forwarder there listens on 127.0.0.1:EGRESS_PORT and
 * carries each connection over the proxy's unix socket, bound in at EGRESS_SOCKET. Package
 * managers find it through their usual proxy settings.
 */

/** Where the proxy's socket and the forwarder appear inside the sandbox. */
export const EGRESS_SOCKET = '/run/issue-agent/egress.sock';
export const EGRESS_FORWARDER = '/run/issue-agent/egress-forward.cjs';
export const EGRESS_PORT = 3128;
const READY = '/tmp/.issue-agent-egress-ready';

/** The forwarder, run by the host's node inside the sandbox (CommonJS: no package.json decides its type). */
export const FORWARDER_SOURCE = `'use strict';
const net = require('node:net');
const fs = require('node:fs');
const [socketPath, port, ready] = process.argv.slice(2);
const server = net.createServer((client) => {
  const upstream = net.connect(socketPath);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end); upstream.on('error', end);
  client.on('close', end); upstream.on('close', end);
  client.pipe(upstream); upstream.pipe(client);
});
server.on('error', (err) => { process.stderr.write('issue-agent egress forwarder: ' + err.message + '\\n'); process.exit(1); });
server.listen(Number(port), '127.0.0.1', () => fs.writeFileSync(ready, ''));
`;

// Waits (up to 10 s) for the ready file, in the node that runs the forwarder: an image's
// shell may have no `sleep` (nor anything else) to wait with.
const WAIT =
  'const fs=require("node:fs"),p=process.argv[1],t=Date.now();(function w(){if(fs.existsSync(p))return;if(Date.now()-t>10000)process.exit(1);setTimeout(w,10)})()';

// Starts the forwarder, waits until it listens, then becomes the command.
// Arguments, never spliced into the script: node, the forwarder, the command.
const WRAPPER = [
  `"$1" "$2" ${EGRESS_SOCKET} ${EGRESS_PORT} ${READY} </dev/null &`,
  `"$1" -e '${WAIT}' ${READY} || { echo "issue-agent: the install egress forwarder did not start" >&2; exit 125; }`,
  'exec /bin/sh -c "$3"',
].join('\n');

/** The argv that runs `command` behind the forwarder. */
export function behindForwarder(node: string, command: string): string[] {
  return ['/bin/sh', '-c', WRAPPER, 'sandbox-egress', node, EGRESS_FORWARDER, command];
}

/** The proxy settings each package manager reads (npm, pnpm and yarn, pip, cargo, Go, Maven, Gradle, curl, git). */
export function proxyEnv(): Record<string, string> {
  const url = `http://127.0.0.1:${EGRESS_PORT}`;
  const jvm = `-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=${EGRESS_PORT} -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=${EGRESS_PORT}`;
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    npm_config_proxy: url,
    npm_config_https_proxy: url,
    YARN_HTTP_PROXY: url,
    YARN_HTTPS_PROXY: url,
    PIP_PROXY: url,
    CARGO_HTTP_PROXY: url,
    MAVEN_OPTS: jvm,
    GRADLE_OPTS: jvm,
  };
}
