import { execFile, type ExecFileException } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export type Ecosystem = 'npm' | 'pip' | 'go' | 'cargo' | 'maven';
export interface HostRegistry {
  ecosystem: Ecosystem;
  url: string /** how it was found, for logs: e.g. "npm config get registry", "pip config: global.index-url", "~/.m2/settings.xml mirror" */;
  from: string;
}
export interface HostRegistryOptions {
  env?: NodeJS.ProcessEnv /** the host user's home (default os.homedir()) */;
  home?: string /** PATH to find tools on (default env.PATH) */;
  searchPath?: string;
  timeoutMs?: number;
}

type Skip = { ecosystem: Ecosystem; why: string };
interface Found {
  registries: HostRegistry[];
  skipped: Skip[];
}
interface Context {
  env: NodeJS.ProcessEnv;
  home: string;
  searchPath: string;
  timeoutMs: number;
}

/** The operator's variable for hosts we cannot discover (a tool's compiled-in default). */
const EXTRA_VARIABLE = 'SANDBOX_EGRESS_ALLOW_EXTRA';

/** Registry URLs the host's package managers are configured to use; a tool that is missing or fails is skipped (and listed in `skipped`). */
export async function hostRegistries(
  opts: HostRegistryOptions = {},
): Promise<{ registries: HostRegistry[]; skipped: Array<{ ecosystem: Ecosystem; why: string }> }> {
  const env = opts.env ?? process.env;
  const context: Context = {
    env,
    home: opts.home ?? os.homedir(),
    searchPath: opts.searchPath ?? env.PATH ?? '',
    timeoutMs: opts.timeoutMs ?? 5000,
  };
  const finders: Record<Ecosystem, (c: Context) => Promise<Found>> = { npm, pip, go, cargo, maven };
  const parts = await Promise.all(
    Object.entries(finders).map(([ecosystem, find]) =>
      // A bug in one reader (say, output we did not expect) must not hide the other ecosystems.
      find(context).catch(
        (err: unknown): Found => ({
          registries: [],
          skipped: [
            {
              ecosystem: ecosystem as Ecosystem,
              why: `unexpected error: ${err instanceof Error ? err.message : String(err)}`,
            },
          ],
        }),
      ),
    ),
  );
  const byKey = new Map<string, HostRegistry>(); // first finding of a URL wins, so `from` names the stronger source
  for (const r of parts.flatMap((p) => p.registries))
    if (!byKey.has(`${r.ecosystem} ${r.url}`)) byKey.set(`${r.ecosystem} ${r.url}`, r);
  const registries = [...byKey.values()];
  return { registries, skipped: parts.flatMap((p) => p.skipped) };
}

async function npm(c: Context): Promise<Found> {
  const result = await run(c, 'npm', ['config', 'list', '--json'], 'npm config list');
  if (!result.ok) return skip('npm', result.why);
  const found = collector('npm');
  for (const [key, value] of Object.entries(JSON.parse(result.stdout) as Record<string, unknown>)) {
    if ((key === 'registry' || /^@[^:]+:registry$/.test(key)) && typeof value === 'string')
      found.add(value, `npm config list: ${key}`);
  }
  return { registries: found.registries, skipped: [] };
}

