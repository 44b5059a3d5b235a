/**
 * Child process of pglite-template.ts: creates a PGlite cluster in the directory given (argv[2]),
 * runs the migrations of argv[3] on it, closes it and exits 0. initdb inside WebAssembly grows the
 * memory of the process it runs in to 700-830 MB, which a process does not give back; run here, it
 * is gone with this process and the gateway stays at its usual size.
 */
import { runMigrations } from './migrate.js';
import { createPgliteDb } from './pglite.js';

const [dataDir, migrations] = process.argv.slice(2);
if (dataDir === undefined || migrations === undefined) {
  process.stderr.write('usage: pglite-template-build <dataDir> <migrationsDir>\n');
  process.exit(2);
}
const db = await createPgliteDb({ dataDir });
try {
  await runMigrations(db, migrations);
} finally {
  await db.close();
}
