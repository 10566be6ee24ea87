/**
 * A database shaped like PeerDB's catalog (test/fixtures/peerdb-catalog.sql), a role that may only
 * SELECT from it, and a small player that writes what PeerDB's workers write, the way they write it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import protobuf from 'protobufjs/light.js';
import { afterAll, beforeAll } from 'vitest';
import { createLogger } from '../../src/log.js';
import { connectPeerdb } from '../../src/source/peerdb/poller.js';
import type { PeerdbShape } from '../../src/source/peerdb/readPeerdb.js';
import { admin, createTestDatabase, databaseUrl, type TestDatabase } from './db.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/peerdb-catalog.sql', import.meta.url));
const READ_TABLES = [
  'public.flows', 'public.peers', 'peerdb_stats.cdc_batches', 'peerdb_stats.cdc_table_aggregate_counts',
  'peerdb_stats.qrep_partitions', 'peerdb_stats.qrep_runs', 'peerdb_stats.peer_slot_size', 'peerdb_stats.flow_errors',
];

export interface PeerdbCatalog {
  db: TestDatabase;
  /** The SELECT-only role's connection URL: what the daemon gets as MIRRORSTATE_PEERDB_URL. */
  readerUrl: string;
  role: string;
  peerdb: PeerdbPlayer;
  drop(): Promise<void>;
}

/** The GRANTs docs/peerdb.md gives an operator, for `role` on database `name`. */
export function readerGrants(name: string, role: string): string[] {
  return [
    `grant connect on database ${name} to ${role}`,
    `grant usage on schema public, peerdb_stats to ${role}`,
    `grant select on ${READ_TABLES.join(', ')} to ${role}`,
  ];
}

export async function createPeerdbCatalog(prefix: string, options: { withoutStatus?: boolean } = {}): Promise<PeerdbCatalog> {
  const db = await createTestDatabase(`peerdb_${prefix}`);
  await db.pool.query(readFileSync(FIXTURE, 'utf8'));
  if (options.withoutStatus) await db.pool.query('alter table flows drop column status');
  const role = `ms_peerdb_ro_${randomBytes(4).toString('hex')}`;
  // A password, for servers that ask for one (the embedded server does; a trust server ignores it).
  const password = randomBytes(8).toString('hex');
  await admin(`create role ${role} login password '${password}'`);
  // PUBLIC may connect and create temporary tables in a new database by default: take both away,
  // so the role can do nothing but what the grants below allow.
  await admin(`revoke all on database ${db.name} from public`);
  for (const sql of readerGrants(db.name, role)) await db.pool.query(sql);
  const url = new URL(databaseUrl(db.name));
  url.username = role;
  url.password = password;
  return {
    db,
    readerUrl: url.toString(),
    role,
    peerdb: new PeerdbPlayer(db.pool),
    async drop() {
      await db.drop();
      await admin(`drop role if exists ${role}`);
    },
  };
}

export interface PeerdbReader {
  catalog: PeerdbCatalog;
  /** Connected as the source connects (connectPeerdb), as the SELECT-only role. */
  client: pg.Client;
  shape: PeerdbShape;
}

/**
 * For the describe block it is called in: a PeerDB catalog of its own (`setup` writes into it
 * first) and a connection reading it as the source does, made before the block's tests and closed
 * and dropped after them. Its fields are set once the block's beforeAll has run.
 */
export function peerdbReader(prefix: string, setup?: (catalog: PeerdbCatalog) => Promise<void>): PeerdbReader {
  const reader = {} as PeerdbReader;
  beforeAll(async () => {
    reader.catalog = await createPeerdbCatalog(prefix);
    await setup?.(reader.catalog);
    Object.assign(reader, await connectPeerdb(reader.catalog.readerUrl, createLogger('silent')));
  });
  afterAll(async () => {
    await reader.client?.end();
    await reader.catalog?.drop();
  });
  return reader;
}

