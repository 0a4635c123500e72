// The architecture as a rule anyone can run: `npm run deps` (and `npm test` runs it).
// The folders of src/, lowest first. A folder imports its own modules and those of folders
// before it, never one after it, so no two folders import each other; entry points at the
// root of src/ (main.ts) sit above them all. Tests may import across.
const LAYERS = [
  'util', //      leaf helpers: the sanitiser, fences, limiters
  'sandbox', //   runs repository commands: bubblewrap, mirror, work trees, egress
  'agent', //     the loop, tools, context, stuck detection, model client
  'config', //    environment and .github/agent.yml
  'stages', //    scope, plan, code, validate, revise: one file each
  'report', //    what people read: status comment, PR body, escalation
  'github', //    the thin facade over Octokit, and the local CLI's stand-in for it
  'queue', //     job data, outcomes, the inbox, BullMQ, the stores
  'telemetry', // logger and metrics
  'job', //       one job: its lifecycle, kinds (issue, revise, ci-fix), thread, deliver, escalate
  'worker', //    the BullMQ worker that runs jobs
  'web', //       Probot handlers and the inbox's drain thread
  'cli', //       issue-agent commands
];

const notTest = '\\.test\\.ts$';
const layerRules = LAYERS.map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ may import only ${['its own', ...LAYERS.slice(0, i).map((l) => `src/${l}/`)].join(', ')}`,
  severity: 'error',
  from: { path: `^src/${layer}/`, pathNot: notTest },
  to: {
    path: `^src/(${[...LAYERS.slice(i + 1)].join('|') || '\\b\\B'})/|^src/[^/]+\\.ts$`,
  },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'modules that import each other, directly or through others',
      severity: 'error',
      from: { path: '^src/', pathNot: notTest },
      to: { circular: true },
    },
    {
      name: 'no-unknown-folder',
      comment: 'a new folder of src/ gets its place in LAYERS (.dependency-cruiser.cjs)',
      severity: 'error',
      from: { path: '^src/', pathNot: notTest },
      to: { path: '^src/[^/]+/', pathNot: `^src/(${LAYERS.join('|')})/` },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: notTest },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
