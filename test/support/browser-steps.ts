import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';

/**
 * Named steps for browser tests: when a step fails, every page given is photographed to
 * `test-results/<prefix>-<step>-<page>.png` (the step's name made file-safe) before the error
 * goes on, so a failure in CI shows what each user saw at that moment.
 */
export function steps(prefix: string, pages: () => Record<string, Page>, dir = 'test-results') {
  return async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      mkdirSync(dir, { recursive: true });
      const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
      const shots: string[] = [];
      for (const [label, page] of Object.entries(pages())) {
        const path = `${dir}/${slug(prefix)}-${slug(name)}-${slug(label)}.png`;
        try {
          await page.screenshot({ path, fullPage: true, timeout: 5000 });
          shots.push(path);
        } catch {
          // A closed or crashed page has nothing to show; the error below is what matters.
        }
      }
      if (error instanceof Error) error.message = `step "${name}" failed${shots.length ? ` (screenshots: ${shots.join(', ')})` : ''}: ${error.message}`;
      throw error;
    }
  };
}
