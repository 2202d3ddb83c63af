export { simulate, type SimulationOptions } from './simulation';
export { parseTrace, formatTrace, TRACE_EPOCH, type TraceJob } from './trace';
export { parsePolicy, applyPolicy, POLICY_KEYS_HELP, type Policy, type PolicyParse } from './policy';
export { formatReport } from './report';
export { renderChart } from './chart';
export { bootTimes } from './boot-times';
export { parseDuration, formatDuration } from './duration';
export type { SimulationResult, TypeResult, PoolResult, WaitStats, Sample } from './stats';
