export { createHttpApi, type HttpApiDeps } from './http-api';
export { Dashboard, type DashboardDeps, type Overview, type QueueOverview } from './dashboard';
export type { QueueView } from './views';
export type { UsageReport } from './usage-ledger';
export type { HistorySample } from './history';
