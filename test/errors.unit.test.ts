import { describe, expect, it } from 'vitest';
import { classifyError } from '../src/errors.js';

const pgError = (code: string, message = 'x', extra: Record<string, string> = {}) => Object.assign(new Error(message), { code, ...extra });

describe('classifyError: the one place that decides whether a failure is worth retrying', () => {
  it.each([
    ['08006', 'connection_failure'],
    ['08001', 'sqlclient_unable_to_establish_sqlconnection'],
    ['57P01', 'admin_shutdown'],
    ['57P03', 'cannot_connect_now (starting up)'],
    ['57014', 'query_canceled (statement_timeout)'],
    ['53300', 'too_many_connections'],
    ['40001', 'serialization_failure'],
    ['40P01', 'deadlock_detected'],
    ['55P03', 'lock_not_available (lock_timeout)'],
  ])('%s (%s) is transient', (code) => {
    expect(classifyError(pgError(code)).kind).toBe('transient');
  });

  it.each([
    ['42601', 'syntax_error'],
    ['42P01', 'undefined_table'],
    ['42704', 'undefined_object'],
    ['42501', 'insufficient_privilege'],
    ['2BP01', 'dependent_objects_still_exist'],
    ['22023', 'invalid_parameter_value'],
  ])('%s (%s) is permanent', (code) => {
    expect(classifyError(pgError(code)).kind).toBe('permanent');
  });

  it('"tuple concurrently updated" (XX000) is transient; other internal errors are not', () => {
    expect(classifyError(pgError('XX000', 'tuple concurrently updated')).kind).toBe('transient');
    expect(classifyError(pgError('XX000', 'could not open file')).kind).toBe('permanent');
  });

  it('network errors without a SQLSTATE are transient, and keep their code', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH']) {
      expect(classifyError(pgError(code, `connect ${code}`))).toMatchObject({ kind: 'transient', code });
    }
    expect(classifyError(new Error('Connection terminated unexpectedly')).kind).toBe('transient');
    expect(classifyError(new Error('Client has encountered a connection error and is not queryable')).kind).toBe('transient');
    expect(classifyError(new Error('Query read timeout')).kind).toBe('transient');
  });

  it('keeps the detail and the hint PostgreSQL sent', () => {
    const classified = classifyError(pgError('2BP01', 'role "x" cannot be dropped', { detail: 'owner of table t', hint: 'reassign' }));
    expect(classified).toEqual({
      kind: 'permanent',
      code: '2BP01',
      message: 'role "x" cannot be dropped',
      detail: 'owner of table t',
      hint: 'reassign',
    });
  });

  it('an unknown failure is permanent: a person looks at it', () => {
    expect(classifyError('something odd').kind).toBe('permanent');
  });
});
