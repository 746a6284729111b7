/**
 * The cheapest sign of life: can a TCP connection to address:port be opened? Used to readmit an
 * instance taken out because it could not be reached (health/passive.ts), where a refused or
 * dropped connection was the symptom, so an accepted one is the cure. Nothing is sent: the socket
 * is closed as soon as it connects.
 */
import { connect } from 'node:net';

/** Resolves true when a connection opened within `timeoutMs`, false otherwise; never rejects. */
export function canConnect(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(done, timeoutMs, false);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
