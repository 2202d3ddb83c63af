import type { Redis } from 'ioredis';
import { overflowSchema, type Config, type OverflowRule } from '../config';

export type Rules = Readonly<Record<string, OverflowRule | undefined>>;

export type RuleChange = { ok: true; rule: OverflowRule } | { ok: false; problems: string[] };

/**
 * The overflow rule of each job type: the config's, overridden at runtime through the API.
 * Overrides live in Redis so every master applies the same rules at its next decision, and
 * they survive restarts; agents never need restarting for a rule change.
 */
export class RuleBook {
  private base: Rules;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    config: Config,
  ) {
    this.base = RuleBook.fromConfig(config);
  }

  private get key(): string {
    return `${this.keyPrefix}:rules`;
  }

  static fromConfig(config: Config): Rules {
    return Object.fromEntries(Object.entries(config.jobTypes).map(([t, c]) => [t, c.overflow]));
  }

  /** A reloaded config (SIGHUP) replaces the base rules; runtime overrides stay. */
  setBase(config: Config): void {
    this.base = RuleBook.fromConfig(config);
  }

  async rules(): Promise<Rules> {
    const overrides = await this.redis.hgetall(this.key);
    const out: Record<string, OverflowRule | undefined> = { ...this.base };
    for (const [type, json] of Object.entries(overrides)) {
      if (!Object.hasOwn(out, type)) continue;
      const parsed = overflowSchema.safeParse(JSON.parse(json));
      if (parsed.success) out[type] = parsed.data;
    }
    return out;
  }

  /**
   * Changes a type's rule: `patch` is merged over the current rule and validated as a whole.
   * `knownPools` guards against naming a pool that does not exist.
   */
  async update(type: string, patch: unknown, knownPools: ReadonlySet<string>): Promise<RuleChange> {
    const current = (await this.rules())[type];
    if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return { ok: false, problems: ['expected a JSON object'] };
    const merged = overflowSchema.safeParse({ ...(current ?? {}), ...(patch as object) });
    if (!merged.success) return { ok: false, problems: merged.error.issues.map((i) => `${i.path.join('.') || 'rule'}: ${i.message}`) };
    if (!knownPools.has(merged.data.pool)) return { ok: false, problems: [`pool: unknown pool "${merged.data.pool}"`] };
    await this.redis.hset(this.key, type, JSON.stringify(merged.data));
    return { ok: true, rule: merged.data };
  }
}
