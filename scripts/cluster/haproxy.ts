// HAProxy as the local cluster's load balancer: finding the binary, rendering its
// configuration, running it in the foreground as a child process, and talking to its runtime
// API (a unix socket) to add and remove backends without a reload, the way the endpoints of a
// Kubernetes Service change under a running kube-proxy.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";

/** Dynamic servers with health checks (`add server … check` + `enable health`) need 2.5. */
const MIN_VERSION: [number, number] = [2, 5];

export class HaproxyMissing extends Error {}

/** The haproxy binary: $HAPROXY, else the PATH plus the sbin directories a plain user's PATH may lack. */
export function findHaproxy(): { bin: string; version: string } {
  const candidates = process.env.HAPROXY
    ? [process.env.HAPROXY]
    : [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"]
        .filter(Boolean)
        .map((dir) => path.join(dir, "haproxy"));
  const bin = candidates.find((c) => {
    try {
      accessSync(c, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (!bin) {
    throw new HaproxyMissing(
      "HAProxy is required for the local cluster (its load balancer) and was not found " +
        `(looked for ${process.env.HAPROXY ? `HAPROXY=${process.env.HAPROXY}` : "haproxy on PATH and in /usr/sbin, /usr/local/sbin"}); ` +
        "install it with: apt-get install -y haproxy (or set HAPROXY=/path/to/haproxy)",
    );
  }
  const out = execFileSync(bin, ["-v"], { encoding: "utf8" });
  const m = /version (\d+)\.(\d+)[.\d]*/i.exec(out);
  if (!m) throw new HaproxyMissing(`cannot read the version of ${bin}: ${out.split("\n")[0]}`);
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
    throw new HaproxyMissing(`${bin} is HAProxy ${major}.${minor}; the local cluster needs ${MIN_VERSION.join(".")} or newer (dynamic servers with health checks)`);
  }
  return { bin, version: `${major}.${minor}` };
}

export interface HealthCheck {
  /** Interval between checks of /readyz. */
  interMs: number;
  /** Consecutive failed checks that take a server out. */
  fall: number;
  /** Consecutive passed checks that put it back. */
  rise: number;
}

export interface Backend {
  name: string;
  host: string;
  port: number;
}

export interface ServerStat {
  name: string;
  /** host:port */
  address: string;
  /** UP, DOWN, MAINT, "UP 1/2" (going down), … */
  status: string;
  up: boolean;
  /** The last check's result: L7OK (200), L7STS (another status, e.g. 503 while draining), L4CON (refused), L7TOUT, … */
  check: string;
  /** Open connections (WebSockets included) to the server now, and in total. */
  sessions: number;
  totalSessions: number;
}

export interface HaproxyConfig {
  host: string;
  port: number;
  /** Serve HAProxy's own stats page (and a Prometheus exporter, if built in) on this port. */
  statsPort?: number;
  adminSocket: string;
  check: HealthCheck;
  servers: Backend[];
}

/** The server line's options, shared by the configuration file and the runtime API's `add server`. */
export const serverOptions = (c: HealthCheck) => `check inter ${c.interMs}ms fall ${c.fall} rise ${c.rise}`;

/**
 * The configuration. It mirrors k8s/base: the Service (one port in front of every ready pod;
 * readiness is the nodes' /readyz, as in the Deployment's readinessProbe) and the Ingress
 * (HTTP-aware, WebSocket upgrades pass through, idle sockets survive an hour).
 */
export function renderConfig(cfg: HaproxyConfig): string {
  const lines = [
    "# Written by scripts/cluster (the local multi-replica cluster); regenerated on every change.",
    "global",
    // No maxconn: HAProxy derives it from the file descriptor limit it finds.
    `  stats socket ${cfg.adminSocket} mode 600 level admin`,
    "  stats timeout 30s",
    // One line per finished session with HAProxy's termination flags (kept in `output`, not
    // printed): what tells a proxy-side close from a node-side one when a socket ends badly.
    "  log stdout format raw local0",
    "",
    "defaults",
    "  mode http",
    "  log global",
    "  option httplog",
    "  timeout connect 2s",
    "  timeout client 60s",
    "  timeout server 60s",
    // A WebSocket is a tunnel once upgraded; like the Ingress's proxy-read-timeout 3600.
    "  timeout tunnel 1h",
    // A slow /readyz on a busy machine is not a failed one; a draining node answers 503 at once.
    "  timeout check 2s",
    "  timeout client-fin 5s",
    "  timeout http-request 10s",
    // A connection refused by a node that has just stopped listening goes to another node.
    "  retries 3",
    "  option redispatch 1",
    "",
    "frontend chat",
    `  bind ${cfg.host}:${cfg.port}`,
    "  default_backend chat",
    "",
    "backend chat",
    // Long-lived sockets: new connections go to the emptiest node (a new replica first).
    "  balance leastconn",
    "  option httpchk",
    // HTTP/1.1 with a Host: uWebSockets.js never answers HAProxy's default HTTP/1.0 check.
    "  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost",
    "  http-check expect status 200",
    // Which replica answered, for people and tests (the 101 of an upgrade carries it too).
    "  http-response set-header X-Chat-Replica %s",
    `  default-server ${serverOptions(cfg.check)}`,
    ...cfg.servers.map((s) => `  server ${s.name} ${s.host}:${s.port}`),
  ];
  if (cfg.statsPort) {
    lines.push(
      "",
      "frontend stats",
      `  bind ${cfg.host}:${cfg.statsPort}`,
      "  stats enable",
      "  stats uri /",
      "  stats refresh 2s",
      "  stats show-legends",
    );
  }
  return `${lines.join("\n")}\n`;
}

/** HAProxy in the foreground (`-db`), with its output kept for diagnostics. */
export class HaproxyProcess {
  readonly output: string[] = [];
  readonly exited: Promise<number | string>;
  private constructor(
    readonly child: ChildProcess,
    readonly adminSocket: string,
    onLine?: (line: string) => void,
  ) {
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (l) => {
        onLine?.(l);
        this.output.push(l);
        if (this.output.length > 500) this.output.shift();
      });
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts haproxy on a configuration file and waits until its runtime API answers; `onLine` gets every line it prints (a session log line per finished connection). */
  static async start(bin: string, configFile: string, adminSocket: string, spawnVia: string[] = [], onLine?: (line: string) => void): Promise<HaproxyProcess> {
    const argv = [...spawnVia, bin, "-db", "-f", configFile];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], detached: true });
    const hp = new HaproxyProcess(child, adminSocket, onLine);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!hp.running) {
        const code = await hp.exited;
        throw new Error(`haproxy exited (${code}) at start:\n${hp.output.join("\n")}`);
      }
      if (existsSync(adminSocket)) {
        try {
          await hp.command("show info");
          return hp;
        } catch {
          // not listening yet
        }
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`haproxy did not answer on ${adminSocket} within 10 s:\n${hp.output.join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** One runtime API command; resolves with HAProxy's answer (the socket closes after it). */
  command(cmd: string, ms = 5_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.adminSocket);
      let out = "";
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`haproxy runtime API: no answer to "${cmd}" within ${ms} ms`));
      }, ms);
      sock.setEncoding("utf8");
      sock.on("connect", () => sock.write(`${cmd}\n`));
      sock.on("data", (d: string) => (out += d));
      sock.on("end", () => {
        clearTimeout(timer);
        resolve(out.trim());
      });
      sock.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Runs a command whose success HAProxy answers with an empty line or one of `ok`; throws otherwise. */
  async expect(cmd: string, ok: RegExp): Promise<string> {
    const answer = await this.command(cmd);
    if (answer !== "" && !ok.test(answer)) throw new Error(`haproxy runtime API: "${cmd}" answered: ${answer}`);
    return answer;
  }

  /** The servers of a backend as `show stat` reports them. */
  async servers(backend: string): Promise<ServerStat[]> {
    const lines = (await this.command("show stat")).split("\n").filter(Boolean);
    const header = (lines[0] ?? "").replace(/^# /, "").split(",");
    const col = (f: string[], name: string) => f[header.indexOf(name)] ?? "";
    return lines
      .slice(1)
      .map((l) => l.split(","))
      .filter((f) => col(f, "pxname") === backend && !["BACKEND", "FRONTEND"].includes(col(f, "svname")))
      .map((f) => {
        const status = col(f, "status");
        return {
          name: col(f, "svname"),
          address: col(f, "addr"),
          status,
          up: status.startsWith("UP"),
          check: col(f, "check_status").replace(/^\* /, ""),
          sessions: Number(col(f, "scur")) || 0,
          totalSessions: Number(col(f, "stot")) || 0,
        };
      });
  }

  /** Soft stop (SIGUSR1 lets established tunnels finish; SIGTERM cuts them), then SIGKILL after `ms`. */
  async stop(signal: NodeJS.Signals = "SIGTERM", ms = 5_000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(timer);
  }
}
