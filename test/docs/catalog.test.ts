/**
 * docs/catalog.md names every table the migrations make in the catalog schema, with every column,
 * and nothing they do not make: read from a database migrated by the daemon's own migrate().
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { readDoc, section } from '../helpers/markdown.js';

const SCHEMA = 'mirrorstate';
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('docs_catalog');
  await migrate(db.pool, SCHEMA, createLogger('silent'));
});
afterAll(() => db?.drop());

/** `table.column` for every column of every table in the schema, as the migrations left it. */
async function catalogColumns(): Promise<string[]> {
  const { rows } = await db.pool.query<{ table_name: string; column_name: string }>(
    `select c.table_name, c.column_name
       from information_schema.columns c
       join information_schema.tables t using (table_schema, table_name)
      where c.table_schema = $1 and t.table_type = 'BASE TABLE'`,
    [SCHEMA],
  );
  return rows.map((r) => `${r.table_name}.${r.column_name}`);
}

/** Each bullet of the Tables section: `- \`table\` — what it is: \`column\`, \`column\` (…), …`. */
function documentedColumns(): string[] {
  const bullets = section(readDoc('docs/catalog.md'), 'Tables').split(/\n(?=- )/).filter((b) => b.startsWith('- '));
  return bullets.flatMap((bullet) => {
    const [, table, rest = ''] = /^- `([a-z_]+)`([\s\S]*)$/.exec(bullet) ?? [];
    if (table === undefined) throw new Error(`docs/catalog.md, Tables: a bullet that does not start with a table name: ${bullet}`);
    // The columns follow the first colon; a parenthesis may explain one, and links say nothing.
    const columns = rest.slice(rest.indexOf(':') + 1).replace(/\[[^\]]*\]\([^)]*\)/g, '').replace(/\([^)]*\)/g, '');
    return [...columns.matchAll(/`([a-z_]+)`/g)].map((m) => `${table}.${m[1]}`);
  });
}

it('docs/catalog.md lists every table and column of the catalog, and no other', async () => {
  const inCode = new Set(await catalogColumns());
  const documented = new Set(documentedColumns());
  expect(inCode.size).toBeGreaterThan(20);
  expect([
    ...[...inCode].filter((c) => !documented.has(c)).map((c) => `column ${c} is in the migrated catalog but not documented in docs/catalog.md (Tables)`),
    ...[...documented].filter((c) => !inCode.has(c)).map((c) => `column ${c} is documented in docs/catalog.md (Tables) but no migration makes it`),
  ].sort()).toEqual([]);
});
