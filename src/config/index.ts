export { configSchema, jobTypeSchema, JOB_TYPE_NAME, type Config, type JobTypeConfig } from './schema';
export { parseConfig, parseConfigText, loadConfigFile, formatIssues, type Env } from './load';
export { parseAgentOptions, type AgentOptions } from './agent-options';
