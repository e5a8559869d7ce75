// What each side saw when a socket behind the local cluster closed: the node's "connection
// closed" log line (the code uWS reported: ours on a close we sent, 1006 when the socket went
// without one) and HAProxy's session line (its termination flags tell a proxy-side close from a
// node-side one), kept per user so a test can explain a close it did not expect.

export class CloseTrail {
  private readonly byUser = new Map<string, string[]>();

  /** For Cluster's onLog: keeps the nodes' close lines. */
  readonly onNodeLog = (source: string, line: string): void => {
    if (!line.includes('"connection closed"') && !line.includes('"slow consumer closed"')) return;
    const user = /"user":"([^"]+)"/.exec(line)?.[1];
    if (user) this.add(user, `${source}: ${line}`);
  };

  /** For Cluster's onHaproxyLog: keeps each session line under the user in its request's query. */
  readonly onHaproxyLog = (line: string): void => {
    const user = /[?&]user=([^&\s"]+)/.exec(line)?.[1];
    if (user) this.add(decodeURIComponent(user), `haproxy: ${line}`);
  };

  /** Everything kept about `user`, oldest first. */
  of(user: string): string[] {
    return this.byUser.get(user) ?? [];
  }

  private add(user: string, line: string): void {
    const list = this.byUser.get(user) ?? [];
    list.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
    if (list.length > 20) list.shift();
    this.byUser.set(user, list);
  }
}
