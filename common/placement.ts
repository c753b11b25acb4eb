// Choosing the nodes for a new segment: pure, so it is tested with a seeded random source.
// Weighted sampling without replacement, weight = free bytes, so data drifts toward emptier nodes
// and the cluster stays balanced. Zones are spread first: each pick comes from a zone that has
// been used least so far. Nodes with no free space are chosen only when nothing else is left.
// The namespace places the segments repair rebuilds; gateways place new ones themselves from the
// node list they keep (gateway/data/node-directory.ts), the same choice without a round trip.

export interface Candidate {
  id: string;
  url: string;
  freeBytes: number;
  zone?: string;
}

/** Returns a number in [0, 1), like Math.random. */
export type RandomSource = () => number;

/** A registered node as placement sees it (the namespace's NodeRecord has these fields). */
export interface PlaceableNode extends Candidate {
  state: string;
  mode?: string;
}

/** `count` nodes for a new segment among those up and not draining, leaving out `exclude`d ids (fewer if fewer qualify). */
export function placeNodes(nodes: readonly PlaceableNode[], count: number, exclude: ReadonlySet<string> = new Set(), random: RandomSource = Math.random): Candidate[] {
  const live = nodes.filter((n) => n.state === 'up' && n.mode !== 'draining' && !exclude.has(n.id));
  return choosePlacement(live, count, random);
}

export function choosePlacement(candidates: Candidate[], count: number, random: RandomSource = Math.random): Candidate[] {
  const pool = dedupe(candidates);
  const zoneUse = new Map<string, number>();
  const chosen: Candidate[] = [];
  while (chosen.length < count && pool.length > 0) {
    const pick = pickOne(preferredZone(pool, zoneUse), random);
    chosen.push(pick);
    pool.splice(pool.indexOf(pick), 1);
    zoneUse.set(zoneOf(pick), (zoneUse.get(zoneOf(pick)) ?? 0) + 1);
  }
  return chosen;
}

function dedupe(candidates: Candidate[]): Candidate[] {
  const seen = new Set<string>();
  return candidates.filter((c) => !seen.has(c.id) && seen.add(c.id));
}

const zoneOf = (c: Candidate): string => c.zone ?? '';
const weightOf = (c: Candidate): number => (Number.isFinite(c.freeBytes) && c.freeBytes > 0 ? c.freeBytes : 0);

/**
 * The candidates eligible for the next pick: those with free space if any remain, and among them
 * the ones in the least-used zones. Space comes before zone spread: a full node cannot take a write.
 */
function preferredZone(pool: Candidate[], zoneUse: Map<string, number>): Candidate[] {
  const withSpace = pool.filter((c) => weightOf(c) > 0);
  const eligible = withSpace.length > 0 ? withSpace : pool;
  const least = Math.min(...eligible.map((c) => zoneUse.get(zoneOf(c)) ?? 0));
  return eligible.filter((c) => (zoneUse.get(zoneOf(c)) ?? 0) === least);
}

function pickOne(eligible: Candidate[], random: RandomSource): Candidate {
  const total = eligible.reduce((sum, c) => sum + weightOf(c), 0);
  if (total <= 0) return eligible[Math.min(eligible.length - 1, Math.floor(random() * eligible.length))];
  let r = random() * total;
  for (const c of eligible) {
    r -= weightOf(c);
    if (r < 0) return c;
  }
  // Rounding can leave r at a hair above 0 after the last node: fall back to the last weighted one.
  return [...eligible].reverse().find((c) => weightOf(c) > 0) ?? eligible[eligible.length - 1];
}

/** A small deterministic PRNG (mulberry32) for tests and reproducible simulations. */
export function seededRandom(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
