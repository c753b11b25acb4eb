// `npm run build`: transpiles the services, the launcher and the bench to dist/ (one .js per .ts,
// same layout, no bundling), so `npm start` and `npm run bench` run without tsx's loader. Type
// checking stays with `npm run typecheck` (tsc); this is esbuild's per-file transpile, the same
// transform tsx applies at load time, so both modes run the same code.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';
import { REPO_ROOT } from '../common/source-tree.js';

/** Folders that hold runtime code (test/ is run from the sources by tap). */
export const CODE_FOLDERS = ['common', 'erasure', 'gateway', 'namespace', 'storage-node', 'repair', 'deploy', 'bench'];

async function sourcesIn(folder: string): Promise<string[]> {
  const entries = await readdir(path.join(REPO_ROOT, folder), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Writes the build into `outDir` (default dist/ in the repository), replacing what was there. */
export async function buildTree(outDir = path.join(REPO_ROOT, 'dist')): Promise<{ files: number; ms: number }> {
  const started = performance.now();
  const entryPoints = (await Promise.all(CODE_FOLDERS.map(sourcesIn))).flat();
  await rm(outDir, { recursive: true, force: true });
  await build({
    entryPoints,
    outdir: outDir,
    outbase: REPO_ROOT,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  return { files: entryPoints.length, ms: performance.now() - started };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(REPO_ROOT, 'deploy', 'build.ts')) {
  const { files, ms } = await buildTree(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  console.log(`built ${files} modules in ${ms.toFixed(0)} ms`);
}
