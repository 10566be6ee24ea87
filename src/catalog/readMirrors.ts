/** Every mirror's current state, in one statement (one snapshot). */
import type { Pool } from '../db.js';
import { MIRROR_COLUMNS, type MirrorState, toMirrorState } from './readRows.js';
import { tables } from './sql.js';

export async function readMirrors(pool: Pool, schema: string, options: { dropped?: boolean } = {}): Promise<MirrorState[]> {
  const t = tables(schema);
  const { rows } = await pool.query(
    `select ${MIRROR_COLUMNS} from ${t.mirrors} where $1::boolean or dropped_at is null order by mirror collate "C"`,
    [options.dropped === true],
  );
  return rows.map(toMirrorState);
}
