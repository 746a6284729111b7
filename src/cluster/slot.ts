/**
 * One of the N worker places of the cluster primary (primary.ts), read by its admin server
 * (admin.ts): the worker in it changes when one is replaced.
 */
import type { Worker } from 'node:cluster';

export type SlotState = 'starting' | 'ready' | 'draining' | 'exited';

/** One of the N worker places; its worker changes when one is replaced. */
export interface WorkerSlot {
  readonly index: number;
  worker: Worker | undefined;
  state: SlotState;
  /** The worker listens for messages (it said hello). */
  connected: boolean;
  /** Workers started in this slot after the first. */
  restarts: number;
  crashesInARow: number;
  readyAt: number | undefined;
  /** Why the worker could not start, as it reported. */
  failure: string | undefined;
  restartTimer: NodeJS.Timeout | undefined;
}
