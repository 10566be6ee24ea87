/**
 * How the status page writes numbers and times for people: pure functions of their input (and of
 * `nowMs`, passed in, so a page uses one "now" throughout and tests can pin it).
 */

const INTEGER = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/**
 * Thousands separated: `1,234,567`. Intl is slow for the thousand or so counts of the largest page
 * (rows synced, slot lag in bytes), so a whole count is grouped here; anything else goes to Intl.
 */
export function formatCount(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) return INTEGER.format(n);
  const digits = String(n);
  let text = digits.slice(0, ((digits.length - 1) % 3) + 1);
  for (let i = text.length; i < digits.length; i += 3) text += `,${digits.slice(i, i + 3)}`;
  return text;
}

const UNITS: [string, number][] = [['d', 86_400], ['h', 3_600], ['min', 60], ['s', 1]];

/** A duration in the two largest units that apply: `0.25 s`, `45 s`, `3 min 20 s`, `2 h`, `4 d 3 h`. */
export function formatDuration(seconds: number): string {
  if (seconds < 10) return `${Number(seconds.toFixed(seconds < 1 ? 2 : 1))} s`;
  const whole = Math.floor(seconds);
  const i = UNITS.findIndex(([, size]) => whole >= size);
  const [unit, size] = UNITS[i] as [string, number];
  const n = Math.floor(whole / size);
  const next = UNITS[i + 1];
  const m = next ? Math.floor((whole - n * size) / next[1]) : 0;
  return next && m > 0 ? `${n} ${unit} ${m} ${next[0]}` : `${n} ${unit}`;
}

/** How long ago an RFC 3339 time was: `12 min ago`; `in 2 s` for a time ahead of `nowMs` (clock skew). */
export function formatAgo(iso: string, nowMs: number): string {
  const seconds = (nowMs - Date.parse(iso)) / 1000;
  if (Number.isNaN(seconds)) return iso;
  if (Math.abs(seconds) < 1) return 'just now';
  return seconds >= 0 ? `${formatDuration(Math.floor(seconds))} ago` : `in ${formatDuration(Math.ceil(-seconds))}`;
}

/**
 * How long a state has lasted since an RFC 3339 time, to follow its name: `running for 12 min`.
 * A time not yet past (clock skew, or this very second) reads `since just now` or `since <time>`.
 */
export function formatFor(iso: string, nowMs: number): string {
  const seconds = (nowMs - Date.parse(iso)) / 1000;
  if (Number.isNaN(seconds)) return `since ${iso}`;
  if (Math.abs(seconds) < 1) return 'since just now';
  return seconds > 0 ? `for ${formatDuration(Math.floor(seconds))}` : `since ${formatUtc(iso)}`;
}

/** An RFC 3339 UTC time as `2026-11-21 10:00:00 UTC` (the microseconds go in the title attribute). */
export function formatUtc(iso: string): string {
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(iso);
  return match ? `${match[1]} ${match[2]} UTC` : iso;
}

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Binary units, about three significant digits: `512 B`, `1.5 KiB`, `37.2 MiB`, `120 GiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = 'B';
  for (const next of BYTE_UNITS) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${Number(value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2))} ${unit}`;
}
