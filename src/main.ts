import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { Probot, Server, run } from 'probot';
import { ConfigError, loadConfig, parseEnv, type Role } from './config/env.js';
import { createLogger } from './logger.js';
import { AgentQueue } from './queue/queue.js';
import { bullConnection, resolveRedis } from './queue/redis.js';
import { StatusRefs } from './queue/status-ref.js';
import { RedisDailySpend } from './queue/daily-spend.js';
import { RedisPlanStore } from './queue/plan-store.js';
import { registerSecret, sanitise } from './report/sanitise.js';
import { createRunner } from './sandbox/runner.js';
import { agentApp, PendingWork } from './web/app.js';
import { startWorker } from './worker/worker.js';

function rolesFrom(arg: string | undefined): Role[] {
  if (arg === undefined || arg === 'all') return ['web', 'worker'];
  if (arg === 'web' || arg === 'worker') return [arg];
  throw new ConfigError([`role: expected "web", "worker" or nothing (both), got "${arg}"`]);
}

/** Wiring only: config → web and/or worker, and a clean shutdown. */
async function main(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const roles = rolesFrom(process.argv[2]);
  // Without an App id there is nothing to run yet: serve Probot's setup page, which
  // registers the app from app.yml and writes .env.
  if (roles.includes('web') && parseEnv(process.env).APP_ID === undefined) {
    await run(() => {});
    return;
  }
  const config = loadConfig(process.env, roles);
  const { env } = config;
  registerSecret(config.webhookSecret);
  registerSecret(config.anthropicApiKey);
  const log = createLogger(env.LOG_LEVEL);
  const redisHandle = await resolveRedis({ url: env.REDIS_URL, dataDir: config.dataDir, log });
  const redis = new Redis(redisHandle.url, { maxRetriesPerRequest: null });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  const stops: Array<() => Promise<unknown>> = [];

  if (roles.includes('web')) {
    const queue = new AgentQueue(bullConnection(redisHandle.url), redis);
    const server = new Server({
      Probot: Probot.defaults({ appId: config.appId, privateKey: config.privateKey, secret: config.webhookSecret, baseUrl: config.githubApiUrl, log }),
      port: env.PORT,
      host: env.HOST,
      webhookProxy: env.WEBHOOK_PROXY_URL,
      log,
    });
    const pending = new PendingWork();
    await server.load(agentApp({ queue, redisPing: async () => (await redis.ping()) === 'PONG', log, pending }));
    await server.start();
    stops.push(() => server.stop(), () => pending.settled(), () => queue.close());
  }
  if (roles.includes('worker')) {
    const runner = createRunner(env.SANDBOX, log);
    const probot = new Probot({ appId: config.appId, privateKey: config.privateKey, baseUrl: config.githubApiUrl, log });
    const worker = startWorker({ config, probot, runner, redisUrl: redisHandle.url, statusRefs: new StatusRefs(redis), dailySpend: new RedisDailySpend(redis), planStore: new RedisPlanStore(redis), log });
    stops.unshift(() => worker.close());
    log.info({ sandbox: runner.backend, models: config.models, concurrency: env.WORKER_CONCURRENCY }, 'worker consuming agent-run');
  }
  log.info({ roles, redis: sanitise(redisHandle.url), github: config.githubApiUrl, dataDir: config.dataDir }, 'issue-agent started');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: no new jobs; the current step finishes first');
    for (const stop of stops) await stop().catch((err: unknown) => log.warn({ err }, 'error while stopping'));
    redis.disconnect();
    await redisHandle.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(`issue-agent: ${err.message}`);
  } else {
    console.error('issue-agent failed to start:', err);
  }
  process.exit(1);
});
