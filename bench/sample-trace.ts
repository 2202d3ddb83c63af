/**
 * Writes config/sample-trace.csv, the sample load the README's policy comparison replays: two
 * working days and a night of config/simulate-farm.yaml's job types, seeded, so it is the same
 * file every time.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sample-trace.js > config/sample-trace.csv
 */
import { formatTrace, TRACE_EPOCH } from '../src/simulator';
import { loadTrace } from './load-trace';

const jobs = loadTrace({
  start: TRACE_EPOCH,
  days: 2,
  peakPerHour: 110,
  offPeak: 0.15,
  types: [
    { type: 'linux64', share: 5, meanMin: 12 },
    { type: 'b2g', share: 3, meanMin: 15 },
    { type: 'android', share: 2, meanMin: 20 },
  ],
  burstsPerDay: 3,
  burstSize: 25,
  burstType: 'b2g',
  seed: 2012,
});
process.stdout.write('# spillway sample load: 2 days, a daily cycle (peak 08-18 UTC) and bursts of b2g pushes (bench/sample-trace.ts)\n' + formatTrace(jobs));
