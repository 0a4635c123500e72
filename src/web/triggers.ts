import { WRITE_PERMISSIONS, type Permission } from '../github/facade.js';

// One default, owned by the repository config that can change it.
export { DEFAULT_TRIGGER_LABEL } from '../config/repo-config.js';

export interface Sender {
  login: string;
  type: string;
}

export type TriggerDecision = { run: true } | { run: false; reason: string };

/** Bots never trigger anything: not GitHub Apps, not `[bot]` users, not this app. */
export function isBot(sender: Sender, appSlug?: string): boolean {
  const login = sender.login.toLowerCase();
  return sender.type === 'Bot' || login.endsWith('[bot]') || (appSlug !== undefined && login === appSlug.toLowerCase());
}

/** The checks a label event passes before any API call: the label, then the sender. */
export function checkLabelEvent(e: {
  label: string | undefined;
  sender: Sender;
  triggerLabel: string;
  appSlug?: string;
}): TriggerDecision {
  if (e.label?.toLowerCase() !== e.triggerLabel.toLowerCase())
    return { run: false, reason: `label "${e.label ?? ''}" is not the trigger label "${e.triggerLabel}"` };
  if (isBot(e.sender, e.appSlug)) return { run: false, reason: `sender ${e.sender.login} is a bot` };
  return { run: true };
}

/** The app's own state labels never trigger anything, whatever the trigger label is. */
export function isStateLabel(name: string | undefined): boolean {
  return name !== undefined && /^agent:/i.test(name);
}

/**
 * Which review submissions ask for a revision: changes requested, or comments with a body
 * or line comments. Approvals and dismissals do not.
 */
export function reviewAsksForChanges(state: string, hasBody: boolean, lineComments: number): boolean {
  const s = state.toLowerCase();
  if (s === 'changes_requested') return true;
  return s === 'commented' && (hasBody || lineComments > 0);
}

/** Whether a review (or comment) body says anything. */
export function hasText(body: string | null | undefined): boolean {
  return (body ?? '').trim() !== '';
}

/** Only people who can push to the repository may spend the app's budget on it. */
export function checkPermission(login: string, permission: Permission): TriggerDecision {
  return WRITE_PERMISSIONS.has(permission)
    ? { run: true }
    : { run: false, reason: `${login} has ${permission} permission; write, maintain or admin is needed` };
}
