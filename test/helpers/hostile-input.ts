/**
 * Generators of hostile input for fuzz tests, all drawn from one seeded random source so a
 * failing run can be replayed. Nothing generated here is ever a command worth running: where a
 * command is needed it is `true`, and the rest is garbage.
 */
/** Names every object answers to through its prototype. */
const INHERITED = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];

export class HostileInput {
  constructor(readonly random: () => number) {}

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Strings that have broken parsers, loggers and lookups before. */
  string(): string {
    switch (this.int(8)) {
      case 0:
        return '';
      case 1:
        return this.pick(INHERITED);
      case 2:
        return this.pick(['../../etc/passwd', '/dev/zero', 'C:\\\\con', '%00', '%2e%2e%2f', '\u0000', '\r\n\r\nX-Injected: 1']);
      case 3:
        return this.pick(['\ud800', '\udfff', '\u202e', '💥'.repeat(50), '\u0000\u0001\u0002\u001b[2J']);
      case 4:
        return 'x'.repeat(this.pick([256, 4096, 70_000]));
      case 5:
        return String(this.pick([-1, 0, 1e308, -1e-308, 2 ** 53 + 1, NaN]));
      default:
        return Array.from({ length: this.int(24) }, () => String.fromCharCode(32 + this.int(95))).join('');
    }
  }

  /** Any JSON value, nested up to `depth`. */
  value(depth = 3): unknown {
    const kind = depth <= 0 ? this.int(5) : this.int(8);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -1, 1, 1.5, -0, 1e308, -1e308, 2 ** 31, 2 ** 53 + 2, 4096]);
      case 3:
      case 4:
        return this.string();
      case 5:
        return Array.from({ length: this.int(5) }, () => this.value(depth - 1));
      case 6:
        // An object that shadows what every object inherits (String() of it throws).
        return { [this.pick(INHERITED)]: this.value(depth - 1) };
      default:
        return Object.fromEntries(Array.from({ length: this.int(5) }, () => [this.string(), this.value(depth - 1)]));
    }
  }

  /** JSON nested `levels` deep, as text (arrays or objects). */
  deep(levels: number): string {
    return this.chance(0.5) ? '['.repeat(levels) + ']'.repeat(levels) : '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
  }

  /** Text that is not JSON, or barely is. */
  badJson(): string {
    return this.pick([
      '',
      '{',
      '{"type":',
      '{"type":"hello",}',
      "{'type':'hello'}",
      '\ufeff{"type":"heartbeat","running":[]}',
      'null',
      'true',
      '42',
      '"hello"',
      '[]',
      'NaN',
      '{"__proto__":{"polluted":1}}',
      '{"constructor":{"prototype":{"polluted":1}}}',
      '\u0000\u0000',
    ]);
  }

  /** A copy of `obj` with one field changed to garbage, dropped, or an unknown one added. */
  mutate(obj: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = { ...obj };
    const keys = Object.keys(out);
    switch (this.int(3)) {
      case 0:
        out[this.pick(keys)] = this.value(2);
        break;
      case 1:
        delete out[this.pick(keys)];
        break;
      default:
        out[this.string() || 'extra'] = this.value(1);
    }
    return out;
  }
}