async function pip(c: Context): Promise<Found> {
  const found = collector('pip');
  let indexConfigured = false; // when set, pip never falls back to its built-in index
  for (const name of ['PIP_INDEX_URL', 'PIP_EXTRA_INDEX_URL']) {
    const value = c.env[name]?.trim();
    if (!value) continue;
    if (name === 'PIP_INDEX_URL') indexConfigured = true;
    for (const url of value.split(/\s+/)) found.add(url, `env ${name}`);
  }
  // Both at once: the second is only needed when nothing configures index-url, but waiting would double the time.
  const [config, builtin] = await Promise.all([
    run(c, 'python3', ['-m', 'pip', 'config', 'list'], 'pip config list'),
    run(
      c,
      'python3',
      ['-c', 'from pip._internal.models.index import PyPI; print(PyPI.simple_url); print(PyPI.file_storage_domain)'],
      "pip's built-in index query",
    ),
  ]);
  if (!config.ok) return { registries: found.registries, skipped: [{ ecosystem: 'pip', why: config.why }] };
  for (const line of config.stdout.split('\n')) {
    // pip prints `section.key=<python repr>`; ":env:" lines repeat the variables read above.
    const m = /^([^=]+)\.(index-url|extra-index-url)=(.*)$/.exec(line.trim());
    if (!m || m[1] === ':env:') continue;
    if (m[2] === 'index-url') indexConfigured = true;
    const list = (m[3] ?? '').replace(/^(['"])(.*)\1$/s, '$2').replace(/\\n/g, ' ');
    for (const url of list.split(/\s+/)) found.add(url, `pip config: ${m[1]}.${m[2]}`);
  }
  if (indexConfigured) return { registries: found.registries, skipped: [] };
  if (!builtin.ok) return { registries: found.registries, skipped: [{ ecosystem: 'pip', why: builtin.why }] };
  const [simpleUrl, fileHost] = builtin.stdout
    .trim()
    .split('\n')
    .map((s) => s.trim());
  if (simpleUrl) found.add(simpleUrl, 'pip built-in: PyPI.simple_url');
  if (fileHost) found.add(`https://${fileHost}/`, 'pip built-in: PyPI.file_storage_domain');
  return { registries: found.registries, skipped: [] };
}

async function go(c: Context): Promise<Found> {
  const result = await run(c, 'go', ['env', '-json', 'GOPROXY', 'GOSUMDB'], 'go env');
  if (!result.ok) return skip('go', result.why);
  const vars = JSON.parse(result.stdout) as { GOPROXY?: string; GOSUMDB?: string };
  const found = collector('go');
  // "direct" and "off" are not URLs, so add() drops them.
  for (const proxy of (vars.GOPROXY ?? '').split(/[,|]/)) found.add(proxy, 'go env GOPROXY');
  // GOSUMDB is "name", "name+key" or "name+key url"; without a url Go speaks https to the name.
  const [nameAndKey, sumUrl] = (vars.GOSUMDB ?? '').trim().split(/\s+/);
  if (nameAndKey && nameAndKey !== 'off') found.add(sumUrl ?? `https://${nameAndKey.split('+')[0]}/`, 'go env GOSUMDB');
  return { registries: found.registries, skipped: [] };
}

async function cargo(c: Context): Promise<Found> {
  const cargoHome = c.env.CARGO_HOME || path.join(c.home, '.cargo');
  const found = collector('cargo');
  let cratesIoReplaced = false;
  for (const file of [path.join(cargoHome, 'config'), path.join(cargoHome, 'config.toml')]) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    for (const { key, value } of tomlStrings(text)) {
      if (key === 'source.crates-io.replace-with') cratesIoReplaced = true;
      if (/^source\.[^.]+\.registry$|^registries\.[^.]+\.index$/.test(key))
        found.add(value.replace(/^sparse\+/, ''), `${tilde(c, file)} ${key}`);
    }
  }
  for (const [key, value] of Object.entries(c.env)) {
    if (/^CARGO_REGISTRIES_.+_INDEX$/.test(key) && value) found.add(value.replace(/^sparse\+/, ''), `env ${key}`);
  }
  if (cratesIoReplaced) return { registries: found.registries, skipped: [] };
  if (await which('cargo', c.searchPath)) {
    return {
      registries: found.registries,
      skipped: [
        {
          ecosystem: 'cargo',
          why: `cargo uses its built-in crates.io registry (no [source.crates-io] replace-with in ${tilde(c, cargoHome)}/config.toml) and stable cargo cannot print it; add the crates.io hosts to ${EXTRA_VARIABLE}`,
        },
      ],
    };
  }
  return found.registries.length
    ? { registries: found.registries, skipped: [] }
    : skip('cargo', `cargo not found on PATH and ${tilde(c, cargoHome)}/config.toml names no registry`);
}

async function maven(c: Context): Promise<Found> {
  const mvn = await which('mvn', c.searchPath);
  const files = [path.join(c.home, '.m2', 'settings.xml')];
  // mvn also reads <maven.home>/conf/settings.xml, where system images often put the mirror.
  if (mvn)
    files.push(path.join(path.dirname(path.dirname(await realpath(mvn).catch(() => mvn))), 'conf', 'settings.xml'));
  const found = collector('maven');
  let centralMirrored = false;
  for (const file of files) {
    // Comments first: the stock settings.xml carries a commented-out example mirror.
    const xml = (await readFile(file, 'utf8').catch(() => '')).replace(/<!--[\s\S]*?-->/g, '');
    for (const [, kind, body = ''] of xml.matchAll(/<(mirror|repository|pluginRepository)>([\s\S]*?)<\/\1>/g)) {
      if (/<blocked>\s*true\s*<\/blocked>/.test(body)) continue; // e.g. maven's http blocker: never fetched from
      const url = /<url>\s*([^<]*?)\s*<\/url>/.exec(body)?.[1];
      if (url) found.add(url.replace(/&amp;/g, '&'), `${tilde(c, file)} ${kind}`);
      const mirrorOf = (/<mirrorOf>([^<]*)<\/mirrorOf>/.exec(body)?.[1] ?? '').split(',').map((s) => s.trim());
      if (
        kind === 'mirror' &&
        !mirrorOf.includes('!central') &&
        mirrorOf.some((id) => id === '*' || id === 'central' || id === 'external:*')
      )
        centralMirrored = true;
    }
  }
  if (centralMirrored) return { registries: found.registries, skipped: [] };
  if (mvn) {
    return {
      registries: found.registries,
      skipped: [
        {
          ecosystem: 'maven',
          why: `maven uses its built-in central repository (no settings.xml mirror covers "central") and cannot print it offline; add its host to ${EXTRA_VARIABLE}`,
        },
      ],
    };
  }
  return found.registries.length
    ? { registries: found.registries, skipped: [] }
    : skip('maven', `mvn not found on PATH and ${tilde(c, files[0] ?? '')} names no mirror or repository`);
}

function skip(ecosystem: Ecosystem, why: string): Found {
  return { registries: [], skipped: [{ ecosystem, why }] };
}

function collector(ecosystem: Ecosystem) {
  const registries: HostRegistry[] = [];
  return {
    registries,
    add(raw: string, from: string) {
      const url = httpUrl(raw);
      if (url) registries.push({ ecosystem, url, from });
    },
  };
}

/** The URL without credentials, or undefined unless http(s): only those can pass the egress proxy. */
function httpUrl(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (!url.username && !url.password) return raw.trim();
  url.username = '';
  url.password = ''; // tokens in index URLs must not reach logs or the allowlist
  return url.href;
}

function tilde(c: Context, file: string): string {
  return file.startsWith(c.home + path.sep) ? `~${file.slice(c.home.length)}` : file;
}

async function which(tool: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue; // "" or "." would mean the cwd; never run a tool from there
    const file = path.join(dir, tool);
    try {
      await access(file, constants.X_OK);
      if ((await stat(file)).isFile()) return file;
    } catch {
      /* not in this directory */
    }
  }
  return undefined;
}

type RunResult = { ok: true; stdout: string } | { ok: false; why: string };

/** Runs a host tool without a shell, in the home dir so no project config is read; never rejects. */
async function run(c: Context, tool: string, args: string[], label: string): Promise<RunResult> {
  const file = await which(tool, c.searchPath);
  if (!file) return { ok: false, why: `${tool} not found on PATH` };
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: c.home, env: { ...c.env, HOME: c.home }, timeout: c.timeoutMs, encoding: 'utf8' },
      (err: ExecFileException | null, stdout, stderr) => {
        if (!err) return resolve({ ok: true, stdout });
        const how = err.killed
          ? `timed out after ${c.timeoutMs} ms`
          : typeof err.code === 'number'
            ? `exited ${err.code}`
            : err.signal
              ? `killed by ${err.signal}`
              : `failed: ${err.message}`;
        const firstLine = stderr.trim().split('\n')[0];
        resolve({ ok: false, why: `${label} ${how}${firstLine ? `: ${firstLine}` : ''}` });
      },
    );
  });
}

