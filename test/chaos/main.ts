// `npm run chaos -- [--duration 10m] [--seed N] [--nodes 8] [--clients 6]`: one chaos run against a
// real local cluster; prints the report on stdout and exits non-zero on any violation (2 when the
// harness itself could not run).
import { parseOptions, type ChaosOptions } from './options.js';
import { runChaos } from './run.js';

async function main(): Promise<number> {
  let opts: ChaosOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  try {
    const result = await runChaos(opts);
    process.stdout.write(`${result.text}\n`);
    return result.exitCode;
  } catch (err) {
    process.stderr.write(`chaos: the run could not complete (seed ${opts.seed}): ${err instanceof Error ? err.stack : String(err)}\n`);
    return 2;
  }
}

process.exitCode = await main();
