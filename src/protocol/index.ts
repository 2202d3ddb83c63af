export * from './job-payload';
export * from './build-result';
export * from './frames';
export * from './action';
