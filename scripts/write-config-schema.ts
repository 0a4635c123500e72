// Writes schema/agent.schema.json, the JSON Schema of .github/agent.yml for editors, from the
// zod schema. A test regenerates it in memory and compares, so a stale file fails the tests.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { repoConfigJsonSchemaText } from '../src/config/repo-config.js';

const target = fileURLToPath(new URL('../schema/agent.schema.json', import.meta.url));
writeFileSync(target, repoConfigJsonSchemaText());
console.log(`wrote ${target}`);
