import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Authenticates what the app writes to Redis and later acts on (job data, stage outputs,
 * plans waiting for a go-ahead) with a key Redis never sees. Redis is not a trust root:
 * whoever reaches it could otherwise forge a job or a stage output (a change marked
 * validated, a branch of their choosing) that a worker would act on with the App's rights.
 * Each seal names what the record is and whose it is, so a genuine record copied to
 * another job or stage does not open there.
 */
export class RecordSeal {
  private constructor(private readonly key: Buffer) {}

  /**
   * The key every process of one App shares without being told: derived (HKDF-SHA256)
   * from the App's private key, which web and workers hold anyway and Redis never sees.
   */
  static fromPrivateKey(pem: string): RecordSeal {
    return new RecordSeal(Buffer.from(hkdfSync('sha256', pem.trim(), 'issue-agent', 'redis record seal v1', 32)));
  }

  /** A key of this process's own, for tests and tools that only read back what they wrote. */
  static ephemeral(): RecordSeal {
    return new RecordSeal(randomBytes(32));
  }

  /** The seal of `text` as record `kind` of `owner` (hex HMAC-SHA256). */
  mac(kind: string, owner: string, text: string): string {
    return createHmac('sha256', this.key).update(`${kind}\0${owner}\0`).update(text).digest('hex');
  }

  /** Whether `mac` is the seal of `text` as record `kind` of `owner`; compared in constant time. */
  verify(kind: string, owner: string, text: string, mac: unknown): boolean {
    if (typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return false;
    return timingSafeEqual(Buffer.from(this.mac(kind, owner, text), 'hex'), Buffer.from(mac, 'hex'));
  }

  /** `text` with its seal in front, as stored. */
  seal(kind: string, owner: string, text: string): string {
    return `${this.mac(kind, owner, text)}.${text}`;
  }

  /** The text of a stored record when its seal holds, else undefined. */
  open(kind: string, owner: string, stored: string): string | undefined {
    const dot = stored.indexOf('.');
    if (dot !== 64) return undefined;
    const text = stored.slice(65);
    return this.verify(kind, owner, text, stored.slice(0, 64)) ? text : undefined;
  }
}
