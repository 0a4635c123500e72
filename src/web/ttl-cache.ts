/**
 * A small time-bounded cache for the per-event reads the inbox thread makes (a sender's
 * permission, the repository's config, an installation's client): at hundreds of events a
 * second, API calls for each would spend GitHub's rate limit and hold the thread's work
 * up. Concurrent reads of one key share one load; a failed load is not kept.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: Promise<V>; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string, load: () => Promise<V>): Promise<V> {
    const t = this.now();
    const hit = this.entries.get(key);
    if (hit && hit.expires > t) return hit.value;
    if (this.entries.size >= this.maxEntries) {
      for (const [k, e] of this.entries) if (e.expires <= t) this.entries.delete(k);
      // Still full: drop the oldest (Map keeps insertion order).
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    }
    const value = load();
    this.entries.set(key, { value, expires: t + this.ttlMs });
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }
}
