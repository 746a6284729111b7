/** Draws one /status answer into the page's tables and lists (the shell is admin/status-page.ts). */
import { bytes, clock, count, millis, percent, rate, relative, span } from './format.ts';
import type { InstanceView, ServiceView, Status } from './model.ts';
import { KeyedRows, type Cell } from './rows.ts';

function element<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}

function body(table: HTMLTableElement): HTMLTableSectionElement {
  return table.tBodies[0] ?? table.createTBody();
}

/** Short words for the states; the class colours them (status-page.css). */
const STATE_TEXT: Record<InstanceView['state'], string> = {
  healthy: 'healthy',
  unhealthy: 'unhealthy (active check)',
  ejected: 'ejected',
  draining: 'draining',
  leaving: 'leaving discovery',
};

export class StatusView {
  private readonly services = new KeyedRows(body(element('services')), ['name', 'wide', 'wide', 'num', 'num', 'num', 'num', 'num', 'num', 'num', 'num']);
  private readonly instances = new KeyedRows(body(element('instances')), ['', 'mono', '', 'num', 'num', 'error']);
  private readonly workers = new KeyedRows(body(element('workers')), ['', 'num', '', 'num', 'num', 'num']);
  private readonly filter = element<HTMLInputElement>('filter');
  private readonly problemsOnly = element<HTMLInputElement>('problems');
  private last: Status | undefined;

  constructor() {
    // Filtering redraws from the last answer at once, without waiting for the next poll.
    const redraw = (): void => {
      if (this.last !== undefined) this.drawInstances(this.last.services ?? [], Date.now());
    };
    this.filter.addEventListener('input', redraw);
    this.problemsOnly.addEventListener('change', redraw);
  }

  draw(status: Status, now: number): void {
    this.last = status;
    const services = status.services ?? [];
    this.drawHeader(status);
    this.drawTotals(status, services);
    this.drawServices(services);
    this.drawInstances(services, now);
    this.drawCache(status);
    this.drawConfig(status, now);
    element('problem').hidden = true;
  }

  /** /status did not answer: the last figures stay, marked as stale. */
  failed(message: string): void {
    const p = element('problem');
    p.textContent = `/status is not answering (${message}); the figures below are from the last answer.`;
    p.hidden = false;
  }

  updated(at: number, tookMs: number): void {
    element('updated').textContent = `updated ${new Date(at).toLocaleTimeString('en-GB', { hour12: false })} (${Math.round(tookMs)} ms)`;
  }

  private drawHeader(status: Status): void {
    const pill = element('readiness');
    const state = status.draining ? 'draining' : status.ready ? 'ready' : 'not ready';
    pill.textContent = state;
    pill.className = `pill ${status.ready ? 'good' : 'bad'}`;
    const mode = status.mode === 'cluster' ? `${status.workers?.length ?? 0} workers` : 'single process';
    element('summary').textContent = `${mode} · up ${span(status.uptimeSeconds)} · ${count(status.inflight)} in flight · ${plural(status.connections, 'connection')}`;
  }

  private drawTotals(status: Status, services: readonly ServiceView[]): void {
    let rps = 0;
    let errors = 0;
    let instances = 0;
    let out = 0;
    for (const s of services) {
      rps += s.lastMinute.requestsPerSecond;
      errors += (s.lastMinute.errorRatio ?? 0) * s.lastMinute.requestsPerSecond;
      for (const i of s.instances) {
        instances++;
        if (i.state !== 'healthy') out++;
      }
    }
    const cards: Array<[string, string, string]> = [
      ['Requests/s (1 min)', rate(rps), ''],
      ['Errors (1 min)', rps === 0 ? '–' : percent(errors / rps), errors > 0 ? 'warn' : ''],
      ['Cache hits (1 min)', percent(status.cache?.lastMinute.hitRatio), ''],
      ['Instances out of rotation', `${count(out)} of ${count(instances)}`, out > 0 ? 'bad' : 'good'],
      ['Services', count(services.length), ''],
    ];
    const host = element('totals');
    if (host.children.length !== cards.length) {
      host.replaceChildren(
        ...cards.map(() => {
          const card = document.createElement('div');
          card.append(document.createElement('span'), document.createElement('strong'));
          return card;
        }),
      );
    }
    cards.forEach(([label, value, cls], n) => {
      const card = host.children[n] as HTMLElement;
      card.className = `card ${cls}`.trim();
      setText(card.children[0] as HTMLElement, label);
      setText(card.children[1] as HTMLElement, value);
    });
  }

