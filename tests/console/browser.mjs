// Debian's chromium, headless, driven by playwright-core (no browser download).
// As root in a container Chromium needs --no-sandbox; /dev/shm is often tiny.
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from './node.mjs';

export function chromiumPath() {
  const p = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(p)) throw new Error(`no Chromium at ${p}: install Debian's chromium (scripts/setup.sh) or set $CHROMIUM`);
  return p;
}

export const launch = () => chromium.launch({
  executablePath: chromiumPath(),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});

// Where screenshots go: $ANNAL_CONSOLE_SCREENSHOTS, else build/console-screenshots
// in the checkout when it has a build directory, else a temporary directory.
export function screenshotDir() {
  const dir = process.env.ANNAL_CONSOLE_SCREENSHOTS
    ?? (existsSync(join(ROOT, 'build')) ? join(ROOT, 'build', 'console-screenshots') : join(tmpdir(), 'annal-console-screenshots'));
  mkdirSync(dir, { recursive: true });
  return dir;
}
