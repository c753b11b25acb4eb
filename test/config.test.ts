// Service configuration: flags win over the environment, which wins over defaults; `--help` lists
// every option, and a mistyped or valueless flag ends with the reason and that list, never a stack.
import { spawn } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { ConfigUsage, parseConfig } from '../common/process.js';
import { REPO_ROOT } from '../common/source-tree.js';

const spec = {
  port: { env: 'T_PORT', default: '9000' },
  'data-dir': { env: 'T_DATA_DIR', default: './data' },
  domain: { env: 'T_DOMAIN' },
};

function usageOf(argv: string[]): ConfigUsage {
  try {
    parseConfig(spec, argv, {});
  } catch (err) {
    if (err instanceof ConfigUsage) return err;
    throw err;
  }
  throw new Error(`parseConfig took ${argv.join(' ')}`);
}

t.test('a flag wins over the environment, which wins over the default', async (t) => {
  t.same(parseConfig(spec, [], {}), { port: '9000', 'data-dir': './data', domain: undefined });
  t.same(parseConfig(spec, [], { T_PORT: '9100', T_DOMAIN: 's3.local' }), { port: '9100', 'data-dir': './data', domain: 's3.local' });
  t.same(parseConfig(spec, ['--port', '9200', '--data-dir=/srv/cairn'], { T_PORT: '9100' }), { port: '9200', 'data-dir': '/srv/cairn', domain: undefined });
});

t.test('--help lists every option with its variable and default; bad flags say why', async (t) => {
  for (const flag of ['--help', '-h']) {
    const help = usageOf(['--port', '1', flag]);
    t.equal(help.exitCode, 0, `${flag} is not an error`);
    t.match(help.message, /--port <value> +T_PORT +default 9000\n/);
    t.match(help.message, /--data-dir <value> +T_DATA_DIR +default \.\/data\n/);
    t.match(help.message, /--domain <value> +T_DOMAIN$/);
  }
  const typo = usageOf(['--prot', '9001']);
  t.equal(typo.exitCode, 2);
  t.match(typo.message, /^cairn: Unknown option '--prot'\n\nOptions/);
  const bare = usageOf(['--port']);
  t.equal(bare.exitCode, 2);
  t.match(bare.message, /^cairn: Option '--port <value>' argument missing\n/);
  t.equal(usageOf(['stray']).exitCode, 2, 'a positional argument is refused');
});

t.test('the launcher answers --help and a typo without a stack trace', async (t) => {
  const run = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', path.join(REPO_ROOT, 'deploy', 'main.ts'), ...args], { cwd: REPO_ROOT });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--data-dir <value> +CAIRN_DATA_DIR +default \.\/data/);
  t.equal(help.stderr, '');
  const typo = await run(['--data-dri', '/tmp/x']);
  t.equal(typo.code, 2);
  t.match(typo.stderr, /^cairn: Unknown option '--data-dri'\n/);
  t.notMatch(typo.stderr, /\bat \w+ \(/, 'no stack trace');
});
