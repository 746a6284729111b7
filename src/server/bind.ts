/** Binding and closing a node:http Server, shared by the proxy listener and the admin servers. */
import type { Server } from 'node:http';

/** Listens on address:port; rejects with the bind error (EADDRINUSE, EACCES) instead of emitting it. */
export function listenOn(server: Server, address: string, port: number, backlog?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port, ...(backlog === undefined ? {} : { backlog }) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The address a server is bound to (port 0 resolved to the port the OS picked). */
export function boundAddress(server: Server, what: string): { address: string; port: number } {
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error(`${what} is not bound`);
  return { address: a.address, port: a.port };
}

/** Closes a server and every connection it still holds. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
