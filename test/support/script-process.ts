import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { envSchema } from '../../src/config.ts';
import { nodeArgsFor } from './built.ts';

/**
 * One of our scripts as its own process (what `npm start`, `npm run token` and the CLIs run —
 * from the run's build, see built.ts, or `node --import tsx <script>`, without tsx's wrapper), in its own process group,
 * with exactly the configuration given — nothing the server or the CLIs read is inherited from
 * the test runner — and its output collected as it comes.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The runner's environment without anything the server or the CLIs read, plus `extra`. */
export function scriptEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key in envSchema.shape || /^(REDIS_|CLUSTER_|NODE_ID$|ADMIN_TOKEN$|TOKEN$|CHAT_URL$)/.test(key)) delete env[key];
  }
  return { ...env, ...extra };
}

export function runScript(script: string, args: string[], env: Record<string, string>, options: { timeoutMs?: number } = {}) {
  return runProcess(process.execPath, [...nodeArgsFor(script), ...args], env, options);
}

/** Any command as runScript runs a script (`npm start`, `node dist/main.js`), from `cwd` (the project). */
export function runProcess(command: string, args: string[], env: Record<string, string>, options: { timeoutMs?: number; cwd?: string } = {}) {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: scriptEnv(env), stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const output = { stdout: '', stderr: '' };
  /** Set on 'close', once the process has exited and all of its output is in. */
  let code: number | null | undefined;
  const checks = new Set<() => void>();
  const changed = () => checks.forEach((check) => check());
  child.stdout.on('data', (chunk: Buffer) => ((output.stdout += chunk.toString()), changed()));
  child.stderr.on('data', (chunk: Buffer) => ((output.stderr += chunk.toString()), changed()));
  child.once('close', (exitCode) => ((code = exitCode), changed()));

  /** Resolves once `done` holds; rejects if the process is gone first, or after `ms`. */
  const until = (done: () => boolean, ms = timeoutMs): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const seen = () => `stdout: ${output.stdout}\nstderr: ${output.stderr}`;
      const timer = setTimeout(() => finish(new Error(`not within ${ms} ms; ${seen()}`)), ms);
      const check = () => {
        if (done()) finish();
        else if (code !== undefined) finish(new Error(`exited with ${code}; ${seen()}`));
      };
      const finish = (error?: Error) => {
        clearTimeout(timer);
        checks.delete(check);
        if (error) reject(error);
        else resolve();
      };
      checks.add(check);
      check();
    });
  /** The exit code and all output, once it has exited; rejects if it still runs after `ms`. */
  const exited = async (ms = timeoutMs) => {
    await until(() => code !== undefined, ms);
    return { code: code ?? null, ...output };
  };
  /** SIGKILL to the whole group, whatever state the test left it in. */
  const kill = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  return { child, output, until, exited, kill, [Symbol.dispose]: kill };
}
