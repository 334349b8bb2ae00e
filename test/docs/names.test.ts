import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AUDIT_EVENT_KINDS } from '../../src/audit/events.ts';
import { createMetrics, METRIC_NAMES } from '../../src/metrics/registry.ts';
import { lineOf, operatorDocs, root } from './doc-commands.ts';

/**
 * The names README.md and docs/ give operators to alert on, look for and filter by: metric names and
 * their labels, system check ids (W006, E008) and audit event kinds. Each must be one aa-oidc has,
 * and README must name every one of them. (docs/performance-history.md records past runs as they were.)
 */
const docs = operatorDocs();
const readme = docs[0]!.text;

interface KnownNames {
  /** Each metric with its label names. */
  metrics: ReadonlyMap<string, readonly string[]>;
  checks: ReadonlySet<string>;
  kinds: ReadonlySet<string>;
}

/** The check ids of the findings src/ makes (`id: 'W012',` in an object, not in a type). */
function checkIdsOfSources(): Set<string> {
  const ids = new Set<string>();
  const files = readdirSync(new URL('src/', root), { recursive: true, encoding: 'utf8' });
  for (const file of files.filter((name) => name.endsWith('.ts'))) {
    const source = readFileSync(new URL(`src/${file}`, root), 'utf8');
    for (const m of source.matchAll(/\bid: '([EW]\d{3})',/g)) ids.add(m[1]!);
  }
  return ids;
}

function knownNames(): KnownNames {
  const { registry } = createMetrics({ defaultMetrics: false });
  // prom-client keeps a metric's label names on the object; its types declare them only as an option.
  const labelsOf = (name: string) =>
    (registry.getSingleMetric(name) as unknown as { labelNames: readonly string[] }).labelNames;
  return {
    metrics: new Map(METRIC_NAMES.map((name) => [name, labelsOf(name)])),
    checks: checkIdsOfSources(),
    kinds: new Set(AUDIT_EVENT_KINDS),
  };
}

/** The metric names, labels, check ids and audit event kinds of a Markdown text that aa-oidc does not have. */
export function unknownNames(file: string, text: string, known: KnownNames): string[] {
  const problems: string[] = [];
  const at = (index: number) => `${file}:${lineOf(text, index)}`;
  // `aa_oidc_policy_rejections_total{stage,reason}`, `rate(aa_oidc_bcl_dispatches_total{outcome!="success"}[15m])`
  for (const m of text.matchAll(/\b(aa_oidc_[a-z0-9_]+_(?:total|seconds))\b(?:\{([^}]*)\})?/g)) {
    const labels = known.metrics.get(m[1]!);
    if (!labels) {
      problems.push(`${at(m.index)}: no metric ${m[1]}`);
      continue;
    }
    for (const part of m[2]?.split(',') ?? []) {
      const label = /^\s*([a-zA-Z_]+)/.exec(part)?.[1];
      if (label && !labels.includes(label)) problems.push(`${at(m.index)}: ${m[1]} has no label ${label}`);
    }
  }
  // `aa_oidc_bcl_*`: a family of metrics.
  for (const m of text.matchAll(/\b(aa_oidc_[a-z0-9_]+_)\*/g)) {
    if (![...known.metrics.keys()].some((name) => name.startsWith(m[1]!)))
      problems.push(`${at(m.index)}: no metric ${m[1]}*`);
  }
  for (const m of text.matchAll(/\b[EW]\d{3}\b/g)) {
    if (!known.checks.has(m[0])) problems.push(`${at(m.index)}: no check ${m[0]}`);
  }
  for (const m of text.matchAll(/--kind[ =]([a-z_]+)/g)) {
    if (!known.kinds.has(m[1]!)) problems.push(`${at(m.index)}: no audit event kind ${m[1]}`);
  }
  return problems;
}

describe('README and docs', () => {
  const known = knownNames();

  it('name only metrics, labels, checks and audit event kinds that aa-oidc has', () => {
    assert.ok(known.checks.size >= 15, `found the check ids (${[...known.checks].join(', ')})`);
    const seen = docs.flatMap(({ text }) => [
      ...text.matchAll(/\baa_oidc_\w+_(?:total|seconds)\b|\b[EW]\d{3}\b/g),
    ]);
    assert.ok(seen.length >= 60, `found the names (${seen.length})`);
    assert.deepEqual(
      docs.flatMap(({ file, text }) => unknownNames(file, text, known)),
      [],
    );
  });

  it('would see a metric, label, check or audit event kind that aa-oidc does not have', () => {
    const markdown = [
      'Alert on `aa_oidc_tokens_issued_total{client_id,scope}` and `aa_oidc_logins_total`;',
      'sum `aa_oidc_bcl_*` (not `aa_oidc_delivery_*`). Check W003 warns, W002 does not exist.',
      '`aa-oidc audit list --kind policy_denied --kind token_used`',
    ].join('\n');
    assert.deepEqual(unknownNames('example.md', markdown, known), [
      'example.md:1: aa_oidc_tokens_issued_total has no label scope',
      'example.md:1: no metric aa_oidc_logins_total',
      'example.md:2: no metric aa_oidc_delivery_*',
      'example.md:2: no check W002',
      'example.md:3: no audit event kind token_used',
    ]);
  });

  it('README names every metric, check and audit event kind', () => {
    const missing = [...known.metrics.keys(), ...known.checks, ...known.kinds].filter(
      (name) => !new RegExp(`\\b${name}\\b`).test(readme),
    );
    assert.deepEqual(missing, []);
  });
});
