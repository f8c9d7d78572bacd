// One self-rewriting status line on a TTY; nothing at all when stderr is not a terminal.
export class ProgressLine {
  private last = 0;
  private shown = false;
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr, private readonly intervalMs = 200) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  /**
   * `text` may be a function: it is then called only when the line is redrawn (a build reports
   * progress for every file and chunk, and formatting each report cost more than the drawing).
   */
  update(text: string | (() => string), force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < this.intervalMs) return;
    this.last = now;
    this.stream.write(`\r\x1b[K${typeof text === 'function' ? text() : text}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
