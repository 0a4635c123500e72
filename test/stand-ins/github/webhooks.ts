// Real webhook payloads from @octokit/webhooks-examples, signed and delivered the way GitHub does.
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { sign } from '@octokit/webhooks-methods';
import { nodeId, userId, userObject } from './users.js';

type Payload = Record<string, unknown> & { action?: string };

interface ExampleGroup {
  name: string;
  examples: Payload[];
}

let examples: ExampleGroup[] | undefined;

function allExamples(): ExampleGroup[] {
  if (!examples) {
    // The package has no `exports`; its main entry is the JSON list of {name, examples[]}.
    examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as ExampleGroup[];
  }
  return examples;
}

/** A deep copy of the first real example payload for `event` (and `action`, when given). */
export function loadExample(event: string, action?: string): Payload {
  const group = allExamples().find((g) => g.name === event);
  if (!group) throw new Error(`@octokit/webhooks-examples has no event "${event}"`);
  const example = group.examples.find((e) => action === undefined || e.action === action);
  if (!example) {
    const actions = [...new Set(group.examples.map((e) => e.action))].join(', ');
    throw new Error(`@octokit/webhooks-examples has no "${event}" example with action "${action}" (has: ${actions})`);
  }
  return structuredClone(example);
}

export interface WebhookDelivery {
  url: string;
  secret: string;
  event: string;
  payload: unknown;
  deliveryId?: string;
}

/** POSTs a payload signed with X-Hub-Signature-256 exactly as GitHub's Hookshot sends it. */
export async function sendWebhook(d: WebhookDelivery): Promise<{ status: number; body: string; deliveryId: string }> {
  const body = JSON.stringify(d.payload);
  const deliveryId = d.deliveryId ?? randomUUID();
  const response = await fetch(d.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/7d4c5a1',
      'x-github-event': d.event,
      'x-github-delivery': deliveryId,
      'x-hub-signature-256': await sign(d.secret, body),
      'x-github-hook-id': '424242',
      'x-github-hook-installation-target-type': 'integration',
      'x-github-hook-installation-target-id': '4242',
    },
    body,
  });
  return { status: response.status, body: await response.text(), deliveryId };
}

export interface Actor {
  login: string;
  type: 'User' | 'Bot' | 'Organization';
}

export interface IssueLabeledOptions {
  owner: string;
  repo: string;
  issueNumber: number;
  title: string;
  body: string;
  label: string;
  sender: Actor;
  installationId: number;
  /** The stand-in's base URL (`standIn.url`); repository URLs and clone_url point there. */
  url?: string;
  /** Who opened the issue; the sender when not given. */
  author?: Actor;
  defaultBranch?: string;
}

/** The real `issues.labeled` example, rewritten to describe one issue in one stand-in repository. */
export function issueLabeledPayload(o: IssueLabeledOptions): Payload {
  const web = o.url ?? 'https://github.com';
  const api = o.url ? `${o.url}/api/v3` : 'https://api.github.com';
  const example = loadExample('issues', 'labeled');
  const fullName = `${o.owner}/${o.repo}`;
  // Rewrite every URL of the example repository first, then set the fields that matter.
  const rewritten = JSON.parse(
    JSON.stringify(example)
      .replaceAll('https://api.github.com/repos/Codertocat/Hello-World', `${api}/repos/${fullName}`)
      .replaceAll('https://github.com/Codertocat/Hello-World', `${web}/${fullName}`)
      .replaceAll('git://github.com/Codertocat/Hello-World', `git://${web.replace(/^https?:\/\//, '')}/${fullName}`)
      .replaceAll('git@github.com:Codertocat/Hello-World', `git@${web.replace(/^https?:\/\//, '').replace(/:\d+$/, '')}:${fullName}`)
      .replaceAll('https://api.github.com', api),
  ) as Payload & {
    issue: Record<string, unknown>;
    repository: Record<string, unknown>;
    label: Record<string, unknown>;
  };

  const actorObject = (a: Actor): Record<string, unknown> => {
    const u = userObject(a.login, o.url ?? 'https://github.com');
    return { ...u, type: a.type, node_id: nodeId(a.type, userId(a.login)) };
  };
  const repository = rewritten.repository;
  repository.name = o.repo;
  repository.full_name = fullName;
  repository.owner = actorObject({ login: o.owner, type: 'User' });
  repository.html_url = `${web}/${fullName}`;
  repository.clone_url = `${web}/${fullName}.git`;
  repository.default_branch = o.defaultBranch ?? 'main';
  repository.private = true;

  const issue = rewritten.issue;
  issue.number = o.issueNumber;
  issue.title = o.title;
  issue.body = o.body;
  issue.user = actorObject(o.author ?? o.sender);
  issue.url = `${api}/repos/${fullName}/issues/${o.issueNumber}`;
  issue.html_url = `${web}/${fullName}/issues/${o.issueNumber}`;
  issue.comments_url = `${issue.url}/comments`;
  issue.events_url = `${issue.url}/events`;
  issue.labels_url = `${issue.url}/labels{/name}`;
  issue.assignee = null;
  issue.assignees = [];
  // Only ownership is knowable here; the app must ask the permission API, not trust this field.
  issue.author_association = (o.author ?? o.sender).login === o.owner ? 'OWNER' : 'NONE';

  const label = { ...rewritten.label, name: o.label, url: `${api}/repos/${fullName}/labels/${encodeURIComponent(o.label)}` };
  rewritten.label = label;
  issue.labels = [label];

  rewritten.sender = actorObject(o.sender);
  rewritten.installation = { id: o.installationId, node_id: nodeId('Installation', o.installationId) };
  return rewritten;
}
