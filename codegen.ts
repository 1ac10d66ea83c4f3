/**
 * GraphQL Code Generator: the single source of generated admin-plane code.
 *   npm run codegen              regenerate
 *   npm run codegen -- --check   fail when generated files are stale (CI)
 * Server: the resolver-files preset in merged mode, which also generates a resolver for every
 * schema field that a mapper (src/admin/mappers/admin.mappers.ts) lacks. Client: typed
 * documents for clients/admin from its .graphql operations.
 */
import type { CodegenConfig } from '@graphql-codegen/cli';
import { defineConfig } from '@eddeee888/gcg-typescript-resolver-files';

const config: CodegenConfig = {
  schema: 'schema/**/*.graphql',
  generates: {
    'src/admin/graphql': defineConfig({
      mode: 'merged',
      resolverGeneration: 'minimal',
      importExtension: '.ts',
      mappersRelativeTargetDir: '../src/admin/mappers',
      scalarsModule: false,
      scalarsOverrides: {
        DateTime: { type: { input: 'Date', output: 'Date | string' } },
        JSON: { type: 'unknown' },
      },
      typesPluginsConfig: {
        contextType: '../context.ts#AdminContext',
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
      },
    }),
    'clients/admin/__generated__/': {
      documents: ['clients/admin/**/*.graphql'],
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: { DateTime: 'string', JSON: 'unknown' },
        documentMode: 'string',
        // NodeNext ESM needs explicit extensions in the generated imports.
        importExtension: '.ts',
      },
    },
  },
};

export default config;
