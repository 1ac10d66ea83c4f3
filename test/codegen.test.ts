import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * `npm run codegen -- --check` is what CI runs: the committed generated files (server types,
 * resolver map, typeDefs, client documents) must match the schema and the operations, and a
 * schema change that is not regenerated must fail the check.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CODEGEN = join(ROOT, 'node_modules', '.bin', 'graphql-codegen');

function codegenCheck(cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(CODEGEN, ['--config', 'codegen.ts', '--check'], { cwd, timeout: 50_000, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}\n${stderr}` });
    });
  });
}

/**
 * A temporary copy of what codegen reads and writes: schema/, codegen.ts, src/admin/ and
 * clients/admin/ are copied (they may be edited); the rest of src/ (the mappers' imports),
 * node_modules and tsconfig.json are symlinked.
 */
async function codegenCopy(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await mkdtemp(join(tmpdir(), 'codegen-check-'));
  await cp(join(ROOT, 'schema'), join(dir, 'schema'), { recursive: true });
  await cp(join(ROOT, 'codegen.ts'), join(dir, 'codegen.ts'));
  await cp(join(ROOT, 'src', 'admin'), join(dir, 'src', 'admin'), { recursive: true });
  await cp(join(ROOT, 'clients', 'admin'), join(dir, 'clients', 'admin'), { recursive: true });
  for (const entry of await readdir(join(ROOT, 'src'))) {
    if (entry !== 'admin') await symlink(join(ROOT, 'src', entry), join(dir, 'src', entry));
  }
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  await symlink(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

async function edit(path: string, change: (text: string) => string): Promise<void> {
  const before = await readFile(path, 'utf8');
  const after = change(before);
  expect(after, `edit of ${path}`).not.toBe(before);
  await writeFile(path, after);
}

describe('codegen --check', () => {
  it('passes on the committed tree, and fails naming exactly the stale files once the schema and operations change', { timeout: 60_000 }, async () => {
    await using copy = await codegenCopy();
    await edit(join(copy.dir, 'schema', 'admin.graphql'), (sdl) => sdl.replace(/^type Query \{$/m, 'type Query {\n  "Added by the codegen test."\n  extraField: Int'));
    await edit(join(copy.dir, 'clients', 'admin', 'operations.graphql'), (ops) => `${ops}\nquery Extra {\n  extraField\n}\n`);
    const [tree, stale] = await Promise.all([codegenCheck(ROOT), codegenCheck(copy.dir)]);
    expect(tree.code, tree.output).toBe(0);

    expect(stale.code).not.toBe(0);
    const listed = stale.output.slice(stale.output.indexOf('stale files')).match(/- \S+/g)?.map((m) => m.slice(2)) ?? [];
    // Exactly what the edit affects: the copy is otherwise as fresh as the tree.
    expect([...listed].sort()).toEqual(
      [
        'clients/admin/__generated__/gql.ts',
        'clients/admin/__generated__/graphql.ts',
        'src/admin/graphql/Query/extraField.ts',
        'src/admin/graphql/resolvers.generated.ts',
        'src/admin/graphql/schema.generated.graphqls',
        'src/admin/graphql/typeDefs.generated.ts',
        'src/admin/graphql/types.generated.ts',
      ].sort(),
    );
  });
});
