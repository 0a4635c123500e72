import type { Logger } from 'pino';
import type { EgressPolicy, NetworkPolicy } from '../runner.js';
import { formatRule, narrow, parseRule, parseRules, type EgressRule } from './allowlist.js';
import { hostRegistries } from './host-registries.js';

/** What the operator allows the install step: set at start, from the environment and the host's package managers. */
export interface InstallNetworkPolicy {
  /** SANDBOX_ALLOW_HOST_NETWORK=1: `install_network: full` may be honoured. */
  allowHostNetwork: boolean;
  /** The registries the egress proxy lets through. */
  registries: readonly EgressRule[];
  /** Private networks (CIDRs) those registries may be on: SANDBOX_EGRESS_PRIVATE_NETWORKS. */
  privateNetworks?: readonly string[];
}

/** The install step's network for one job, and where its egress may go. */
export interface InstallNetwork {
  network: NetworkPolicy;
  egress: EgressPolicy;
  /** Lines for the trace: why the network is what it is. */
  notes: string[];
}

/**
 * The repository asks (`install_network`, `install_registries`); the operator's policy
 * bounds it. A tree that holds agent- or contributor-written changes (a revision of a pull
 * request) never gets more than the registries: its install could run code nobody with
 * write access has read.
 */
export function installNetworkFor(
  policy: InstallNetworkPolicy,
  config: { install_network?: NetworkPolicy; install_registries?: string[] },
  opts: { changesInTree: boolean },
): InstallNetwork {
  const notes: string[] = [];
  let network = config.install_network ?? 'registries';
  if (network === 'full' && !policy.allowHostNetwork) {
    network = 'registries';
    notes.push('install_network "full" is not allowed by the operator: the install uses the registries only');
  }
  if (network === 'full' && opts.changesInTree) {
    network = 'registries';
    notes.push(
      "the tree holds changes nobody with write access wrote: the install uses the registries only, not the host's network",
    );
  }
  let rules = [...policy.registries];
  if (config.install_registries) {
    const asked = config.install_registries.map(parseRule);
    const narrowed = narrow(policy.registries, asked);
    rules = narrowed.rules;
    if (narrowed.dropped.length > 0)
      notes.push(
        `install_registries names hosts the operator does not allow, which stay refused: ${narrowed.dropped.map(formatRule).join(', ')}`,
      );
  }
  return { network, egress: { rules, privateNetworks: [...(policy.privateNetworks ?? [])] }, notes };
}

/**
 * The operator's policy, read once at start: the registries this host's own package
 * managers use (so a corporate mirror works unchanged), or SANDBOX_EGRESS_ALLOW in their
 * place, plus SANDBOX_EGRESS_ALLOW_EXTRA.
 */
export async function operatorInstallPolicy(
  env: {
    SANDBOX_ALLOW_HOST_NETWORK: boolean;
    SANDBOX_EGRESS_ALLOW?: string;
    SANDBOX_EGRESS_ALLOW_EXTRA?: string;
    SANDBOX_EGRESS_PRIVATE_NETWORKS?: string;
  },
  log: Logger,
): Promise<InstallNetworkPolicy> {
  let base: EgressRule[];
  if (env.SANDBOX_EGRESS_ALLOW !== undefined) base = parseRules(env.SANDBOX_EGRESS_ALLOW);
  else {
    const found = await hostRegistries();
    base = found.registries.map((r) => parseRule(r.url));
    for (const s of found.skipped)
      log.debug({ ecosystem: s.ecosystem, why: s.why }, 'no registry read for this ecosystem');
    log.info(
      { registries: found.registries.map((r) => `${r.ecosystem} ${new URL(r.url).host} (${r.from})`) },
      "install egress: registries read from this host's package managers",
    );
  }
  const extra = env.SANDBOX_EGRESS_ALLOW_EXTRA ? parseRules(env.SANDBOX_EGRESS_ALLOW_EXTRA) : [];
  const seen = new Set<string>();
  const registries = [...base, ...extra].filter((r) => !seen.has(formatRule(r)) && seen.add(formatRule(r)));
  if (registries.length === 0)
    log.warn(
      "install egress: no registry is allowed (none found in this host's package managers, SANDBOX_EGRESS_ALLOW empty): installs that download will fail",
    );
  if (env.SANDBOX_ALLOW_HOST_NETWORK)
    log.warn(
      "SANDBOX_ALLOW_HOST_NETWORK=1: a repository may ask for install_network: full, which reaches this host's loopback services (Redis among them), its network and the cloud metadata service",
    );
  const privateNetworks = env.SANDBOX_EGRESS_PRIVATE_NETWORKS?.split(/[\s,]+/).filter(Boolean) ?? [];
  return { allowHostNetwork: env.SANDBOX_ALLOW_HOST_NETWORK, registries, privateNetworks };
}
