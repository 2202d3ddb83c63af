export * from './errors';
export * from './clock';
export * from './logger';
export * from './log-events';
export * from './redis-server';
export * from './secret';
export * from './background-loop';
export * from './lua-script';
