import { describe, expect, it } from 'vitest';
import { runLongStage } from '../../test/helpers/long-stage.js';

describe('a long coding stage', () => {
  it('keeps the input of step 60 within 1.5× of step 10, and never drops the keep-set', async () => {
    const run = await runLongStage({ compaction: true });
    expect(run.result).toEqual({ kind: 'done', value: { summary: 'Renamed three values.' } });
    expect(run.violations).toEqual([]);
    expect(run.inputPerStep).toHaveLength(61);
    const [at10, at30, at60] = [run.inputPerStep[9]!, run.inputPerStep[29]!, run.inputPerStep[59]!];
    console.log(
      `input tokens at step 10: ${at10}, step 30: ${at30}, step 60: ${at60} (${(at60 / at10).toFixed(2)}× step 10); cache reads ${(100 * run.cacheReadShare).toFixed(0)}%`,
    );
    expect(at60).toBeLessThanOrEqual(1.5 * at10);
    // The final request still holds the task, the plan, the last failure and the latest
    // content of every changed file, whatever was compacted before it.
    for (const kept of [
      'KEEP-MARKER-ISSUE',
      'Rename the values the issue names.',
      'KEEP-MARKER-FAILURE',
      'value0_3 = 3000; // changed at step 5',
      'value1_3 = 3000; // changed at step 25',
      'value2_3 = 3000; // changed at step 45',
    ]) {
      expect(run.lastRequest).toContain(kept);
    }
    expect(run.lastRequest).toContain('[output compacted');
    expect(run.touched).toEqual(['module0.js', 'module1.js', 'module2.js']);
  }, 120_000);
});
