/**
 * The folder of gatewire's package.json: where the shipped files that are not modules live
 * (prebuilds/, assets/, examples/). Found by walking up from this module, so it is the same from
 * src/ under ts-jest and from dist/src/ when built (dist/ has no package.json of its own).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

let found: string | undefined;

export function packageRoot(): string {
  if (found !== undefined) return found;
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return (found = __dirname);
    dir = up;
  }
  return (found = dir);
}
