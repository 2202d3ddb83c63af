export { createHttpApi, type HttpApiDeps } from './http-api';
export { Dashboard, type DashboardDeps, type Overview } from './dashboard';
export type { QueueView } from './views';
