/**
 * The remote demo's actions, the same for Bazel's genrules and the built-in client: action
 * `aNN` sleeps (so a backlog forms), then writes its name and its input, upper-cased.
 */
export interface DemoActions {
  count: number;
  sleepMs: number;
}

/** The one input every action reads. */
export const DEMO_INPUT = { name: 'seed.txt', text: 'spillway remote demo input\n' };

export const actionNames = (a: DemoActions): string[] => Array.from({ length: a.count }, (_, i) => `a${String(i + 1).padStart(2, '0')}`);

/** What action `name` must produce. */
export const expectedOutput = (name: string): string => `${name}\n${DEMO_INPUT.text.toUpperCase()}`;

/** The shell body: `input` and `output` are paths (or Bazel's `$<` and `$@`). */
export const actionScript = (a: DemoActions, name: string, input: string, output: string): string =>
  `sleep ${(a.sleepMs / 1000).toFixed(3)}; (echo ${name}; tr a-z A-Z < ${input}) > ${output}`;

/** An action's name from the path of its output: `.../a07.txt` -> `a07`. */
export function actionNameOf(outputPath: string): string | undefined {
  return /(?:^|\/)(a\d+)\.txt$/.exec(outputPath)?.[1];
}
