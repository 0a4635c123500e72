#!/usr/bin/env node
import path from 'node:path';
import { Command } from 'commander';
import { printTrace } from './trace.js';

/** `issue-agent`: the command line beside the app. */
const program = new Command()
  .name('issue-agent')
  .description('Turns scoped GitHub issues into tested pull requests. `npm start` runs the app; these commands inspect it.');

program
  .command('trace')
  .description("print a job's trace as a timeline (stage, step, tool, outcome, tokens, cost)")
  .argument('<job>', 'a job id such as owner/repo/issues/12/attempt-1, or a trace file')
  .option('--json', 'print the raw JSONL trace')
  .option('--data-dir <dir>', 'where traces are kept (default: $DATA_DIR or .data)')
  .action((job: string, opts: { json?: boolean; dataDir?: string }) => {
    try {
      process.stdout.write(`${printTrace(job, { json: opts.json, dataDir: path.resolve(opts.dataDir ?? process.env.DATA_DIR ?? '.data') })}\n`);
    } catch (err) {
      process.stderr.write(`issue-agent trace: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  });

await program.parseAsync();
