import { describe, expect, it } from 'vitest';
import {
  classifyError,
  describeError,
  isSqlstate,
  NOT_INSTALLED,
  OBJECT_GONE,
  RACED_CREATE,
  refusedByServer,
  serverDown,
  SQLSTATE,
} from '../src/errors.js';

const failure = (code: string | undefined, message = 'x') => classifyError(Object.assign(new Error(message), code === undefined ? {} : { code }));

describe('SQLSTATEs by what they mean to permsync', () => {
  it('tells a SQLSTATE from a Node error code', () => {
    for (const code of ['42501', '2BP01', '57P01', 'XX000']) expect(isSqlstate(code)).toBe(true);
    for (const code of [undefined, '', 'ECONNREFUSED', '4250', '42p01']) expect(isSqlstate(code)).toBe(false);
  });

  it('names an object that is not there: undefined object, table, function or schema', () => {
    expect([...OBJECT_GONE].sort()).toEqual(['3F000', '42704', '42883', '42P01']);
    expect(OBJECT_GONE.has(SQLSTATE.insufficientPrivilege)).toBe(false);
  });

  it('says permsync is not installed, or is older, where its schema, a table or a function is missing', () => {
    expect([...NOT_INSTALLED].sort()).toEqual(['3F000', '42883', '42P01']);
    expect(NOT_INSTALLED.has(SQLSTATE.undefinedObject)).toBe(false);
  });

  it('says another session created the same thing at once', () => {
    expect([...RACED_CREATE].sort()).toEqual(['23505', '42P06', '42P07']);
  });
});

describe('a failed connection', () => {
  it('says the server is down, starting or out of reach', () => {
    for (const code of ['57P01', '57P02', '57P03', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']) {
      expect(serverDown(failure(code))).toBe(true);
    }
    expect(serverDown(failure(undefined, 'timeout expired'))).toBe(true);
  });

  it('does not when the server refuses us: credentials, a certificate, too many connections', () => {
    for (const code of ['28P01', '28000', '53300', 'SELF_SIGNED_CERT_IN_CHAIN']) expect(serverDown(failure(code))).toBe(false);
    expect(serverDown(failure(undefined, 'self-signed certificate'))).toBe(false);
  });
});

describe('a failed transaction', () => {
  it('was refused by the server, and so did not commit, when a SQLSTATE came and the session stayed', () => {
    for (const code of ['42501', '2BP01', '40001', '57014', '53300']) expect(refusedByServer(failure(code))).toBe(true);
  });

  it('may have committed when the connection went or the server shut down', () => {
    for (const code of ['08006', '08003', '57P01', '57P02', 'ECONNRESET', undefined]) expect(refusedByServer(failure(code))).toBe(false);
  });
});

describe('an error as permsync prints it', () => {
  it('says its SQLSTATE as one, and a Node error code as it is', () => {
    expect(describeError(Object.assign(new Error('permission denied'), { code: '42501' }))).toBe('permission denied (SQLSTATE 42501)');
    expect(describeError(Object.assign(new Error('connect refused'), { code: 'ECONNREFUSED' }))).toBe('connect refused (ECONNREFUSED)');
    expect(describeError(new Error('plain'))).toBe('plain');
    expect(describeError('odd')).toBe('odd');
  });
});
