import type { StatusCheck, StatusState } from '../report/status.js';

type Stage = 'scoping' | 'planning' | 'coding' | 'validating' | 'delivering';
const STAGES: readonly Stage[] = ['scoping', 'planning', 'coding', 'validating', 'delivering'];
const LABEL: Record<Stage, string> = {
  scoping: 'scope',
  planning: 'plan',
  coding: 'code',
  validating: 'validate',
  delivering: 'deliver',
};
const FRAMES = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';

export interface ProgressOptions {
  write: (text: string) => void;
  /** A terminal: a spinner line with the stage's elapsed time. Otherwise plain lines only, no escape codes. */
  tty: boolean;
  now?: () => number;
}

function isStage(phase: string): phase is Stage {
  return (STAGES as readonly string[]).includes(phase);
}

/** "8 model calls, 12,345 input tokens (…), 500 output tokens, $0.0123" → "8 model calls, $0.0123". */
export function shortSpend(spend: string): string {
  const m = /^(\d+) model calls?,.*(\$\d+\.\d+)$/.exec(spend);
  return m ? `${m[1]} model call${m[1] === '1' ? '' : 's'}, ${m[2]}` : spend;
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? 'not run' : ok ? 'passed' : 'failed';
}

/** The checks as one line: the baseline before any change, or the latest results with the baseline beside them. */
export function describeChecks(checks: readonly StatusCheck[] | undefined): string | undefined {
  if (!checks?.length) return undefined;
  if (checks.every((c) => c.after === undefined))
    return `checks before the change: ${checks.map((c) => `${c.command} ${verdict(c.before)}`).join('; ')}`;
  return `checks: ${checks.map((c) => `${c.command} ${verdict(c.after)}${c.before === undefined ? '' : ` (before the change: ${verdict(c.before)})`}`).join('; ')}`;
}

/** Where the commands run, when the repository names an image: pulling, setting up, ready. */
export function describeEnvironment(e: StatusState['environment']): string | undefined {
  if (!e) return undefined;
  if (e.state === 'ready') return `environment: ${e.image} ready${e.cached ? ' (set up earlier, reused)' : ''}`;
  return `environment: ${e.state} ${e.image}…`;
}

/**
 * The pipeline's progress on a terminal: one line per stage (and round) with the spend so
 * far, one per new check result; on a TTY a spinner below shows the current stage's time.
 */
export class Progress {
  private label: string | undefined;
  private started = 0;
  private checks: string | undefined;
  private environment: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  private spinning = false;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The pipeline's status hook: prints what changed. */
  status(s: Readonly<StatusState>): void {
    if (isStage(s.phase)) {
      const round =
        (s.phase === 'coding' || s.phase === 'validating') && s.round ? ` (round ${s.round.n}/${s.round.of})` : '';
      const label = `[${STAGES.indexOf(s.phase) + 1}/${STAGES.length}] ${LABEL[s.phase]}${round}`;
      if (label !== this.label) {
        this.label = label;
        this.started = this.now();
        this.line(`${label}${s.spend ? ` · spend so far: ${shortSpend(s.spend)}` : ''}`);
        this.spin();
      }
    }
    const environment = describeEnvironment(s.environment);
    if (environment && environment !== this.environment) {
      this.environment = environment;
      this.line(`      ${environment}`);
    }
    const checks = describeChecks(s.checks);
    if (checks && checks !== this.checks) {
      this.checks = checks;
      this.line(`      ${checks}`);
    }
  }

  /** A line that stays, above the spinner. */
  line(text: string): void {
    this.clearSpinner();
    this.opts.write(`${text}\n`);
    this.draw();
  }

  /** Stops the spinner and clears its line; later lines are plain. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clearSpinner();
    this.spinning = false;
  }

  private spin(): void {
    if (!this.opts.tty || this.timer) return;
    this.spinning = true;
    this.timer = setInterval(() => {
      this.frame = (this.frame + 1) % FRAMES.length;
      this.clearSpinner();
      this.draw();
    }, 100);
    this.timer.unref();
    this.draw();
  }

  private draw(): void {
    if (!this.spinning || !this.label) return;
    const seconds = ((this.now() - this.started) / 1000).toFixed(0);
    this.opts.write(`${FRAMES[this.frame]} ${this.label.replace(/^\[\d+\/\d+\] /, '')} ${seconds}s`);
  }

  private clearSpinner(): void {
    if (this.spinning) this.opts.write('\r\x1b[2K');
  }
}