/** Dotted key → string value for each `key = "..."` (also in one-level inline tables); enough for cargo's source and registry tables. */
function tomlStrings(text: string): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  let table = '';
  for (const raw of text.split('\n')) {
    const line = stripTomlComment(raw).trim();
    if (line.startsWith('[')) {
      const header = /^\[\s*([^[\]]+?)\s*\]$/.exec(line);
      table = header?.[1] ? tomlKey(header[1]) : '[[array]]'; // array tables hold no sources
      continue;
    }
    const m = /^([^=]+?)\s*=\s*(.+)$/.exec(line);
    if (!m?.[1] || !m[2]) continue;
    const key = [table, tomlKey(m[1])].filter(Boolean).join('.');
    const inline = /^\{(.*)\}$/.exec(m[2]);
    if (!inline) {
      const value = tomlString(m[2]);
      if (value !== undefined) out.push({ key, value });
      continue;
    }
    for (const part of (inline[1] ?? '').split(',')) {
      const pair = /^\s*([^=]+?)\s*=\s*(.+?)\s*$/.exec(part);
      const value = pair?.[2] === undefined ? undefined : tomlString(pair[2]);
      if (pair?.[1] && value !== undefined) out.push({ key: `${key}.${tomlKey(pair[1])}`, value });
    }
  }
  return out;
}

function tomlKey(key: string): string {
  return key
    .split('.')
    .map((part) => part.trim().replace(/^(["'])(.*)\1$/, '$2'))
    .join('.');
}

function tomlString(value: string): string | undefined {
  const v = value.trim();
  if (/^'[^']*'$/.test(v)) return v.slice(1, -1);
  if (!/^"(?:[^"\\]|\\.)*"$/.test(v)) return undefined;
  try {
    return JSON.parse(v) as string;
  } catch {
    return undefined;
  }
}

function stripTomlComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === '\\' && quote === '"') i++;
      else if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#') return line.slice(0, i);
  }
  return line;
}
