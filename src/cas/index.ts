export * from './digest';
export * from './errors';
export * from './disk-store';
export * from './action-result';
export * from './action-cache';
export * from './http-auth';
export * from './http-routes';
export * from './cas-client';
