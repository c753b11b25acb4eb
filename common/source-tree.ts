// Where the code runs from. Tests run the TypeScript sources through tsx's loader; `npm start` and
// `npm run bench` run the JavaScript that `npm run build` writes to dist/ (tsx's loader costs every
// process ~43 MB of RSS and a worker thread ~17 MB more, measured on Node 20). A process spawns
// its children in the same mode it runs in, so one tree never mixes sources and build output.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** True when running the build output (dist/…/*.js), false when running the .ts sources. */
export const RUNS_BUILD = !import.meta.url.endsWith('.ts');

/** The directory this tree of modules lives in: the repository root, or dist/ inside it. */
export const CODE_ROOT = path.resolve(HERE, '..');

/** The repository root (package.json, node_modules, non-code files such as bench/peer/*.mjs). */
export const REPO_ROOT = RUNS_BUILD ? path.resolve(CODE_ROOT, '..') : CODE_ROOT;

/**
 * How to start a process whose entry is `source` (a path relative to the repository root, e.g.
 * 'gateway/main.ts'): the node arguments that come before its own arguments.
 */
export function entryArgs(source: string): string[] {
  if (!source.endsWith('.ts')) throw new Error(`entryArgs wants a .ts source path, got ${source}`);
  return RUNS_BUILD ? [path.join(CODE_ROOT, source.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', path.join(CODE_ROOT, source)];
}
