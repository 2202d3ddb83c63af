import { promises as fs } from 'node:fs';
import { join } from 'node:path';

/**
 * Bytes a directory tree occupies on disk (allocated blocks, so sparse files count for what
 * they hold and hardlinks once). Stops walking once `stopAbove` is passed: a watcher only needs
 * to know that the limit is crossed, and a hostile tree can be huge. Entries that vanish
 * while the build runs are skipped.
 */
export async function dirUsageBytes(root: string, stopAbove = Number.POSITIVE_INFINITY): Promise<number> {
  let total = 0;
  const seen = new Set<string>();
  const pending = [root];
  while (pending.length > 0 && total <= stopAbove) {
    const dir = pending.pop() as string;
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const p = join(dir, name);
      const st = await fs.lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.nlink > 1 && !st.isDirectory()) {
        const id = `${st.dev}:${st.ino}`;
        if (seen.has(id)) continue;
        seen.add(id);
      }
      total += st.blocks * 512;
      if (st.isDirectory()) pending.push(p);
    }
  }
  return total;
}
