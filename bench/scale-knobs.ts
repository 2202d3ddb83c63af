/**
 * The scale benchmark's fixed names and env knobs, read once; the phases and the report share
 * them so the report states exactly what ran.
 */
import { resolve } from 'node:path';
import { intEnv } from './harness';

/** The CLI the LocalProvider starts as an instance's agent. */
export const CLI = resolve(__dirname, '../src/cli/main.js');
export const TOKEN = 'bench-token-0123456789';
export const TYPE = 'bench';
export const POOL = 'cloud';

export const SAMPLES = intEnv('BENCH_SAMPLES', 40);
export const WARMUP = intEnv('BENCH_WARMUP', 2);
export const BOOT_DELAY_MS = intEnv('BENCH_BOOT_DELAY_MS', 50, true);
/** The wake phase pool's quiet period (0.005 min), and the provisioner's default tick, which paces the reaper. */
export const QUIET_PERIOD_MS = 300;
export const REAP_INTERVAL_MS = 1000;
/** Phase 1+2 stops taking samples past this (the samples taken so far are reported). */
export const WAKE_PHASE_BUDGET_MS = intEnv('BENCH_WAKE_BUDGET_MS', 110_000);
export const ROUNDS = intEnv('BENCH_ROUNDS', 5);
export const MM_INSTANCES = intEnv('BENCH_MM_INSTANCES', 30);
export const MM_DEMAND = intEnv('BENCH_MM_DEMAND', 20);
export const MM_KICKS = intEnv('BENCH_MM_KICKS', 20);
export const MM_START_DELAY_MS = intEnv('BENCH_MM_START_DELAY_MS', 20, true);
/** The whole run is stopped past this. */
export const RUN_BUDGET_MS = intEnv('BENCH_BUDGET_MS', 170_000);
