import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptedModel } from '../stand-ins/anthropic/server.js';
import { startTestRegistry, type TestRegistry } from '../helpers/oci-registry.js';
import { pythonRootfs } from '../helpers/python-image.js';
import { OWNER, type Scenario, startScenario, stageOf, use } from './harness.js';

/**
 * Per-repository environments through the real app: a registry the test starts on loopback
 * serves an image the test made from Debian's python3 and pytest; a Python repository whose
 * tests import a module only its setup installs gets a PR with pytest red → green, and a
 * second job reuses the set-up environment. An image the registry does not have, and a
 * setup command that fails, each end in one comment and no model call.
 */
let s: Scenario;
let registry: TestRegistry;
let digest: string;
const toolErrors: string[] = [];

const PY_REPO: Record<string, string> = {
  'calc.py': 'def add(a, b):\n    if b < 0:\n        return a - b\n    return a + b\n',
  'test_calc.py':
    'import calc_helper\nimport calc_origin\nfrom calc import add\n\n\n' +
    'def test_adds_positive_numbers():\n    assert add(2, 3) == 5\n\n\n' +
    'def test_adds_a_negative_number():\n    assert add(2, -3) == -1\n\n\n' +
    "def test_the_dependencies():\n    assert (calc_helper.GREETING, calc_origin.ORIGIN) == ('hi', 'setup')\n",
  'pytest.ini': '[pytest]\naddopts = -p no:cacheprovider\n',
  'vendor/calc_helper.py': "GREETING = 'hi'\n",
};

/** What `pip install` in setup does, without PyPI: a module into the image's own site-packages. */
const SETUP =
  'mkdir -p /usr/local/lib/python3.11/dist-packages && echo "ORIGIN = \'setup\'" > /usr/local/lib/python3.11/dist-packages/calc_origin.py';
/** What the install does, without PyPI: a virtual environment in the tree with a vendored dependency in it. */
const INSTALL =
  'python3 -m venv --without-pip --system-site-packages .issue-agent/venv && cp vendor/calc_helper.py "$(.issue-agent/venv/bin/python3 -c \'import sysconfig; print(sysconfig.get_paths()["purelib"])\')"';

const pyModel: ScriptedModel = (req) => {
  const { stage, turn } = stageOf(req);
  const last = req.messages.at(-1);
  if (last && typeof last.content !== 'string')
    for (const b of last.content)
      if (b.type === 'tool_result' && b.is_error)
        toolErrors.push(typeof b.content === 'string' ? b.content : JSON.stringify(b.content));
  if (stage === 'scope')
    return {
      content: [
        use('accept_task', {
          summary: 'add() must add negative numbers.',
          acceptance_criteria: ['python3 -m pytest passes, including test_adds_a_negative_number'],
        }),
      ],
    };
  if (stage === 'summary')
    return {
      content: [
        use('report_failure', {
          likely_cause: 'add() subtracts a negative b',
          locations: [{ path: 'calc.py', line: 2 }],
          excerpt: 'FAILED test_calc.py::test_adds_a_negative_number',
        }),
      ],
    };
  if (stage === 'plan')
    return {
      content: [
        use('submit_plan', {
          summary: 'add() subtracts when b is negative; it should always add.',
          files_to_change: ['calc.py'],
          files_to_read: ['test_calc.py'],
          steps: ['Remove the negative branch in add()'],
          verification: 'python3 -m pytest: test_adds_a_negative_number passes',
          estimated_changed_lines: 2,
          confidence: 0.9,
        }),
      ],
    };
  if (stage === 'code') {
    const steps = [
      [use('run_command', { command: 'python3 -m pytest -q 2>&1 | tail -3', timeout_seconds: 60 })],
      [use('edit_file', { path: 'calc.py', old_text: '    if b < 0:\n        return a - b\n', new_text: '' })],
      [use('finish_change', { summary: 'add() adds for every sign of b.' })],
    ];
    return { content: steps[Math.min(turn, steps.length - 1)]! };
  }
  return { content: [{ type: 'text', text: 'unexpected stage' }] };
};

/** The trace notes of every job so far. */
function traceNotes(sc: Scenario): string[] {
  const dir = path.join(sc.dataDir, 'data', 'traces');
  return readdirSync(dir).flatMap((f) =>
    readFileSync(path.join(dir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; message?: string })
      .filter((e) => e.type === 'note')
      .map((e) => e.message ?? ''),
  );
}

async function repoWith(repo: string, config: string): Promise<void> {
  await s.github.addRepo({ owner: OWNER, repo, files: { ...PY_REPO, '.github/agent.yml': config } });
  s.github.setPermission(OWNER, repo, 'maintainer', 'maintain');
}

async function labelIssue(repo: string, n: number): Promise<void> {
  const title = 'add() is wrong for negative numbers';
  s.github.addIssue(OWNER, repo, {
    number: n,
    title,
    body: '`test_adds_a_negative_number` fails.',
    user: 'maintainer',
  });
  expect((await s.label({ repo, issueNumber: n, title, body: 'x' })).status).toBe(200);
}

