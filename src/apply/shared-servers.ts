import type { SourceStore } from '../source/store.js';
import type { Statement } from '../sql/statement.js';
import type { Target } from '../target/target.js';
import type { ManagedRole } from '../plan/role-ownership.js';

/** An environment as the others of its server see it. */
export interface ServerMember {
  readonly name: string;
  readonly target: Target;
  /** Its rules, as text: environments of one server with the same rules apply a role change once for all. */
  readonly rules: string;
}

/**
 * Environments that are databases of one server share its roles. A role permsync created
 * for one of them is permsync's for each (the source records it once, for the server); a role
 * watcher's change is applied to the server once, by whichever of them comes to it first;
 * and a DROP ROLE first releases what the role holds in each of their databases, since
 * the server refuses to drop a role any of them still depends on.
 */
export class SharedServer {
  readonly members: ServerMember[] = [];
  /** The roles permsync manages on the server, by their oid there. */
  managed = new Map<number, ManagedRole>();
  /** Per rules: the role watcher's batches through this commit_seq had their role changes applied to the server, by `by`. */
  private readonly applied = new Map<string, { through: bigint; by: string }>();
  private queue: Promise<unknown> = Promise.resolve();

  /** Whether other environments share the server. */
  get shared(): boolean {
    return this.members.length > 1;
  }

  /** The server's other environments. */
  others(name: string): ServerMember[] {
    return this.members.filter((m) => m.name !== name);
  }

  /** The environment that applied the role changes of the role watcher's batch `seq` to the server, if one did. */
  appliedBy(rules: string, seq: bigint): string | undefined {
    const applied = this.applied.get(rules);
    return applied !== undefined && seq <= applied.through ? applied.by : undefined;
  }

  /** Says that environment `by` is done with the role watcher's batches through `seq`. */
  markApplied(rules: string, seq: bigint, by: string): void {
    const applied = this.applied.get(rules);
    if (applied === undefined || seq > applied.through) this.applied.set(rules, { through: seq, by });
  }

  /** Runs `work` alone among the server's environments: one of them at a time judges and applies a role change. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** A statement of a role watcher's batch that is about the environment's own database (or a database it maps), not the server. */
export function aboutDatabase(statement: Statement): boolean {
  return statement.onTargetDatabase === true || statement.database !== undefined;
}

/**
 * The servers this daemon's environments are on, by identity (Target.serverIdentity): a
 * server's environments share one SharedServer.
 */
export class SharedServers {
  private readonly servers = new Map<string, SharedServer>();
  private joining: Promise<unknown> = Promise.resolve();

  constructor(private readonly store: Pick<SourceStore, 'recordServer' | 'managedRoles'>) {}

  /**
   * Joins environment `member`, carried through commit_seq `cursor`, to the server
   * `identity` names: the source records which server it is on, and from then on the
   * roles permsync manages there are one set for the server's environments. Joins go one
   * at a time.
   */
  join(identity: string, member: ServerMember, cursor: bigint): Promise<SharedServer> {
    const joined = this.joining.then(async () => {
      await this.store.recordServer(member.name, identity);
      const managed = await this.store.managedRoles(member.name);
      let server = this.servers.get(identity);
      if (server === undefined) {
        server = new SharedServer();
        server.managed = managed;
        this.servers.set(identity, server);
      } else {
        // The others keep the set up to date as they change it: a set read while one of
        // them recorded a role can be older than theirs, so it only adds.
        for (const [oid, role] of managed) if (!server.managed.has(oid)) server.managed.set(oid, role);
      }
      // A member only once what it shares has been read: a join that fails is tried again whole.
      server.members.push(member);
      // What it carried before, it carried with the server's roles as they were then.
      server.markApplied(member.rules, cursor, member.name);
      return server;
    });
    this.joining = joined.catch(() => undefined);
    return joined;
  }
}