/** Every object in the database, and every privilege on it: what "nothing created" compares. */
export async function objectsOf(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ o: string }>(
    `select 'class ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '') as o
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
     union all select 'schema ' || nspname || ' ' || coalesce(nspacl::text, '') from pg_namespace
     union all select 'proc ' || p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname not in ('pg_catalog', 'information_schema')
     union all select 'type ' || t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
     union all select 'db ' || datname || ' ' || coalesce(datacl::text, '') from pg_database where datname = current_database()
     order by 1`,
  );
  return rows.map((r) => r.o);
}

/**
 * PeerDB's config messages as its protos/flow.proto numbers them, with more fields than the source
 * declares (table mappings, batch size, publication, parent mirror): a real config carries them, and
 * the source must skip them.
 */
const PEERDB_PROTOS = protobuf.Root.fromJSON({
  nested: {
    TableMapping: { fields: { sourceTableIdentifier: { type: 'string', id: 1 }, destinationTableIdentifier: { type: 'string', id: 2 } } },
    FlowConnectionConfigsCore: {
      fields: {
        flowJobName: { type: 'string', id: 1 }, tableMappings: { rule: 'repeated', type: 'TableMapping', id: 4 },
        maxBatchSize: { type: 'uint32', id: 5 }, publicationName: { type: 'string', id: 8 },
        replicationSlotName: { type: 'string', id: 9 }, doInitialSnapshot: { type: 'bool', id: 10 },
      },
    },
    QRepConfig: {
      fields: {
        flowJobName: { type: 'string', id: 1 }, query: { type: 'string', id: 5 }, watermarkColumn: { type: 'string', id: 7 },
        parentMirrorName: { type: 'string', id: 25 },
      },
    },
  },
});

/** A CDC mirror's config_proto as PeerDB's handler writes it (proto.Marshal of FlowConnectionConfigsCore). */
export function cdcConfig(name: string, o: { slot?: string } = {}): Uint8Array {
  const t = PEERDB_PROTOS.lookupType('FlowConnectionConfigsCore');
  return t.encode(t.fromObject({
    flowJobName: name, maxBatchSize: 250_000, publicationName: `peerflow_pub_${name}`, doInitialSnapshot: true,
    tableMappings: [{ sourceTableIdentifier: 'public.t1', destinationTableIdentifier: 'public.t1' }],
    ...(o.slot === undefined ? {} : { replicationSlotName: o.slot }),
  })).finish();
}

/** A QRep mirror's config_proto (QRepConfig); watermark `xmin` makes an XMin mirror. */
export function qrepConfig(name: string, query: string, watermark: string): Uint8Array {
  const t = PEERDB_PROTOS.lookupType('QRepConfig');
  return t.encode(t.fromObject({ flowJobName: name, query, watermarkColumn: watermark })).finish();
}

/** A table's initial load as the fixture wrote it (PeerdbPlayer.planLoad). */
export interface Load {
  child: string;
  run: string;
  partitions: string[];
}

/** Writes what PeerDB writes. Timestamps are `timestamp` (UTC) as PeerDB's. */
export class PeerdbPlayer {
  constructor(readonly pool: pg.Pool) {}

  async peer(name: string, type = 3): Promise<number> {
    const { rows } = await this.pool.query<{ id: number }>(
      `insert into peers (name, type, options) values ($1, $2, '\\x00') on conflict (name) do update set type = excluded.type returning id`,
      [name, type],
    );
    return rows[0]!.id;
  }

