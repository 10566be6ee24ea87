/**
 * `npm run bench memory`: the daemon's resident memory (VmRSS of its process, sampled every 200 ms
 * from /proc) under the three loads issue 10 names, each in a bench database of its own:
 * - a queue of a million single-update jobs drained from a standing start, for at most
 *   BENCH_MEMORY_DRAIN_SECONDS (default 120; peak and end);
 * - slow scrapers: clients reading /metrics at ~100 KB/s of a 10,000-mirror fleet while normal
 *   scrapes run beside them and 1% of the fleet changes between scrapes (before, peak, end);
 * - a fleet that grows under one running daemon: RSS after scrapes at 10k → 50k → 100k mirrors.
 * Scrapes alternate gzip (as Prometheus asks) and plain, so both caches are held.
 * BENCH_MEMORY_JOBS sets the queue's size (default 1,000,000).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { loadavg } from 'node:os';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { type DaemonProcess, startDaemon } from '../../test/helpers/daemon.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import { startProducer } from '../../test/helpers/queue.js';
import type { BenchSection } from '../index.js';
import { churn, fill } from './scrape.js';

const JOBS = Number(process.env.BENCH_MEMORY_JOBS ?? 1_000_000);
/** The drain is sampled for at most this long: a deep queue drains far slower than a shallow one. */
const DRAIN_SECONDS = Number(process.env.BENCH_MEMORY_DRAIN_SECONDS ?? 120);
const SLOW_CLIENTS = 3;
const SLOW_BYTES_PER_SECOND = 100_000;
const SLOW_SECONDS = 40;
const GROWTH = [10_000, 50_000, 100_000];
const MIB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MIB).toFixed(0)} MiB`;

function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** Samples a process's RSS until stopped; keeps the peak and the last value. */
export function sampler(pid: number) {
  let peak = 0;
  let last = 0;
  const timer = setInterval(() => {
    try {
      last = rss(pid);
      peak = Math.max(peak, last);
    } catch {
      // the process is gone
    }
  }, 200);
  return {
    get peak() { return peak; },
    get last() { return last; },
    stop: () => clearInterval(timer),
  };
}

/** One scrape as Prometheus makes it (gzip), or plain. */
function scrape(url: string, gzip = true): Promise<number> {
  return new Promise((resolve, reject) => {
    request(`${url}/metrics`, { headers: gzip ? { 'accept-encoding': 'gzip' } : {} }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve(bytes));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

/** A scraper reading at ~100 KB/s over a small receive window, so the daemon's side backs up. */
function slowScraper(port: number) {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let read = 0;
  socket.write('GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n');
  socket.on('data', (chunk: Buffer) => {
    read += chunk.length;
    socket.pause();
    setTimeout(() => socket.resume(), (chunk.length / SLOW_BYTES_PER_SECOND) * 1000);
  });
  socket.on('error', () => undefined);
  return { get read() { return read; }, close: () => socket.destroy() };
}

async function withDatabase<T>(label: string, fn: (url: string, pool: pg.Pool) => Promise<T>): Promise<T> {
  const name = `ms_bench_memory_${label}_${process.pid}`;
  await admin(`create database ${name}`);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await migrate(pool, 'mirrorstate', createLogger('silent'));
    return await fn(url, pool);
  } finally {
    await pool.end();
    await admin(`drop database ${name} with (force)`);
  }
}

async function queueDrain(): Promise<string> {
  return withDatabase('queue', async (url) => {
    const first = await startDaemon({ databaseUrl: url }); // creates the queues
    await first.stop();
    const producer = await startProducer(url);
    const start = Date.now() - 3_600_000;
    try {
      for (let i = 0; i < JOBS; i += 5000) {
        await producer.insert('mirrorstate-updates', Array.from({ length: Math.min(5000, JOBS - i) }, (_, k) => ({
          data: { mirror: `mirror_${(i + k) % 1000}`, status: 'running', observedAt: new Date(start + i + k).toISOString(), seq: 0, rowsSynced: i + k },
        })));
        process.stdout.write(`\r  queue: ${(i + 5000).toLocaleString('en')} / ${JOBS.toLocaleString('en')} jobs created`);
      }
    } finally {
      await producer.stop({ graceful: false });
    }
    process.stdout.write('\n');
    const daemon = await startDaemon({ databaseUrl: url });
    const rssAtStart = rss(daemon.proc.pid!);
    const samples = sampler(daemon.proc.pid!);
    const started = performance.now();
    let processed = 0;
    try {
      // Progress from the daemon's own counters: a count(*) over a million job rows every second
      // would itself slow the drain it measures.
      while (processed < JOBS && performance.now() - started < DRAIN_SECONDS * 1000) {
        await new Promise((r) => setTimeout(r, 2000));
        processed = await updatesProcessed(daemon.url);
        process.stdout.write(`\r  draining: ${processed.toLocaleString('en')} of ${JOBS.toLocaleString('en')} jobs done, RSS ${mib(samples.last)} (peak ${mib(samples.peak)})   `);
      }
      process.stdout.write('\n');
      const seconds = (performance.now() - started) / 1000;
      return `| queue of ${JOBS.toLocaleString('en')} single-update jobs, ${processed.toLocaleString('en')} drained in ${seconds.toFixed(0)} s (${Math.round(processed / seconds).toLocaleString('en')}/s) | ${mib(rssAtStart)} | ${mib(samples.peak)} | ${mib(samples.last)} |`;
    } finally {
      samples.stop();
      await daemon.stop();
    }
  });
}

/** Updates the daemon has settled, from its mirrorstate_updates_total counters. */
async function updatesProcessed(url: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    request(`${url}/metrics`, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    }).on('error', reject).end();
  });
  let total = 0;
  for (const match of text.matchAll(/^mirrorstate_updates_total\{[^}]*\} (\d+)/gm)) total += Number(match[1]);
  return total;
}

async function slowScrapers(): Promise<string> {
  return withDatabase('slow', async (url, pool) => {
    await fill(pool, 1, 10_000);
    await pool.query('analyze mirrorstate.mirrors');
    const daemon: DaemonProcess = await startDaemon({ databaseUrl: url });
    const samples = sampler(daemon.proc.pid!);
    try {
      let body = 0;
      for (let i = 0; i < 6; i++) body = await scrape(daemon.url, i % 2 === 0);
      const before = rss(daemon.proc.pid!);
      const slow = Array.from({ length: SLOW_CLIENTS }, () => slowScraper(daemon.port));
      const until = performance.now() + SLOW_SECONDS * 1000;
      let scrapes = 0;
      let firstHalf = 0;
      while (performance.now() < until) {
        if (performance.now() < until - (SLOW_SECONDS * 1000) / 2) firstHalf = samples.peak;
        await churn(pool, 10_000);
        await scrape(daemon.url, scrapes % 2 === 0);
        scrapes++;
        process.stdout.write(`\r  slow scrapers: ${scrapes} normal scrapes, slow clients read ${slow.map((s) => `${Math.round(s.read / 1000)} KB`).join(', ')}, RSS ${mib(samples.last)}   `);
        await new Promise((r) => setTimeout(r, 500));
      }
      process.stdout.write('\n');
      const during = samples.peak;
      for (const s of slow) s.close();
      await new Promise((r) => setTimeout(r, 1000));
      for (let i = 0; i < 3; i++) await scrape(daemon.url);
      const end = rss(daemon.proc.pid!);
      return `| ${SLOW_CLIENTS} scrapers at ~100 KB/s for ${SLOW_SECONDS} s + ${scrapes} normal scrapes with 1% churn, 10,000 mirrors (${(body / 1e6).toFixed(1)} MB body) | ${mib(before)} | ${mib(firstHalf)} in the first half, ${mib(during)} overall | ${mib(end)} |`;
    } finally {
      samples.stop();
      await daemon.stop();
    }
  });
}

async function growingFleet(): Promise<string[]> {
  return withDatabase('growth', async (url, pool) => {
    const rows: string[] = [];
    let filled = 0;
    let daemon: DaemonProcess | undefined;
    try {
      for (const size of GROWTH) {
        await fill(pool, filled + 1, size);
        filled = size;
        await pool.query('analyze mirrorstate.mirrors');
        daemon ??= await startDaemon({ databaseUrl: url });
        for (let i = 0; i < 6; i++) {
          await churn(pool, size);
          await scrape(daemon.url, i % 2 === 0);
        }
        const value = rss(daemon.proc.pid!);
        rows.push(`| fleet grown to ${size.toLocaleString('en')} mirrors, one daemon, after 6 scrapes (3 gzip) | | ${mib(value)} | |`);
        process.stdout.write(`  ${size.toLocaleString('en')} mirrors: RSS ${mib(value)}\n`);
      }
      return rows;
    } finally {
      await daemon?.stop();
    }
  });
}

async function run(): Promise<void> {
  const load = loadavg()[0]!.toFixed(1);
  const slow = await slowScrapers();
  const growth = await growingFleet();
  const queue = await queueDrain();
  console.log(`\n| daemon memory (RSS of the process, sampled every 200 ms; load ${load} → ${loadavg()[0]!.toFixed(1)}) | before | peak | end |`);
  console.log('|---|---:|---:|---:|');
  for (const row of [queue, slow, ...growth]) console.log(row);
}

export default { name: 'memory', run } satisfies BenchSection;
