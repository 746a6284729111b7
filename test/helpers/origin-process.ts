/** Origins in processes of their own (test/helpers/origin-process.mjs), for tests that kill them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./origin-process.mjs', import.meta.url));

export interface OriginProcess {
  child: ChildProcess;
  port: number;
  /** performance.now() when the process said it was listening (it accepts connections from then on). */
  listeningAt: number;
  /** SIGKILL, resolved once the process is gone (its port refuses connections from then on). */
  kill(): Promise<void>;
}

/** Starts an origin answering 200 with `name` (or 503 with mode '503') on `port` (0 = any free one). */
export function spawnOrigin(name: string, port = 0, mode: 'ok' | '503' = 'ok'): Promise<OriginProcess> {
  const child = spawn(process.execPath, [SCRIPT, name, String(port), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`origin ${name} exited (${code}) before listening on port ${port}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      const listeningAt = performance.now();
      resolve({
        child,
        port: (JSON.parse(line) as { port: number }).port,
        listeningAt,
        kill: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        },
      });
    });
  });
}
