import { createHash } from 'node:crypto';

/** A stable numeric id for a login, so webhook payloads and API answers agree on `user.id`. */
export function userId(login: string): number {
  const digest = createHash('sha256').update(login.toLowerCase()).digest();
  return 1_000_000 + (digest.readUInt32BE(0) % 90_000_000);
}

/** GitHub's node ids are opaque base64 strings; ours only need to be stable and unique. */
export function nodeId(kind: string, id: number): string {
  return Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64');
}

export function isBotLogin(login: string): boolean {
  return login.endsWith('[bot]');
}

/** A "Simple User" object as GitHub returns it for `user`, `owner`, `sender`. */
export function userObject(login: string, url: string): Record<string, unknown> {
  const id = userId(login);
  const api = `${url}/api/v3/users/${encodeURIComponent(login)}`;
  return {
    login,
    id,
    node_id: nodeId(isBotLogin(login) ? 'Bot' : 'User', id),
    avatar_url: `${url}/avatars/u/${id}?v=4`,
    gravatar_id: '',
    url: api,
    html_url: `${url}/${isBotLogin(login) ? `apps/${login.slice(0, -5)}` : encodeURIComponent(login)}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type: isBotLogin(login) ? 'Bot' : 'User',
    site_admin: false,
  };
}
