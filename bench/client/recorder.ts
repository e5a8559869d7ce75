// Everything a worker measures, in one place so the socket handlers stay a few lines each.
import { ERROR_MARK } from "../lib/frames.ts";

const JOIN_MARK = Buffer.from('{"operation":"join"');
const LEAVE_MARK = Buffer.from('{"operation":"leave"');
import { encodeHistogram, newHistogram, type Histogram } from "../lib/histogram.ts";
import type { Counts, IntervalReport, Window } from "../lib/ipc.ts";

type Kind = keyof Counts;
const KINDS: Kind[] = ["typing", "create", "acks"];
const SAMPLES = 5;

const zeroCounts = (): Counts => ({ typing: 0, create: 0, acks: 0 });
const histograms = () => ({ typing: newHistogram(), create: newHistogram(), acks: newHistogram() });
const encodeAll = (h: Record<Kind, Histogram>) =>
  Object.fromEntries(KINDS.map((k) => [k, encodeHistogram(h[k])])) as Record<Kind, string>;

export class Recorder {
  /** Unset until the coordinator starts the run: nothing is measured before. */
  window: Window | undefined;
  readonly delivered = zeroCounts();
  readonly latency = histograms();
  readonly sendLag = newHistogram();
  duplicates = 0;
  reordered = 0;
  seqViolations = 0;
  errors = 0;
  unknown = 0;
  /** join/leave frames (expected, not measured). */
  presence = 0;
  readonly errorSamples: string[] = [];
  readonly unknownSamples: string[] = [];
  private intervalDelivered = zeroCounts();
  private intervalLatency = histograms();

  constructor(private readonly intervals: boolean) {}

  /** True when a frame sent at `sentUs` belongs to the measured part of the run. */
  measured(sentUs: number): boolean {
    return this.window !== undefined && sentUs >= this.window.measureFromUs;
  }

  record(kind: Kind, sentUs: number, receivedUs: number): void {
    if (!this.measured(sentUs)) return;
    const latency = receivedUs - sentUs;
    this.latency[kind].recordValue(latency);
    this.delivered[kind]++;
    if (this.intervals) {
      this.intervalLatency[kind].recordValue(latency);
      this.intervalDelivered[kind]++;
    }
  }

  /** A frame that is not a marked event or an ack: an error from the server, or something new. */
  other(data: Buffer): void {
    const text = () => data.toString("utf8", 0, Math.min(data.length, 300));
    // Presence: every ?user= socket's arrival is announced to its group (up to PRESENCE_MAX_BROADCAST).
    if (data.indexOf(JOIN_MARK) === 0 || data.indexOf(LEAVE_MARK) === 0) {
      this.presence++;
      return;
    }
    if (data.indexOf(ERROR_MARK) >= 0) {
      this.errors++;
      if (this.errorSamples.length < SAMPLES) this.errorSamples.push(text());
    } else {
      this.unknown++;
      if (this.unknownSamples.length < SAMPLES) this.unknownSamples.push(text());
    }
  }

  totalDelivered(): number {
    return this.delivered.typing + this.delivered.create + this.delivered.acks;
  }

  /** Hands over and resets the figures since the previous sample (soak runs). */
  takeInterval(): IntervalReport {
    const report = { delivered: this.intervalDelivered, latency: encodeAll(this.intervalLatency) };
    this.intervalDelivered = zeroCounts();
    this.intervalLatency = histograms();
    return report;
  }

  encodedLatency(): Record<Kind, string> {
    return encodeAll(this.latency);
  }
}
