export { runProcess, type RunSpec, type RunHandle, type RunDeps, type OutputStream } from './process-runner';
