/**
 * The status page's script (served as /status-page.js, built by `npm run build`): polls /status
 * every second and draws it. A poll starts only when the previous one is drawn, so a slow
 * answer (a large cluster) never piles requests up. Read-only: it only GETs /status.
 */
import type { Status } from './model.ts';
import { StatusView } from './render.ts';

const INTERVAL_MS = 1000;

async function poll(view: StatusView): Promise<void> {
  const started = performance.now();
  try {
    const res = await fetch('/status', { cache: 'no-store', headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const status = (await res.json()) as Status;
    const drawing = performance.now();
    view.draw(status, Date.now());
    view.updated(Date.now(), performance.now() - started);
    // For the browser test (and the curious): how long the last fetch + draw, and the draw alone, took.
    document.body.dataset.refreshMs = String(Math.round(performance.now() - started));
    document.body.dataset.drawMs = String(Math.round(performance.now() - drawing));
    document.body.dataset.draws = String(Number(document.body.dataset.draws ?? '0') + 1);
  } catch (err) {
    view.failed(err instanceof Error ? err.message : String(err));
  }
  setTimeout(() => void poll(view), INTERVAL_MS);
}

void poll(new StatusView());
