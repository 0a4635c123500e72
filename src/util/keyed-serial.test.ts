import { describe, expect, it } from 'vitest';
import { KeyedSerial } from './keyed-serial.js';

describe('KeyedSerial', () => {
  it('runs tasks of one key in the order given, other keys meanwhile, and past a failure', async () => {
    const serial = new KeyedSerial();
    const done: string[] = [];
    let releaseA!: () => void;
    const a1 = serial.run('a', () => new Promise<void>((r) => (releaseA = r)).then(() => void done.push('a1')));
    const a2 = serial.run('a', async () => {
      done.push('a2');
      throw new Error('a2 fails');
    });
    const a3 = serial.run('a', async () => void done.push('a3'));
    const b1 = serial.run('b', async () => void done.push('b1'));
    await b1;
    expect(done).toEqual(['b1']);
    releaseA();
    await a1;
    await expect(a2).rejects.toThrow('a2 fails');
    await a3;
    await serial.idle();
    expect(done).toEqual(['b1', 'a1', 'a2', 'a3']);
  });
});
