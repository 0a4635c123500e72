/**
 * Bounded capture of a command's combined output: keeps the first and last halves of the
 * budget, so both the command's start (what ran) and its end (the error) survive.
 */
export class OutputCap {
  private readonly half: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(maxBytes: number) {
    this.half = Math.max(1, Math.floor(maxBytes / 2));
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    let rest = chunk;
    if (this.headBytes < this.half) {
      const take = Math.min(this.half - this.headBytes, rest.length);
      this.head.push(rest.subarray(0, take));
      this.headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0) return;
    this.tail.push(rest);
    this.tailBytes += rest.length;
    // Drop whole chunks that are entirely older than the tail budget; the final slice trims the rest.
    while (this.tail.length > 1 && this.tailBytes - (this.tail[0]?.length ?? 0) >= this.half) {
      this.tailBytes -= this.tail.shift()?.length ?? 0;
    }
  }

  get omittedBytes(): number {
    return Math.max(0, this.total - this.headBytes - Math.min(this.tailBytes, this.half));
  }

  toString(): string {
    const head = Buffer.concat(this.head);
    let tail = Buffer.concat(this.tail);
    if (tail.length > this.half) tail = tail.subarray(tail.length - this.half);
    const omitted = this.omittedBytes;
    if (omitted === 0) return Buffer.concat([head, tail]).toString('utf8');
    const headText = head.toString('utf8');
    const tailText = tail.toString('utf8');
    const sep1 = headText.endsWith('\n') ? '' : '\n';
    const sep2 = tailText.startsWith('\n') ? '' : '\n';
    return `${headText}${sep1}[… ${omitted} bytes omitted …]${sep2}${tailText}`;
  }
}
