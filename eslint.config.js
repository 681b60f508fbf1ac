import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/**
 * src/'s layers, lowest first. A module imports from its own layer and those below it,
 * never from one above: what acts on servers is built from plans, plans from the catalog
 * and captured statements, and those from the core.
 */
const layers = [
  {
    name: 'core',
    paths: [
      'src/sql',
      'src/config',
      'src/errors.ts',
      'src/pg-versions.ts',
      'src/pg-close.ts',
      'src/pg-sessions.ts',
      'src/deadline.ts',
      'src/log.ts',
      'src/paths.ts',
      'src/redact.ts',
    ],
  },
  // Reading a server's roles and privileges, and diffing two of them.
  { name: 'catalog', paths: ['src/catalog'] },
  // Cutting permission statements out of what the source ran.
  { name: 'capture', paths: ['src/capture'] },
  // The statements that carry a change to a target, or converge it.
  { name: 'plan', paths: ['src/plan'] },
  { name: 'source and target sessions', paths: ['src/source', 'src/target'] },
  // What acts on the servers.
  { name: 'apply, drift, watch', paths: ['src/apply', 'src/drift', 'src/watch', 'src/install', 'src/metrics.ts'] },
  { name: 'entry points', paths: ['src/daemon.ts', 'src/daemon', 'src/cli', 'src/http'] },
];

/** Folders of one layer that stay apart: each stands on the layers below, not on its neighbour. */
const apart = [
  ['src/source', 'src/target'],
  ['src/apply', 'src/drift', 'src/watch'],
];

// A file of src/ outside every layer would escape the check.
const unplaced = readdirSync(join(import.meta.dirname, 'src')).filter((entry) => !layers.some((l) => l.paths.includes(`src/${entry}`)));
if (unplaced.length > 0) throw new Error(`eslint.config.js: put src/${unplaced.join(', src/')} in one of the layers`);

const order = layers.map((l) => l.name).join(' < ');
const zones = [
  ...layers.slice(0, -1).map((layer, i) => ({
    target: layer.paths,
    from: layers.slice(i + 1).flatMap((l) => l.paths),
    message: `${layer.name} imports nothing from a layer above it (${order}; see eslint.config.js).`,
  })),
  ...apart.flatMap((group) =>
    group.map((folder) => ({
      target: folder,
      from: group.filter((other) => other !== folder),
      message: `${group.join(', ')} stand side by side: none imports another.`,
    })),
  ),
  { target: 'src', from: 'dev', message: 'what ships (src/) does not import development-only code (dev/).' },
];

export default defineConfig(
  { ignores: ['dist/', 'node_modules/'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['vitest.config.ts'] } } },
    rules: {
      // `const { omitted: _, ...rest } = object` leaves a key out on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    files: ['test/**/*.ts'],
    // vitest types its asymmetric matchers (expect.any, expect.stringContaining) as any.
    rules: { '@typescript-eslint/no-unsafe-assignment': 'off' },
  },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver()],
    },
    rules: {
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': ['error', { zones }],
    },
  },
);