  /** A CDC flow as PeerDB's API creates it (status SETUP), or a QRep flow (RUNNING) with `query`. */
  async createFlow(
    name: string,
    o: { source?: string; destination?: string; query?: string; status?: number; config?: Uint8Array | null } = {},
  ): Promise<void> {
    const source = await this.peer(o.source ?? 'pg_source', 3);
    const destination = await this.peer(o.destination ?? 'ch_dest', 8);
    const cdc = o.query === undefined;
    await this.pool.query(
      `insert into flows (name, source_peer, destination_peer, workflow_id, query_string, config_proto, status)
       values ($1, $2, $3, $4, $5, $6, $7)`,
      [name, source, destination, cdc ? `${name}-peerflow` : `${name}-qrepflow-${randomBytes(4).toString('hex')}`,
        o.query ?? null, o.config === undefined ? Buffer.from(cdc ? cdcConfig(name) : qrepConfig(name, o.query!, 'id')) : o.config && Buffer.from(o.config),
        o.status ?? (cdc ? 4 : 1)],
    );
    if (cdc) {
      await this.pool.query(
        `insert into peerdb_stats.cdc_flows (flow_name, latest_lsn_at_source, latest_lsn_at_target) values ($1, 0, 0)
         on conflict do nothing`,
        [name],
      );
    }
  }

  /** UpdateFlowStatusInCatalog: `UPDATE flows SET status=$1, updated_at=now() WHERE workflow_id=$2`. */
  async setStatus(name: string, status: number): Promise<void> {
    await this.pool.query(`update flows set status = $1, updated_at = now() where name = $2`, [status, name]);
  }

  /** A sync that started: a batch with no end_time yet, synced `agoSeconds` ago by PeerDB's clock. */
  async startBatch(name: string, batchId: number, rows: number, agoSeconds = 0): Promise<void> {
    await this.pool.query(
      `insert into peerdb_stats.cdc_batches (flow_name, batch_id, rows_in_batch, batch_start_lsn, batch_end_lsn, start_time, sync_time)
       values ($1, $2, $3, 0, 0, (now() at time zone 'UTC') - make_interval(secs => $4),
               (now() at time zone 'UTC') - make_interval(secs => $4))`,
      [name, batchId, rows, agoSeconds],
    );
  }

  /** Normalize ended: end_time set, and the table counts bumped. */
  async endBatch(name: string, batchId: number, table: string, rows: number): Promise<void> {
    await this.pool.query(
      `update peerdb_stats.cdc_batches set end_time = now() at time zone 'UTC' where flow_name = $1 and batch_id = $2`,
      [name, batchId],
    );
    await this.pool.query(
      `insert into peerdb_stats.cdc_table_aggregate_counts (flow_name, destination_table_name, inserts_count, total_count, latest_batch_id, last_updated_at)
       values ($1, $2, $3, $3, $4, now() at time zone 'UTC')
       on conflict (flow_name, destination_table_name) do update set
         inserts_count = cdc_table_aggregate_counts.inserts_count + excluded.inserts_count,
         total_count = cdc_table_aggregate_counts.total_count + excluded.total_count,
         latest_batch_id = excluded.latest_batch_id, last_updated_at = excluded.last_updated_at`,
      [name, table, rows, batchId],
    );
  }

  /** A partition of an initial load (or QRep run) of `parent`, run as flow `flow`; finished or not. */
  async partition(parent: string, flow: string, rowsSynced: number, finished: boolean): Promise<void> {
    const run = `run-${flow}`;
    await this.pool.query(
      `insert into peerdb_stats.qrep_runs (flow_name, run_uuid, start_time, parent_mirror_name)
       values ($1, $2, now() at time zone 'UTC', $3) on conflict do nothing`,
      [flow, run, parent],
    );
    await this.pool.query(
      `insert into peerdb_stats.qrep_partitions (flow_name, run_uuid, partition_uuid, rows_in_partition, start_time, end_time,
         restart_count, rows_synced, parent_mirror_name)
       values ($1, $2, $3, $4, now() at time zone 'UTC', case when $5 then now() at time zone 'UTC' end, 0, $4, $6)`,
      [flow, run, randomBytes(8).toString('hex'), rowsSynced, finished, parent],
    );
  }

