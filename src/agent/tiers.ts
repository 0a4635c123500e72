/** Model tiers: each stage asks for a tier, config maps it to a model id. */
export const TIERS = ['frontier', 'mid', 'fast'] as const;
export type Tier = (typeof TIERS)[number];
