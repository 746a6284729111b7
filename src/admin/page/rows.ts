/**
 * A table body kept in step with a list, row by row: a row is found by its key, only the cells
 * whose text changed are written, rows are moved only when the order changed, rows that left are
 * removed. At 10,000 instances a refresh then touches only what changed (no innerHTML rebuild,
 * no layout of unchanged rows).
 */

/** A cell: its text, or its text with a class and a tooltip. */
export type Cell = string | { text: string; cls?: string; title?: string };

interface Row {
  tr: HTMLTableRowElement;
  cells: HTMLTableCellElement[];
  texts: string[];
  classes: string[];
  titles: string[];
  rowClass: string;
  hidden: boolean;
  seen: number;
}

export class KeyedRows {
  private readonly rows = new Map<string, Row>();
  private pass = 0;
  private cursor: ChildNode | null = null;

  /** `columnClasses`: a class per column (e.g. "num" for right-aligned figures). */
  constructor(
    readonly body: HTMLTableSectionElement,
    private readonly columnClasses: readonly string[],
  ) {}

  /** Starts a refresh: rows follow in the order `row` is called. */
  begin(): void {
    this.pass++;
    this.cursor = this.body.firstChild;
  }

  row(key: string, cells: readonly Cell[], rowClass = '', hidden = false): void {
    let row = this.rows.get(key);
    if (row === undefined) {
      row = this.make(key);
      this.rows.set(key, row);
    }
    row.seen = this.pass;
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i]!;
      const text = typeof c === 'string' ? c : c.text;
      const cls = typeof c === 'string' ? '' : (c.cls ?? '');
      const title = typeof c === 'string' ? '' : (c.title ?? '');
      const td = row.cells[i]!;
      if (row.texts[i] !== text) td.textContent = row.texts[i] = text;
      if (row.classes[i] !== cls) {
        row.classes[i] = cls;
        td.className = [this.columnClasses[i] ?? '', cls].join(' ').trim();
      }
      if (row.titles[i] !== title) td.title = row.titles[i] = title;
    }
    if (row.rowClass !== rowClass) row.tr.className = row.rowClass = rowClass;
    if (row.hidden !== hidden) row.tr.hidden = row.hidden = hidden;
    if (this.cursor === row.tr) this.cursor = row.tr.nextSibling;
    else this.body.insertBefore(row.tr, this.cursor);
  }

  /** Ends a refresh: rows not given since `begin` are removed. */
  end(): void {
    for (const [key, row] of this.rows) {
      if (row.seen === this.pass) continue;
      row.tr.remove();
      this.rows.delete(key);
    }
  }

  private make(key: string): Row {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    const cells: HTMLTableCellElement[] = [];
    for (const cls of this.columnClasses) {
      const td = document.createElement('td');
      if (cls !== '') td.className = cls;
      tr.appendChild(td);
      cells.push(td);
    }
    const n = this.columnClasses.length;
    return { tr, cells, texts: new Array<string>(n).fill(''), classes: new Array<string>(n).fill(''), titles: new Array<string>(n).fill(''), rowClass: '', hidden: false, seen: 0 };
  }
}
