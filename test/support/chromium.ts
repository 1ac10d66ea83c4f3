import { accessSync, constants } from 'node:fs';

/** Debian's Chromium, which `.ci/run` installs and the browser tests drive through playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

/** Whether it is installed here (tests that need it skip themselves otherwise). */
export const haveChromium = (() => {
  try {
    accessSync(CHROMIUM, constants.X_OK);
    return true;
  } catch {
    return false;
  }
})();
