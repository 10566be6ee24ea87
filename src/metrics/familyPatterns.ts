/**
 * The allow and deny lists' text (docs/metrics.md, Allow and deny lists) as expressions. Apart from
 * the family declarations so that the configuration can check a list without importing what
 * renders the families.
 */
/** A list setting's text as anchored expressions (`^(?:…)$` each), or the first invalid one's error. */
export function parseFamilyPatterns(raw: string): RegExp[] | { error: string } {
  const parts = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) return { error: 'must list at least one regular expression' };
  const patterns: RegExp[] = [];
  for (const part of parts) {
    try {
      patterns.push(new RegExp(`^(?:${part})$`, 'u'));
    } catch (err) {
      return { error: `has an invalid regular expression "${part}": ${(err as Error).message}` };
    }
  }
  return patterns;
}
