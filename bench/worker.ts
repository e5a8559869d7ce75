// A client worker: holds its share of a run's sockets, publishes and measures, and reports to
// the coordinator over IPC (see lib/ipc.ts). Several run side by side so that the generator,
// not being one event loop, is not the bottleneck.
import type { EventEmitter } from "node:events";
import { nowUs } from "./lib/clock.ts";
import { encodeHistogram, newHistogram } from "./lib/histogram.ts";
import type { FromWorker, Plan, PublisherSpec, SocketSpec, ToWorker, Window, WorkerReport } from "./lib/ipc.ts";
import { openAll, openSocket } from "./client/connect.ts";
import { openIdleSocket } from "./client/idle-socket.ts";
import { Publisher } from "./client/publisher.ts";
import { Recorder } from "./client/recorder.ts";
import { subscriberHandler } from "./client/subscriber.ts";

/** How to drop each open socket at the end, whatever its kind. */
const sockets: (() => void)[] = [];
const publishers: Publisher[] = [];
let rec = new Recorder(false);
let closing = false;
let closedEarly = 0;
const cpu = { startUs: 0, wallStartUs: 0, us: 0, wallUs: 0 };

const send = (msg: FromWorker, then?: () => void) => process.send!(msg, undefined, {}, then);

function track(socket: EventEmitter, drop: () => void): void {
  sockets.push(drop);
  socket.on("error", () => {});
  socket.on("close", () => {
    if (!closing) closedEarly++;
  });
}

/** Opens the plan's sockets; may come several times (connections connects in stages). */
async function connect(plan: Plan): Promise<void> {
  if (sockets.length === 0) rec = new Recorder(plan.intervals);
  const handshake = newHistogram();
  const subscribersPerGroup: Record<number, number> = {};
  const alreadyOpen = sockets.length;
  const cpuBefore = process.cpuUsage();
  const countSubscriber = (spec: SocketSpec) => {
    subscribersPerGroup[spec.group] = (subscribersPerGroup[spec.group] ?? 0) + 1;
  };
  const outcome = plan.idle
    ? await openAll(plan.subscribers, plan.connectConcurrency, handshake, openIdleSocket, (socket, spec) => {
        // A reset, not a FIN: closing first would leave each client port in TIME_WAIT for a
        // minute, and ports bound to a source address cannot be reused from TIME_WAIT, so the
        // next run's connects would crawl while the kernel hunts for free ports.
        track(socket, () => socket.resetAndDestroy());
        countSubscriber(spec);
      })
    : await openAll([...plan.subscribers, ...plan.publishers], plan.connectConcurrency, handshake, openSocket, (ws, spec, index) => {
        track(ws, () => ws.terminate());
        if (index < plan.subscribers.length) {
          countSubscriber(spec);
          ws.on("message", subscriberHandler(rec));
        } else {
          publishers.push(new Publisher(spec as PublisherSpec, ws, rec));
        }
      });
  const cpuSpent = process.cpuUsage(cpuBefore);
  send({
    type: "connected",
    report: {
      connected: sockets.length - alreadyOpen,
      failed: outcome.failed,
      subscribersPerGroup,
      handshake: encodeHistogram(handshake),
      firstAttemptUs: outcome.firstAttemptUs,
      lastOpenUs: outcome.lastOpenUs,
      cpuUs: cpuSpent.user + cpuSpent.system,
      errorSamples: outcome.errorSamples,
    },
  });
}

const at = (us: number, fn: () => void) => setTimeout(fn, Math.max(0, (us - nowUs()) / 1000));

function start(window: Window): void {
  rec.window = window;
  at(window.startUs, () => {
    for (const p of publishers) p.begin(window);
    if (!publishers.some((p) => p.spec.rate > 0)) return;
    const ticker = setInterval(() => {
      const now = nowUs();
      for (const p of publishers) p.tick(now);
      if (now >= window.stopUs) clearInterval(ticker);
    }, 1);
  });
  at(window.measureFromUs, () => {
    const u = process.cpuUsage();
    cpu.startUs = u.user + u.system;
    cpu.wallStartUs = nowUs();
  });
  at(window.stopUs, () => {
    const u = process.cpuUsage();
    cpu.us = u.user + u.system - cpu.startUs;
    cpu.wallUs = nowUs() - cpu.wallStartUs;
  });
}

function report(): WorkerReport {
  const published = publishers.map((p) => ({ group: p.spec.group, op: p.spec.op, count: p.measured }));
  return {
    delivered: rec.delivered,
    latency: rec.encodedLatency(),
    sendLag: encodeHistogram(rec.sendLag),
    duplicates: rec.duplicates,
    reordered: rec.reordered,
    seqViolations: rec.seqViolations,
    errors: rec.errors,
    errorSamples: rec.errorSamples,
    unknown: rec.unknown,
    unknownSamples: rec.unknownSamples,
    published,
    closedEarly,
    cpuUs: cpu.us,
    wallUs: cpu.wallUs,
  };
}

process.on("message", (msg: ToWorker) => {
  switch (msg.type) {
    case "connect":
      void connect(msg.plan);
      break;
    case "start":
      start(msg.window);
      break;
    case "progress":
      send({ type: "progress", delivered: rec.totalDelivered(), open: sockets.length - closedEarly });
      break;
    case "sample":
      send({ type: "sample", report: rec.takeInterval() });
      break;
    case "collect":
      send({ type: "report", report: report() });
      break;
    case "close":
      closing = true;
      for (const drop of sockets) drop();
      send({ type: "closed" }, () => process.exit(0));
      break;
  }
});
// An orphaned worker would keep thousands of sockets open on a shared machine.
process.on("disconnect", () => process.exit(0));
