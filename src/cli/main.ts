#!/usr/bin/env node
import { buildProgram } from './program.js';

/** `issue-agent`: the command line beside the app. */
await buildProgram().parseAsync();
