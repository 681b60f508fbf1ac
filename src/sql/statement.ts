import type { CommandTag } from '../config/schema.js';

/** What a statement does, as rules name it (config's command_tag). */
export type StatementKind = CommandTag;

/**
 * A permission statement on its way to a target: cut out of what a DBA ran (capture),
 * written by the role watcher, planned by drift or converge, or releasing a dropped role.
 * Each stage fills in what it knows; the rules, the role checks and the target read the
 * same fields whoever wrote it.
 */
export interface Statement {
  kind: StatementKind;
  /** The statement to run on a target: session-dependent parts made explicit. */
  sql: string;
  /** The statement as logs and the execution log show it (a password verifier masked); else `sql`. */
  display?: string;
  /** Roles the statement names (grantees, new owners, FOR ROLE, grantors), resolved to names: role_pattern rules. */
  roles: string[];
  /** The roles privileges are granted to or revoked from (not PUBLIC), or the role a role statement changes. */
  grantees: string[];
  /** Schemas of the objects it touches; unqualified names give the search_path's schemas. */
  schemas: string[];
  /** For GRANT/REVOKE of a role: the role granted or revoked. */
  granted?: string;
  /**
   * GRANT, REVOKE and ALTER DEFAULT PRIVILEGES as a DBA typed them: the roles named beside
   * the grantee list, and whether that list names PUBLIC. Each grantee is judged on its own
   * (plan/admit.ts).
   */
  grantList?: { otherRoles: string[]; public: boolean };
  /** SQLSTATEs that mean "already so" (CREATE ROLE of an existing role): tolerated. */
  ignoreCodes?: string[];
  /** Only a superuser may run it (SUPERUSER, REPLICATION, BYPASSRLS). */
  privileged?: boolean;
  /** The attribute clause a privileged statement sets: SUPERUSER, NOSUPERUSER, REPLICATION, ... */
  attribute?: string;
  /**
   * The role watcher's (and reconcile's CREATE ROLE): which source role, by its oid there,
   * each role name it holds was when it was written. A target's managed role stands for
   * one source role (managed_roles.source_oid); a name given to another since is not it.
   */
  sourceOids?: Readonly<Record<string, number>>;
  /** For ALTER ROLE ... RENAME: the name the role had (grantees hold the new one). */
  renamedFrom?: string;
  /** Holds TARGET_DATABASE (plan/target-statements.ts), to be replaced by the target's database name. */
  onTargetDatabase?: boolean;
  /**
   * Holds TARGET_DATABASE for this database of the source other than its own: replaced by
   * the name the environment's `databases` maps it to (else the same name).
   */
  database?: string;
  /**
   * The role it runs as on the target (SET LOCAL ROLE), where that is not the sync user:
   * the grantor of a privilege granted through a grant option. Judged as a grantee is.
   */
  runAs?: string;
  /**
   * With runAs: the schemas the statement looks names up in (its object's, a routine's
   * argument types'), which takes USAGE on them. Where that role lacks it there, the
   * target lends it for the statement alone (Target.execute).
   */
  lookups?: string[];
  /** The role a membership statement names in GRANTED BY (the statement ends with that clause). */
  grantor?: string;
  /** A revoke of one grantor's membership that other grantors still grant on the source. */
  otherGrantors?: boolean;
  /** The role watcher's statement on a privilege of a database, a tablespace or a parameter: the ACL entry it changes. */
  acl?: AclChange;
  /**
   * An owner change that gives a dropped role's object to a role its batch creates after
   * the DROP ROLE: that DROP ROLE's position in the batch (its ordinal). The applier then
   * runs the drop after it (Applier.handingOver).
   */
  handsOverFor?: number;
  /** A DROP ROLE whose role's objects go to roles the batch creates after it: how many owner changes do (handsOverFor). */
  handovers?: number;
  /**
   * A role watcher's DROP ROLE that a role without SUPERUSER could have run on the source
   * (CREATEROLE, and from 16 ADMIN OPTION on the role): an environment does not hold on it.
   */
  byLogin?: true;
  /** 1-based position in its batch (the client string, or the generated batch): notes name it so. */
  ordinal?: number;
  /** The statement as the DBA typed it, or as the role watcher shows it. */
  sourceText?: string;
}

/**
 * A privilege a statement grants or revokes on a database (the target's own, or the one its
 * `database` maps to), a tablespace or a parameter. Its grantee is the statement's (PUBLIC
 * where it names none), its grantor the role it runs as (the object's owner where it runs
 * as the sync user), as plan/cycles.ts follows it on the target's ACL.
 */
export interface AclChange {
  on: 'database' | 'tablespace' | 'parameter';
  /** A tablespace's or parameter's name. */
  name?: string;
  privilege: string;
  /** WITH GRANT OPTION, or GRANT OPTION FOR. */
  option: boolean;
  /** A revoke grant-order.ts cut a circle of grant options at: its object is settled on the target. */
  cycle?: true;
}

/** A statement of a batch read from the source: numbered, with its text. */
export type BatchStatement = Statement & Required<Pick<Statement, 'ordinal' | 'sourceText'>>;

/** The statement as logs and the execution log show it. */
export function shown(statement: Statement): string {
  return statement.display ?? statement.sql;
}
