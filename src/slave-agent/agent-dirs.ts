import { rm } from 'node:fs/promises';
import type { AgentOptions } from '../config';
import type { BuildIdentity } from '../executor';
import type { Logger } from '../lib';
import { prepareStateDir } from './state-dir';
import { prepareWorkDir, releaseWorkDir } from './work-dir';

/** The agent's two directories: where builds run, and its own files, out of builds' reach. */
export interface AgentDirs {
  work: string;
  state: string;
  /** Removes what the agent made for itself and gives up its claim on the rest; never rejects. */
  release(): Promise<void>;
}

export async function prepareAgentDirs(o: { options: AgentOptions; identity: BuildIdentity | undefined; log: Logger }): Promise<AgentDirs> {
  const work = await prepareWorkDir({ workDir: o.options.workDir, name: o.options.name, identity: o.identity, log: o.log });
  const state = await prepareStateDir(o.options.stateDir, o.options.name);
  return {
    work: work.dir,
    state: state.dir,
    release: async () => {
      if (state.owned) await rm(state.dir, { recursive: true, force: true }).catch(() => undefined);
      if (work.owned) await rm(work.dir, { recursive: true, force: true }).catch(() => undefined);
      else await releaseWorkDir(work.dir).catch(() => undefined);
    },
  };
}
