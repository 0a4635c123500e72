/** Why a stage stopped without finishing: a closed set, so reports and metrics agree. */
export const STUCK_REASONS = [
  'retry-limit',
  'repeated-action',
  'cycle',
  'monologue',
  'same-failure',
  'no-progress',
  'budget-turns',
  'budget-tokens',
  'budget-cost',
  'timeout',
  'low-confidence',
  'rounds-exhausted',
] as const;
export type StuckReason = (typeof STUCK_REASONS)[number];

export interface Stuck {
  reason: StuckReason;
  evidence: string;
}

export interface StuckLimits {
  /** The same tool failing this many times in a row. */
  toolFailuresInARow: number;
  /** The same failing call (tool, input, error) this many times. */
  sameFailingCall: number;
  /** Assistant turns in a row without a tool call. */
  turnsWithoutAction: number;
  /** Full repetitions of an action cycle (A-B-A-B…) with no change to the work tree. */
  cycleRepeats: number;
}

export const DEFAULT_STUCK_LIMITS: StuckLimits = {
  toolFailuresInARow: 5,
  sameFailingCall: 3,
  turnsWithoutAction: 3,
  cycleRepeats: 3,
};

/** Tools whose success changes the work tree; any other call leaves it as it was. */
const MUTATING = new Set(['edit_file', 'create_file']);

/**
 * Watches (action, outcome) pairs of one stage and says when the model is stuck. The
 * system decides this, not the model.
 */
export class StuckDetector {
  private failuresInARow = new Map<string, number>();
  private failingCalls = new Map<string, number>();
  private silentTurns = 0;
  /** Signatures of the calls since the work tree last changed. */
  private sinceChange: string[] = [];

  constructor(private readonly limits: StuckLimits = DEFAULT_STUCK_LIMITS) {}

  observeTurn(toolCalls: number): Stuck | undefined {
    this.silentTurns = toolCalls === 0 ? this.silentTurns + 1 : 0;
    if (this.silentTurns >= this.limits.turnsWithoutAction) {
      return { reason: 'monologue', evidence: `${this.silentTurns} turns in a row without a tool call` };
    }
    return undefined;
  }

  observeCall(
    tool: string,
    input: unknown,
    outcome: { ok: true } | { ok: false; code: string; message: string },
  ): Stuck | undefined {
    if (outcome.ok && MUTATING.has(tool)) this.sinceChange = [];
    else this.sinceChange.push(`${tool} ${JSON.stringify(input)}`);
    if (outcome.ok) {
      this.failuresInARow.set(tool, 0);
      return this.findCycle();
    }
    const inARow = (this.failuresInARow.get(tool) ?? 0) + 1;
    this.failuresInARow.set(tool, inARow);
    const key = `${tool}\u0000${JSON.stringify(input)}\u0000${outcome.code}`;
    const same = (this.failingCalls.get(key) ?? 0) + 1;
    this.failingCalls.set(key, same);
    if (same >= this.limits.sameFailingCall) {
      return {
        reason: 'repeated-action',
        evidence: `${tool} called ${same} times with the same input, failing each time with ${outcome.code}: ${outcome.message.split('\n')[0]}`,
      };
    }
    if (inARow >= this.limits.toolFailuresInARow) {
      return {
        reason: 'retry-limit',
        evidence: `${tool} failed ${inARow} times in a row; last error ${outcome.code}: ${outcome.message.split('\n')[0]}`,
      };
    }
    return this.findCycle();
  }

  /** The shortest period (1–4 calls) that the latest calls repeat `cycleRepeats` times. */
  private findCycle(): Stuck | undefined {
    const calls = this.sinceChange;
    for (let period = 1; period <= 4; period++) {
      const need = period * this.limits.cycleRepeats;
      if (calls.length < need) continue;
      const tail = calls.slice(-need);
      if (tail.every((c, i) => c === tail[i % period])) {
        const shown = tail.slice(0, period).map((c) => c.slice(0, 120));
        return {
          reason: 'cycle',
          evidence: `the same ${period === 1 ? 'call' : `${period} calls`} repeated ${this.limits.cycleRepeats} times with no change to the files: ${shown.join(' → ')}`,
        };
      }
    }
    return undefined;
  }
}
