import type { Batch } from '../../src/capture/batch.js';

/** A batch as the daemon reads it from the source, for tests that need no server: a superuser's, committed, with `fields` over these. */
export function testBatch(fields: Partial<Batch> = {}): Batch {
  return {
    id: '1',
    commitSeq: '1',
    origin: 'event_trigger',
    sessionUser: 'dba',
    currentUser: 'dba',
    sessionUserIsSuperuser: true,
    currentUserIsSuperuser: true,
    searchPath: 'public',
    backendPid: 1,
    statementStartedAt: new Date(0),
    committedAt: new Date(0),
    queryText: '',
    queryMasked: false,
    targetEnvironment: null,
    commandTags: [],
    commandObjects: [],
    identities: 1,
    statements: null,
    ...fields,
  };
}