beforeAll(async () => {
  const rootfs = pythonRootfs();
  registry = await startTestRegistry();
  digest = registry.pushDir('py', '3.11', rootfs, ['PATH=/usr/local/bin:/usr/bin:/bin', 'LANG=C.UTF-8']);
  s = await startScenario({ env: { REGISTRY_INSECURE_HOSTS: registry.host } });
  s.anthropic.setModel(pyModel);
}, 15 * 60_000);
afterAll(async () => {
  if (process.env.E2E_LOGS) console.log(s?.logs().slice(-8000));
  await s?.stop();
  await registry?.stop();
});

describe('a repository that names an image', () => {
  it('gets a PR proved on that image, and a second job reuses both the set-up environment and the install', async () => {
    const image = `${registry.host}/py:3.11`;
    await repoWith(
      'pycalc',
      `environment:\n  image: ${image}\n  setup: ${JSON.stringify(SETUP)}\ncommands:\n  install: ${JSON.stringify(INSTALL)}\n`,
    );
    await labelIssue('pycalc', 1);
    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, 'pycalc')[0], 240_000);
    expect(pr.body).toContain('### Environment');
    expect(pr.body).toContain(`\`${image}\` from \`.github/agent.yml\`, run as \`${registry.host}/py@${digest}\``);
    expect(pr.body).toMatch(/\| `mkdir -p \/usr\/local\/lib\/python3\.11.*` \| ✅ passed \| [\d.]+ s \| \(setup\) \|/);
    expect(pr.body).toMatch(/\| `python3 -m venv .*` \| ✅ passed \| [\d.]+ s \| \(install, registries only\) \|/);
    // Detected from pytest.ini, run on the image in the tree's virtual environment (the host
    // has neither pytest nor the two modules): red → green.
    expect(pr.body).toMatch(/\| `python3 -m pytest -q` \| ✅ passed \| [\d.]+ s \| failed \|/);
    expect(pr.body).not.toContain('reused from an earlier job');
    const status1 = await s.waitFor('the last status', () =>
      s.github.comments(OWNER, 'pycalc', 1).find((c) => c.body.includes('✅ done')),
    );
    expect(status1.body).toContain(`**Environment:** \`${image}\``);
    expect(status1.body).not.toContain('reused');

    // The same repository again: the image is not pulled and the setup does not run again.
    await labelIssue('pycalc', 20);
    const second = await s.waitFor(
      'the second pull request',
      () => s.github.pulls(OWNER, 'pycalc').find((p) => p.body.includes('Closes #20')),
      240_000,
    );
    expect(second.body).toContain('Its setup was reused from an earlier job');
    expect(second.body).not.toContain('(setup) |');
    expect(second.body).toMatch(
      /\| `python3 -m venv .*` \| ✅ passed \| [\d.]+ s \| \(install, reused from an earlier job\) \|/,
    );
    expect(second.body).toMatch(/\| `python3 -m pytest -q` \| ✅ passed \| [\d.]+ s \| failed \|/);
    const status2 = await s.waitFor('the last status', () =>
      s.github.comments(OWNER, 'pycalc', 20).find((c) => c.body.includes('✅ done')),
    );
    expect(status2.body).toContain('(set up earlier, reused)');
    expect(s.logs().match(/"msg":"image unpacked"/g)).toHaveLength(1);
    expect(s.logs().match(/"msg":"environment set up"/g)).toHaveLength(1);
    const traces = traceNotes(s);
    expect(traces.filter((m) => m === 'install kept')).toHaveLength(1);
    expect(traces.filter((m) => m === 'install reused')).toHaveLength(1);
    expect(toolErrors).toEqual([]);
    expect(s.github.violations).toEqual([]);
  });

  it('ends with one comment naming the image, and no model call, when the registry has no such image', async () => {
    const before = s.anthropic.requests.length;
    const image = `${registry.host}/py:no-such-tag`;
    await repoWith('missing-image', `environment:\n  image: ${image}\n`);
    await labelIssue('missing-image', 3);
    const comment = await s.waitFor('the escalation', () =>
      s.github.comments(OWNER, 'missing-image', 3).find((c) => c.body.includes('environment-unavailable')),
    );
    expect(comment.body).toContain(`\`${image}\`: the registry has no such image or tag`);
    expect(comment.body).toContain('REGISTRY_AUTH_FILE');
    expect(s.github.pulls(OWNER, 'missing-image')).toEqual([]);
    expect(s.anthropic.requests.length).toBe(before);
  });

  it('ends with the failing setup command and its output, and no model call', async () => {
    const before = s.anthropic.requests.length;
    await repoWith(
      'broken-setup',
      `environment:\n  image: ${registry.host}/py:3.11\n  setup:\n    - "true"\n    - "echo 'E: cannot find pytest-cov' >&2; exit 4"\n`,
    );
    await labelIssue('broken-setup', 4);
    const comment = await s.waitFor('the escalation', () =>
      s.github.comments(OWNER, 'broken-setup', 4).find((c) => c.body.includes('setup-failed')),
    );
    expect(comment.body).toContain("its setup command `echo 'E: cannot find pytest-cov' >&2; exit 4`");
    expect(comment.body).toContain('failed with exit code 4');
    expect(comment.body).toContain('E: cannot find pytest-cov');
    expect(comment.body).toContain('environment: setup:');
    expect(s.github.pulls(OWNER, 'broken-setup')).toEqual([]);
    expect(s.anthropic.requests.length).toBe(before);
  });
});
