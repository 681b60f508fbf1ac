import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { withTimeout } from '../deadline.js';
import type { LeaderHolder } from '../source/leader-lock.js';
import type { ListenerStatus } from '../source/listener.js';

export interface Readiness {
  ready: boolean;
  role: 'leader' | 'standby';
  /** Why the daemon is not ready, for the 503 body. */
  reason?: string;
  /** A standby's: the daemon that leads. */
  leader?: LeaderHolder;
  /** A leader's: whether it listens on the source, since when, and when the source last answered there. */
  listener?: ListenerStatus;
}

export interface HttpServerOptions {
  host: string;
  /** 0 takes a free port (tests); HttpServer.port is the one bound. */
  port: number;
  registry: Registry;
  readiness: () => Promise<Readiness>;
  logger: Logger;
  /** A probe must get an answer even from a daemon whose source hangs: past this, 503. */
  readinessTimeoutMs?: number;
}

export interface HttpServer {
  readonly host: string;
  readonly port: number;
  /** Stops accepting, closes idle keep-alive connections, and resolves once in-flight responses are sent. */
  close(): Promise<void>;
}

type Route = (res: ServerResponse) => Promise<void> | void;

/**
 * The daemon's service surface for supervisors and Prometheus: /healthz (the process
 * answers: Docker HEALTHCHECK, systemd docs), /readyz (it does its job: 503 says why not)
 * and /metrics. Read-only, so GET and HEAD only.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { logger, registry } = options;
  const readinessTimeoutMs = options.readinessTimeoutMs ?? 2000;

  const routes: Record<string, Route> = {
    '/healthz': (res) => sendJson(res, 200, { status: 'ok' }),
    '/readyz': async (res) => {
      let readiness: Readiness | { ready: false; reason: string };
      try {
        readiness = await withTimeout(options.readiness(), readinessTimeoutMs, `readiness check took over ${readinessTimeoutMs} ms`);
      } catch (error) {
        readiness = { ready: false, reason: (error as Error).message };
      }
      const { ready, ...rest } = readiness;
      sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', ...rest });
    },
    '/metrics': async (res) => {
      const body = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType }).end(body);
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const route = routes[new URL(req.url ?? '/', 'http://localhost').pathname];
    if (!route) return sendJson(res, 404, { status: 'not_found' });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return sendJson(res, 405, { status: 'method_not_allowed' });
    }
    await route(res);
  };

  // Responses still being written when close() is called end their connection, rather
  // than keep it alive until the keep-alive timeout and hold close() up that long.
  const inFlight = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    inFlight.add(res);
    res.on('close', () => inFlight.delete(res));
    handle(req, res).catch((error: unknown) => {
      logger.error({ err: error, url: req.url }, 'http request failed');
      if (!res.headersSent) sendJson(res, 500, { status: 'error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => logger.error({ err: error }, 'http server failed'));
  const { port } = server.address() as AddressInfo;
  logger.info({ host: options.host, port }, 'http server listening');

  let closing: Promise<void> | undefined;
  return {
    host: options.host,
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
        for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      })),
  };
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
}
