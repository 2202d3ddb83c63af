import type { TraceJob } from '../src/simulator';
import { seededRandom } from '../test/helpers/prng';


export interface LoadShape {
  start: number;
  days: number;
  /** Mean arrivals per hour at the daily peak (working hours on weekdays). */
  peakPerHour: number;
  /** Share of the peak rate at night and at weekends. */
  offPeak: number;
  /** Job types with their share of the trickle and mean duration (minutes). */
  types: ReadonlyArray<{ type: string; share: number; meanMin: number }>;
  /** Bursts (a push of many builds at once) per working day, each of `burstSize` jobs of `burstType`. */
  burstsPerDay: number;
  burstSize: number;
  burstType: string;
  seed: number;
}

/**
 * A bursty load with a daily cycle, like a release engineering farm's: a trickle whose rate
 * follows working hours (08-18 UTC Mon-Fri at the peak), plus bursts of one job type (a
 * merge day's pushes) during working hours. Durations are exponential around each type's mean.
 */
export function loadTrace(s: LoadShape): TraceJob[] {
  const rnd = seededRandom(s.seed);
  const exp = (mean: number) => -Math.log(1 - rnd()) * mean;
  const totalShare = s.types.reduce((n, t) => n + t.share, 0);
  const pick = () => {
    let x = rnd() * totalShare;
    for (const t of s.types) if ((x -= t.share) <= 0) return t;
    return s.types[s.types.length - 1]!;
  };
  const end = s.start + s.days * 86_400_000;
  const working = (t: number) => {
    const d = new Date(t);
    return d.getUTCDay() >= 1 && d.getUTCDay() <= 5 && d.getUTCHours() >= 8 && d.getUTCHours() < 18;
  };
  const jobs: TraceJob[] = [];
  // Thinning: candidate arrivals at the peak rate, each kept with the rate's share at its time.
  for (let t = s.start + exp(3_600_000 / s.peakPerHour); t < end; t += exp(3_600_000 / s.peakPerHour)) {
    if (!working(t) && rnd() > s.offPeak) continue;
    const k = pick();
    jobs.push({ at: Math.round(t), type: k.type, durationMs: Math.max(1000, Math.round(exp(k.meanMin * 60_000))) });
  }
  const burstMean = s.types.find((t) => t.type === s.burstType)?.meanMin ?? 10;
  for (let day = 0; day < s.days; day++) {
    for (let b = 0; b < s.burstsPerDay; b++) {
      const at = s.start + day * 86_400_000 + (8 + rnd() * 10) * 3_600_000;
      if (!working(at)) continue;
      for (let i = 0; i < s.burstSize; i++) jobs.push({ at: Math.round(at + i * 1000), type: s.burstType, durationMs: Math.max(1000, Math.round(exp(burstMean * 60_000))) });
    }
  }
  return jobs.sort((a, b) => a.at - b.at);
}
