// web/wsbridge.js is an ES module that imports its siblings (wsbridge-socket.js, ...): a test that
// serves the library from a static dir of its own copies the entry and every module it imports.
import { copyFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');

/** The library's files (names relative to web/): web/wsbridge.js and what it imports, transitively. */
export function wsbridgeLibraryFiles() {
  const files = [];
  const visit = (name) => {
    if (files.includes(name)) return;
    files.push(name);
    const source = readFileSync(path.join(webDir, name), 'utf8');
    for (const m of source.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.\/[^']+)'/gms)) {
      visit(path.posix.normalize(path.posix.join(path.posix.dirname(name), m[1])));
    }
  };
  visit('wsbridge.js');
  return files;
}

/** Copies the library into `staticDir`, as web/ has it (so the page imports '/wsbridge.js'). */
export function copyWsbridgeLibrary(staticDir) {
  for (const name of wsbridgeLibraryFiles()) copyFileSync(path.join(webDir, name), path.join(staticDir, name));
}
