/**
 * `npm run bench [section …]`: runs every section under bench/sections/ (or the ones named), each
 * comparing the daemon side by side with a baseline in the same run, and prints their tables.
 * Needs the machine's PostgreSQL (BENCH_DATABASE_URL names the server, default that of the tests).
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BenchSection {
  name: string;
  run(): Promise<void>;
}

// The sections make their databases through the test helpers, which read TEST_DATABASE_URL.
if (process.env.BENCH_DATABASE_URL && !process.env.TEST_DATABASE_URL) {
  process.env.TEST_DATABASE_URL = process.env.BENCH_DATABASE_URL;
}

const dir = fileURLToPath(new URL('./sections/', import.meta.url));
const wanted = process.argv.slice(2);
const files = readdirSync(dir).filter((f) => f.endsWith('.ts')).sort();
for (const file of files) {
  const section = (await import(new URL(`./sections/${file}`, import.meta.url).href)).default as BenchSection;
  if (wanted.length > 0 && !wanted.includes(section.name)) continue;
  console.log(`\n# ${section.name}\n`);
  await section.run();
}
