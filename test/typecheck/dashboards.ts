/**
 * The shipped Grafana dashboards against Grafana's own dashboard types (@grafana/schema): `npm run
 * typecheck` fails when a dashboard's JSON has a field Grafana does not know the shape of, or a
 * value of the wrong type. Imported JSON widens every string literal to `string`, which no string
 * enum of the schema accepts, so the JSON is checked against the schema with its enums widened
 * (Widened); test/grafana/dashboards.test.ts checks the enum values against the schema's own enums,
 * and the datasource uids and variables against the provisioning files.
 */
import type { Dashboard } from '@grafana/schema';
import catalog from '../../grafana/dashboards/mirrorstate-catalog.json' with { type: 'json' };
import prometheus from '../../grafana/dashboards/mirrorstate.json' with { type: 'json' };

/** T with each string (enum) type widened to string and each number (enum) type to number. */
export type Widened<T> = T extends string ? string
  : T extends number ? number
  : T extends readonly (infer U)[] ? Widened<U>[]
  : T extends object ? { [K in keyof T]: Widened<T[K]> }
  : T;

export const DASHBOARDS = {
  prometheus: prometheus satisfies Widened<Dashboard>,
  catalog: catalog satisfies Widened<Dashboard>,
};
