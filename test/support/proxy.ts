import { createServer, connect, type Server, type Socket } from 'node:net';
import { portBelowEphemeral } from '../../dev/embedded/cluster.js';

interface Link {
  client: Socket;
  /** Undefined for a connection accepted while the proxy hangs (see hangNew). */
  upstream: Socket | undefined;
  /** Nothing is forwarded either way any more, and neither end is closed: a network that drops everything. */
  blackHoled: boolean;
}

/**
 * A TCP proxy in front of a server, to make it unreachable (refused connections), silent
 * (connections black-holed) or dead behind a live endpoint (connections accepted, never
 * answered), without touching the server: works the same for embedded servers and containers.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly links = new Set<Link>();
  private hanging = false;
  private hungCount = 0;

  private constructor(
    readonly port: number,
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  static async start(targetUrl: string): Promise<TcpProxy> {
    const target = new URL(targetUrl);
    for (let attempt = 0; attempt < 50; attempt++) {
      const proxy = new TcpProxy(portBelowEphemeral(), target.hostname, Number(target.port));
      try {
        await proxy.open();
        return proxy;
      } catch {
        // port taken: try another
      }
    }
    throw new Error('no free port for the proxy');
  }

  /** The target URL with host and port replaced by the proxy's. */
  rewrite(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.href;
  }

  /** Accept connections again. */
  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      // Half-open allowed, so that a black-holed connection swallows the client's goodbye too.
      const server = createServer({ allowHalfOpen: true }, (client) => this.accept(client));
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        this.server = server;
        resolve();
      });
    });
  }

  /** Connections from now on are accepted and never answered (true), or forwarded again (false). */
  hangNew(hang: boolean): void {
    this.hanging = hang;
  }

  /** How many connections were accepted while hanging: each one an attempt to connect. */
  get hung(): number {
    return this.hungCount;
  }

  /**
   * Stops forwarding on the open connection the server sees coming from `clientPort`
   * (pg_stat_activity.client_port), keeping both ends open. Throws if there is none.
   */
  blackHole(clientPort: number): void {
    const link = [...this.links].find((l) => l.upstream?.localPort === clientPort);
    if (!link) throw new Error(`no connection through the proxy from port ${clientPort}`);
    link.blackHoled = true;
  }

  /** Black-holes every open connection. */
  blackHoleAll(): void {
    for (const link of this.links) link.blackHoled = true;
  }

  /** Refuse new connections and cut the open ones, as a server that went down would. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const link of this.links) {
      link.client.destroy();
      link.upstream?.destroy();
    }
    this.links.clear();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  private accept(client: Socket): void {
    const link: Link = { client, upstream: undefined, blackHoled: this.hanging };
    this.links.add(link);
    client.on('close', () => this.links.delete(link));
    if (this.hanging) {
      this.hungCount++;
      client.on('error', () => client.destroy());
      return;
    }
    const upstream = connect(this.targetPort, this.targetHost);
    link.upstream = upstream;
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk) => {
        if (!link.blackHoled) to.write(chunk);
      });
      from.on('end', () => {
        if (!link.blackHoled) to.end();
      });
      from.on('error', () => {
        if (link.blackHoled) return;
        client.destroy();
        upstream.destroy();
      });
      from.on('close', () => {
        if (!link.blackHoled) to.destroy();
      });
    };
    forward(client, upstream);
    forward(upstream, client);
  }
}