  /**
   * One table's initial load as snapshot_flow.go and monitoring.go write it: the child flow
   * `clone_<mirror>_<source table>_<run id>` (illegal characters as underscores) gets its run
   * (InitializeQRepRun, no partitions: planning); with `partitions`, the run again and all its
   * partitions in one transaction. A resync's load goes to `<table>_resync`.
   */
  async planLoad(mirror: string, table: string, partitions: number | null, o: { runId?: string; resync?: boolean } = {}): Promise<Load> {
    const child = `clone_${mirror}_${table}_${o.runId ?? 'r1'}`.replace(/[^A-Za-z0-9_]/g, '_');
    const load: Load = { child, run: `run-${child}`, partitions: [] };
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query(
        `insert into peerdb_stats.qrep_runs (flow_name, run_uuid, source_table, destination_table, parent_mirror_name)
         values ($1, $2, $3, $4, $5) on conflict do nothing`,
        [child, load.run, table, o.resync ? `${table}_resync` : table, mirror],
      );
      for (let i = 0; i < (partitions ?? 0); i++) {
        const uuid = randomBytes(8).toString('hex');
        load.partitions.push(uuid);
        await client.query(
          `insert into peerdb_stats.qrep_partitions (flow_name, run_uuid, partition_uuid, restart_count, parent_mirror_name)
           values ($1, $2, $3, 0, $4)`,
          [child, load.run, uuid, mirror],
        );
      }
      await client.query('commit');
    } finally {
      client.release();
    }
    return load;
  }

  /** UpdateStartTimeForPartition. */
  async startPartition(load: Load, i: number): Promise<void> {
    await this.pool.query(
      `update peerdb_stats.qrep_partitions set start_time = now() at time zone 'UTC' where run_uuid = $1 and partition_uuid = $2`,
      [load.run, load.partitions[i]],
    );
  }

  /** replicateQRepPartition's end: UpdateRowsSyncedForPartition, then UpdateEndTimeForPartition. */
  async finishPartition(load: Load, i: number, rows: number): Promise<void> {
    await this.pool.query(`update peerdb_stats.qrep_partitions set rows_synced = $1 where run_uuid = $2 and partition_uuid = $3`, [rows, load.run, load.partitions[i]]);
    await this.pool.query(
      `update peerdb_stats.qrep_partitions set end_time = now() at time zone 'UTC' where run_uuid = $1 and partition_uuid = $2`,
      [load.run, load.partitions[i]],
    );
  }

  /** DeleteMirrorStats (monitoring.go), as a resync with drop-stats runs it: one transaction. */
  async dropStats(mirror: string): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query(`delete from peerdb_stats.qrep_partitions where parent_mirror_name = $1`, [mirror]);
      await client.query(`delete from peerdb_stats.qrep_runs where parent_mirror_name = $1`, [mirror]);
      await client.query(`delete from peerdb_stats.cdc_batches where flow_name = $1`, [mirror]);
      await client.query(`delete from peerdb_stats.cdc_table_aggregate_counts where flow_name = $1`, [mirror]);
      await client.query('commit');
    } finally {
      client.release();
    }
  }

  /** flowable.go's slot sampler: `slot` defaults to PeerDB's `peerflow_slot_<name>`; `agoSeconds` back-dates it. */
  async slotSample(name: string, mib: number, o: { slot?: string; walStatus?: string; agoSeconds?: number } = {}): Promise<void> {
    await this.pool.query(
      `insert into peerdb_stats.peer_slot_size (slot_name, peer_name, slot_size, updated_at, wal_status)
       values ($1, 'pg_source', $2, (now() at time zone 'UTC') - make_interval(secs => $4), $3)`,
      [o.slot ?? `peerflow_slot_${name}`, mib, o.walStatus ?? 'reserved', o.agoSeconds ?? 0],
    );
  }

  /** alerting.go InsertFlowLog. */
  async log(flow: string, type: 'error' | 'warn' | 'info', message: string): Promise<void> {
    await this.pool.query(
      `insert into peerdb_stats.flow_errors (flow_name, error_message, error_type, error_timestamp) values ($1, $2, $3, now() at time zone 'UTC')`,
      [flow, message, type],
    );
  }

  /** drop_flow.go: TERMINATING, then the row goes. */
  async drop(name: string): Promise<void> {
    await this.setStatus(name, 6);
    await this.pool.query(`delete from flows where name = $1`, [name]);
  }
}
