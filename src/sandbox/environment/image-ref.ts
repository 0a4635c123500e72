/**
 * An OCI image reference as a repository's `.github/agent.yml` names it, parsed by the
 * distribution reference grammar: `[registry/]path[:tag][@sha256:<hex>]`. A name without a
 * registry is Docker Hub's (`python` → `docker.io/library/python`), as docker and podman read it.
 */
export interface ImageRef {
  /** As written. */
  text: string;
  /** `host[:port]`; `docker.io` when the reference names none. */
  registry: string;
  /** The repository path in the registry (`library/python`). */
  path: string;
  tag: string | undefined;
  /** `sha256:<64 hex>` when the reference pins one. */
  digest: string | undefined;
}

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const HOST =
  '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:]+\\])(?::[0-9]{1,5})?';
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = 'sha256:[a-f0-9]{64}';
const REFERENCE = new RegExp(`^(?:(${HOST})/)?(${COMPONENT}(?:/${COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`);

/** The reference's parts, or why it is not one (a message naming the text). */
export function parseImageRef(text: string): { ok: true; ref: ImageRef } | { ok: false; why: string } {
  if (text.length > 512) return { ok: false, why: 'an image reference is at most 512 characters' };
  const m = REFERENCE.exec(text);
  if (!m) {
    return {
      ok: false,
      why: `"${text}" is not an image reference (expected [registry/]name[:tag][@sha256:digest], lower-case name, e.g. python:3.12-bookworm)`,
    };
  }
  let [, host, path, tag, digest] = m;
  // The first component is a registry only when it looks like a host: a dot, a port or localhost.
  if (host !== undefined && !/[.:[]/.test(host) && host !== 'localhost') {
    path = `${host.toLowerCase()}/${path}`;
    host = undefined;
  }
  if (host !== undefined && host !== host.toLowerCase()) host = host.toLowerCase();
  const registry = host ?? 'docker.io';
  if (registry === 'docker.io' && !path!.includes('/')) path = `library/${path}`;
  return {
    ok: true,
    ref: { text, registry, path: path!, tag: digest === undefined ? (tag ?? 'latest') : tag, digest },
  };
}

/** `registry/path@digest`: the reference skopeo pulls once the digest is known. */
export function pinned(ref: ImageRef, digest: string): string {
  return `${ref.registry}/${ref.path}@${digest}`;
}

/** `registry/path:tag` or `registry/path@digest`, as asked. */
export function asked(ref: ImageRef): string {
  return ref.digest ? pinned(ref, ref.digest) : `${ref.registry}/${ref.path}:${ref.tag}`;
}
