export { configSchema, type Config } from './schema';
export { overflowSchema, poolSchema, JOB_TYPE_NAME, POOL_NAME, type OverflowRule, type PoolConfig } from './pool-schema';
export { parseConfig, parseConfigText, loadConfigFile, formatIssues, type Env } from './load';
export { parseAgentOptions, type AgentOptions } from './agent-options';
export { agentsSchema, type AgentsConfig } from './agents-schema';
export {
  noticeQueues,
  regionOfQueueUrl,
  spotFallbackSchema,
  spotNoticesSchema,
  type NoticeQueue,
  type SpotNoticesConfig,
} from './spot-notices';
export { vpnPoolSchema, HUB_COMMAND_PLACEHOLDERS, type VpnPoolConfig } from './vpn-pool-schema';
export { grpcSchema, type GrpcConfig } from './grpc-schema';
export { remoteExecutionSchema, type RemoteExecutionConfig } from './remote-execution-schema';
export { redisSchema, type RedisConfig, type RedisSentinelConfig, type RedisTlsConfig, type SentinelAddress } from './redis-schema';
export { poolJobTypes } from './pool-job-types';
export { simulationSchema, type SimulationConfig } from './simulation-schema';
