export { runProcess, type RunSpec, type RunHandle, type RunDeps, type RunResult, type OutputStream } from './process-runner';
