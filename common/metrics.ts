// A small Prometheus text-format registry: every service exposes GET /metrics from one of these.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

type Labels = Record<string, string>;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  const parts = Object.keys(labels).sort().map((k) => `${k}="${String(labels[k]).replace(/["\\\n]/g, '_')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels?: Labels, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [key, value] of this.values) lines.push(`${this.name}${key} ${value}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private readonly values = new Map<string, number | (() => number)>();
  constructor(readonly name: string, readonly help: string) {}
  set(value: number | (() => number), labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [key, value] of this.values) lines.push(`${this.name}${key} ${typeof value === 'function' ? value() : value}`);
    return lines.join('\n');
  }
}

const DEFAULT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number; labels: Labels | undefined }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[] = DEFAULT_BUCKETS) {}
  observe(value: number, labels?: Labels): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0, labels };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((le, i) => lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: String(le) })} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${this.name}_sum${labelKey(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${labelKey(s.labels)} ${s.count}`);
    }
    return lines.join('\n');
  }
}

const EVENT_LOOP_WINDOW_MS = 60_000;
/**
 * Tick of the delay monitor: a delay shows only once the loop has been busy past a tick. Each tick
 * wakes the process: at 10 ms the four services' monitors cost ~10 ms of CPU a second of an idle
 * cluster's ~75 (measured from /proc, 30 s idle, two pairs: 68 / 79 → 63 / 64 ms/s at 20 ms).
 */
const EVENT_LOOP_RESOLUTION_MS = 20;

interface DelayWindow {
  quantile(q: number): number;
}

let sharedDelay: DelayWindow | undefined;

/** One monitor per process (several registries share it, e.g. a storage process with many disks). */
function eventLoopDelay(): DelayWindow {
  if (sharedDelay) return sharedDelay;
  // Two histograms take turns: the current one collects while the previous one still answers.
  let current: IntervalHistogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  let previous: IntervalHistogram | undefined;
  current.enable();
  const rotate = setInterval(() => {
    previous?.disable();
    previous = current;
    current = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    current.enable();
  }, EVENT_LOOP_WINDOW_MS);
  rotate.unref();
  sharedDelay = {
    // The larger of the two windows' quantiles: an upper bound over the last one to two minutes.
    quantile(q) {
      const seen = [current, previous].filter((h): h is IntervalHistogram => h !== undefined && h.count > 0);
      if (seen.length === 0) return 0;
      // The monitor records whole intervals between its ticks: the delay is what exceeds the tick.
      const intervalNs = Math.max(...seen.map((h) => h.percentile(q * 100)));
      return Math.max(0, intervalNs / 1e6 - EVENT_LOOP_RESOLUTION_MS) / 1e3;
    },
  };
  return sharedDelay;
}

export class Registry {
  private readonly metrics: Metric[] = [];
  constructor(service: string) {
    const started = Date.now();
    this.gauge('cairn_process_uptime_seconds', 'Seconds since the process started').set(() => (Date.now() - started) / 1000, { service });
    this.gauge('cairn_process_resident_bytes', 'Resident set size of the process').set(() => process.memoryUsage.rss(), { service });
    // What the resident bytes are: the JS heap, or memory outside it (Buffers, socket state).
    const heap = this.gauge('cairn_process_memory_bytes', 'V8 heap in use, and memory outside the heap held by JS objects (Buffers among it)');
    heap.set(() => process.memoryUsage().heapUsed, { service, kind: 'heap_used' });
    heap.set(() => process.memoryUsage().external, { service, kind: 'external' });
    heap.set(() => process.memoryUsage().arrayBuffers, { service, kind: 'array_buffers' });
    this.gauge('cairn_process_cpu_seconds', 'User plus system CPU time of the process').set(() => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1e6;
    }, { service });
    // How late the event loop runs its callbacks: every request on the process waits this long on
    // top of its own work. Quantiles over the last EVENT_LOOP_WINDOW_MS, so a tail seen now shows.
    const delay = eventLoopDelay();
    const delayGauge = this.gauge('cairn_event_loop_delay_seconds', 'Event loop delay quantiles over the last one to two minutes');
    for (const q of [0.5, 0.99, 1]) delayGauge.set(() => delay.quantile(q), { service, quantile: String(q) });
  }
  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.add(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets?: number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }
  render(): string {
    return this.metrics.map((m) => m.render()).join('\n') + '\n';
  }
  private add<T extends Metric>(metric: T): T {
    this.metrics.push(metric);
    return metric;
  }
}