  private drawServices(services: readonly ServiceView[]): void {
    const rows = this.services;
    rows.begin();
    for (const s of services) {
      const m = s.lastMinute;
      let up = 0;
      for (const i of s.instances) if (i.state === 'healthy') up++;
      const errorCls = (m.errorRatio ?? 0) >= 0.05 ? 'bad' : (m.errorRatio ?? 0) > 0 ? 'warn' : '';
      const cells: Cell[] = [
        s.name,
        s.domains.join(', '),
        s.loadBalancer,
        rate(m.requestsPerSecond),
        { text: percent(m.errorRatio), cls: errorCls },
        millis(m.p50Ms),
        millis(m.p99Ms),
        count(s.inflight),
        count(m.retries),
        { text: count(s.retryBudget.refused), cls: s.retryBudget.refused > 0 ? 'warn' : '' },
        { text: `${up} / ${s.instances.length}`, cls: up < s.instances.length ? (up === 0 ? 'bad' : 'warn') : '' },
      ];
      rows.row(s.name, cells);
    }
    rows.end();
  }

  private drawInstances(services: readonly ServiceView[], now: number): void {
    const needle = this.filter.value.trim().toLowerCase();
    const problemsOnly = this.problemsOnly.checked;
    const rows = this.instances;
    let shown = 0;
    let total = 0;
    rows.begin();
    for (const s of services) {
      const serviceMatches = needle === '' || s.name.toLowerCase().includes(needle);
      for (const i of s.instances) {
        total++;
        const hidden = (problemsOnly && i.state === 'healthy') || !(serviceMatches || i.id.includes(needle));
        if (!hidden) shown++;
        rows.row(`${s.name}\n${i.id}`, instanceCells(s, i, now), `state-${i.state}`, hidden);
      }
    }
    rows.end();
    element('instance-count').textContent = shown === total ? `${count(total)} instances` : `${count(shown)} of ${count(total)} instances`;
  }

  private drawCache(status: Status): void {
    const c = status.cache;
    if (c === undefined) return facts('cache', [['Cache', 'not reported']]);
    if (!c.enabled) return facts('cache', [['Cache', 'off (proxy.cache.enabled: false)']]);
    facts('cache', [
      ['Hit ratio, last minute', `${percent(c.lastMinute.hitRatio)} of ${count(c.lastMinute.lookups)} lookups`],
      ['Hit ratio since start', percent(c.hitRatio)],
      ['Entries (memory)', count(c.entries)],
      ['Size (memory)', bytes(c.bytes)],
      ['Evictions', count(c.evictions)],
      ['Purges', count(c.purges)],
    ]);
  }

  private drawConfig(status: Status, now: number): void {
    const c = status.config;
    const error = c?.lastReloadError;
    facts('config', [
      ['Loaded', c === undefined ? '–' : `${clock(c.loadedAt)} (${relative(c.loadedAt, now)})`],
      ['Reloads', count(c?.reloads)],
      ['Last reload error', error == null ? 'none' : `${clock(error.at)}: ${error.message}`, error == null ? '' : 'bad'],
      ['Workers', status.mode === 'cluster' ? count(status.workers?.length) : 'single process'],
    ]);
    const table = element<HTMLTableElement>('workers');
    const workers = status.workers ?? [];
    table.hidden = workers.length === 0;
    const rows = this.workers;
    rows.begin();
    for (const w of workers) {
      const good = w.state === 'ready';
      rows.row(String(w.slot), [
        `slot ${w.slot}${w.worker === null ? '' : ` (#${w.worker})`}`,
        w.pid === null ? '–' : String(w.pid),
        { text: w.error === undefined ? w.state : `${w.state}: ${w.error}`, cls: good ? 'good' : 'bad' },
        count(w.restarts),
        count(w.requests),
        count(w.inflight),
      ]);
    }
    rows.end();
  }
}

function instanceCells(s: ServiceView, i: InstanceView, now: number): Cell[] {
  let state = STATE_TEXT[i.state];
  let title = '';
  if (i.state === 'ejected' && i.ejection !== null) {
    state = i.ejection.until === null ? 'ejected until reachable' : `ejected until ${clock(i.ejection.until)}`;
    title = i.ejection.until === null ? 'out until a TCP connect succeeds' : `readmitted ${relative(i.ejection.until, now)}`;
  } else if (i.state === 'unhealthy' && i.lastProbe !== null) {
    title = `last probe ${relative(i.lastProbe.at, now)}: ${i.lastProbe.detail}`;
  }
  const e = i.lastError;
  return [
    s.name,
    i.id,
    { text: state, cls: `state ${i.state}`, title },
    count(i.inflight),
    count(i.ejections),
    e === null ? '' : { text: `${e.cause}, ${relative(e.at, now)}`, title: `${clock(e.at)} ${e.message}` },
  ];
}

function plural(n: number, word: string): string {
  return `${count(n)} ${word}${n === 1 ? '' : 's'}`;
}

function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** A definition list of label → value, rebuilt only when one changed (it has a few lines). */
function facts(id: string, pairs: ReadonlyArray<readonly [string, string, string?]>): void {
  const dl = element(id);
  const key = JSON.stringify(pairs);
  if (dl.dataset.drawn === key) return;
  dl.dataset.drawn = key;
  dl.replaceChildren(
    ...pairs.flatMap(([label, value, cls]) => {
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.textContent = value;
      if (cls) dd.className = cls;
      return [dt, dd];
    }),
  );
}
