/**
 * Watches the config file and calls `onChange` when its content changed.
 *
 * Both the file and its directory are watched. Watching the file alone misses the ways configs
 * are really replaced: editors and `kubectl cp` write a new file and rename it over the old one
 * (the watch stays on the old inode), and Kubernetes updates a mounted ConfigMap by swapping the
 * `..data` symlink in the mount directory (`config.yaml -> ..data/config.yaml`), so the file's own
 * path never sees a write. Every event, from either watch, schedules one check after a quiet
 * `debounceMs`; the check reads the file and compares a SHA-256 of its content with the last one,
 * so a burst of events is one reload, and touching the file or a swap that changes nothing is
 * none. The file watch is re-armed after each check, so it follows the file's current inode.
 *
 * A file that cannot be read at check time (mid-swap) is skipped: the next event checks again.
 */
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export interface WatchOptions {
  /** Quiet time after the last event before the file is read. Default 200 ms. */
  debounceMs?: number;
  /** A watch could not be set up or failed (the reload on SIGHUP still works). */
  onError?: (err: Error) => void;
  /**
   * The content the running config was loaded from. The file is compared with it once at start,
   * so a change made between loading and watching is not missed.
   */
  baseline?: Buffer | string;
}

export interface ConfigWatcher {
  close(): void;
}

export function watchConfig(path: string, onChange: () => void, options: WatchOptions = {}): ConfigWatcher {
  const file = resolve(path);
  const dir = dirname(file);
  const debounceMs = options.debounceMs ?? 200;
  const onError = options.onError ?? (() => {});
  let lastHash = options.baseline !== undefined ? createHash('sha256').update(options.baseline).digest('hex') : hashOf(file);
  let timer: NodeJS.Timeout | undefined;
  let fileWatcher: FSWatcher | undefined;
  let closed = false;

  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
    timer.unref();
  };

  const check = (): void => {
    if (closed) return;
    armFile();
    const hash = hashOf(file);
    if (hash === undefined || hash === lastHash) return;
    lastHash = hash;
    onChange();
  };

  /** (Re-)watches the file, so the watch follows the inode now at `path`. */
  const armFile = (): void => {
    fileWatcher?.close();
    fileWatcher = undefined;
    try {
      fileWatcher = watch(file, { persistent: false }, schedule);
      fileWatcher.on('error', () => {
        // The watched inode went away (rename, delete): the directory watch and the next check re-arm it.
        fileWatcher?.close();
        fileWatcher = undefined;
        schedule();
      });
    } catch {
      // No file right now (mid-swap): the directory watch sees it come back.
    }
  };

  let dirWatcher: FSWatcher | undefined;
  try {
    dirWatcher = watch(dir, { persistent: false }, (_event, name) => {
      // Only the file itself and Kubernetes' `..data`-style entries can change what `path` reads.
      if (name === null || name === basename(file) || name.startsWith('..')) schedule();
    });
    dirWatcher.on('error', (err) => onError(err));
  } catch (err) {
    onError(err as Error);
  }
  armFile();
  if (options.baseline !== undefined) schedule();

  return {
    close(): void {
      closed = true;
      clearTimeout(timer);
      fileWatcher?.close();
      dirWatcher?.close();
    },
  };
}

function hashOf(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}
