#!/usr/bin/env node
// TEST HARNESS FOR THE MACHINES THIS PROJECT IS BUILT ON, NOT FOR USE: it stands in for Prisma's
// native schema-engine binary (which the CLI downloads from outside the package registries these
// machines can reach) by running Prisma's schema engine compiled to wasm (npm
// @prisma/schema-engine-wasm) with the pg driver adapter, speaking the binary's JSON-RPC over
// stdin/stdout. The CLI runs it when PRISMA_SCHEMA_ENGINE_BINARY names it. SCHEMA_ENGINE_DEBUG=1
// logs the calls to stderr.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import readline from 'node:readline';
import pg from 'pg';

const require = createRequire(import.meta.url);
const { PrismaPg } = require('@prisma/adapter-pg');
const { bindMigrationAwareSqlAdapterFactory, ColumnTypeEnum, DriverAdapterError } = require('@prisma/driver-adapter-utils');

const args = process.argv.slice(2);
const datamodels = [];
let datasource = null;
let command = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--datamodels') datamodels.push(args[++i]);
  else if (args[i] === '--datasource') datasource = JSON.parse(args[++i]);
  else if (args[i].startsWith('--')) i++;
  else if (args[i] !== 'cli') command = args[i];
}
const log = (...a) => process.env.SCHEMA_ENGINE_DEBUG && process.stderr.write(a.join(' ') + '\n');
log('args', JSON.stringify(args));

const url = datasource?.url ?? process.env.DATABASE_URL;
const shadowUrl = datasource?.shadowDatabaseUrl ?? process.env.SHADOW_DATABASE_URL;

// The adapter cannot read PostgreSQL's internal "char" type (the catalogs' one-byte kinds, such
// as pg_constraint.contype), which the engine's schema description reads ("Column type 'char'
// could not be deserialized"), and it never reports the Character column type the engine then
// expects. Such columns are read as text and reported as Character.
let charColumns = null;
const addFields = pg.Result.prototype.addFields;
pg.Result.prototype.addFields = function (fields) {
  for (const f of fields) {
    if (f.dataTypeID === 18) { f.dataTypeID = 25; charColumns?.add(f.name); }
  }
  return addFields.call(this, fields);
};
function readChars(adapter) {
  const queryRaw = adapter.queryRaw.bind(adapter);
  adapter.queryRaw = async (query) => {
    charColumns = new Set();
    try {
      const result = await queryRaw(query);
      result.columnNames.forEach((name, i) => { if (charColumns.has(name)) result.columnTypes[i] = ColumnTypeEnum.Character; });
      return result;
    } finally { charColumns = null; }
  };
  return adapter;
}

// Work that must end before the process does (the CLI closes stdin when it is done).
const pending = new Set();
function track(promise) { pending.add(promise); promise.finally(() => pending.delete(promise)).catch(() => {}); return promise; }

function withDatabase(u, db) { const x = new URL(u); x.pathname = '/' + db; return x.toString(); }

// @prisma/adapter-pg's executeScript() splits a migration at every ";" (dollar quotes included) and sends
// the pieces one by one; the native engine sends the script whole, as one simple query.
// Errors are passed on as plain PostgreSQL errors (message, DETAIL, HINT); the engine still
// reports some SQLSTATEs as its own kinds (23505: "Unique constraint failed", no message).
function wholeScripts(adapter) {
  adapter.executeScript = async (script) => {
    try {
      await adapter.client.query(script);
    } catch (e) {
      if (!e || typeof e.code !== 'string') throw e;
      throw new DriverAdapterError({ kind: 'postgres', code: e.code, severity: e.severity ?? 'ERROR',
        message: e.message, detail: e.detail, column: e.column, hint: e.hint });
    }
  };
  return readChars(adapter);
}

// The adapter's shadow database handling, fixed for a connection string: its own factory puts
// `database` beside `connectionString` (the string wins: the "shadow" is the main database) and
// drops the database while its pool is still connected.
class Factory extends PrismaPg {
  constructor(u) { super({ connectionString: u }); this.u = u; }
  async connect() { return wholeScripts(await super.connect()); }
  async connectToShadowDb() {
    if (shadowUrl) return wholeScripts(await new PrismaPg({ connectionString: shadowUrl }).connect());
    const admin = new pg.Client({ connectionString: this.u });
    await admin.connect();
    const database = `prisma_migrate_shadow_db_${globalThis.crypto.randomUUID()}`;
    await admin.query(`CREATE DATABASE "${database}"`);
    await admin.end();
    const inner = wholeScripts(await new PrismaPg({ connectionString: withDatabase(this.u, database) }).connect());
    const dispose = inner.dispose.bind(inner);
    inner.dispose = () => track((async () => {
      log('drop shadow database', database);
      await dispose();
      const a = new pg.Client({ connectionString: this.u });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await a.end();
    })());
    return inner;
  }
}

async function cli() {
  const db = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  try {
    await admin.connect();
    if (command === 'can-connect-to-database') {
      const c = new pg.Client({ connectionString: url }); await c.connect(); await c.end();
    } else if (command === 'create-database') {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (!rowCount) await admin.query(`CREATE DATABASE "${db.replace(/"/g, '""')}"`);
      process.stdout.write(JSON.stringify({ result: db }) + '\n');
    } else if (command === 'drop-database') {
      await admin.query(`DROP DATABASE IF EXISTS "${db.replace(/"/g, '""')}" WITH (FORCE)`);
    } else throw new Error(`unknown command ${command}`);
    await admin.end();
    process.exit(0);
  } catch (e) {
    process.stderr.write(JSON.stringify({ level: 'ERROR', target: 'schema_engine::logger', fields: { message: e.message, error_code: e.code === '3D000' ? 'P1003' : 'P1001' } }) + '\n');
    process.exit(1);
  }
}

// The wasm engine reports a panic's message here before it throws (the CLI keeps one the same way).
globalThis.PRISMA_WASM_PANIC_REGISTRY = { message: '', set_message(m) { this.message = `RuntimeError: ${m}`; } };

// A panic inside an engine callback escapes every await: report it, like the native engine does
// when it panics, on stderr, and exit non-zero.
process.on('uncaughtException', (err) => {
  process.stderr.write(`schema engine panicked: ${globalThis.PRISMA_WASM_PANIC_REGISTRY.message || err.message}\n${err.stack}\n`);
  process.exit(101);
});

async function loadEngine() {
  const dir = require.resolve('@prisma/schema-engine-wasm').replace(/schema_engine\.js$/, '');
  const bg = await import(dir + 'schema_engine_bg.js');
  const { instance } = await WebAssembly.instantiate(readFileSync(dir + 'schema_engine_bg.wasm'), { './schema_engine_bg.js': bg });
  bg.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start?.();
  return bg;
}

async function rpc() {
  const bg = await loadEngine();
  const models = datamodels.map((p) => [p, readFileSync(p, 'utf8')]);
  let engine = null;
  const getEngine = async () => {
    if (!engine) {
      const factory = bindMigrationAwareSqlAdapterFactory(new Factory(url));
      engine = await bg.SchemaEngine.new({ datamodels: models.length ? models : undefined }, (msg) => log('engine:', msg), factory);
    }
    return engine;
  };
  const methods = { getDatabaseVersion: 'version' };
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    if (!line.trim()) return;
    const req = JSON.parse(line);
    log('<-', line.slice(0, 500));
    let res;
    try {
      const e = await getEngine();
      const name = methods[req.method] ?? req.method;
      if (typeof e[name] !== 'function') throw Object.assign(new Error(`method ${req.method} not supported by the wasm engine`), { rpcCode: -32601 });
      const result = await e[name](req.params ?? {});
      res = { jsonrpc: '2.0', id: req.id, result: result ?? null };
    } catch (err) {
      log('error', err?.stack ?? String(err), JSON.stringify(err));
      const panic = globalThis.PRISMA_WASM_PANIC_REGISTRY.message;
      let data = { is_panic: Boolean(panic), message: panic || (err?.message ?? String(err)), backtrace: null };
      if (err && typeof err === 'object' && 'error_code' in err) data = { is_panic: false, ...err };
      else { try { const j = JSON.parse(err.message); if (j && j.message) data = { is_panic: false, ...j }; } catch {} }
      res = { jsonrpc: '2.0', id: req.id, error: { code: err?.rpcCode ?? 4466, message: 'An error happened. Check the data field for details.', data } };
    }
    log('->', JSON.stringify(res).slice(0, 500));
    process.stdout.write(JSON.stringify(res) + '\n');
  });
  rl.on('close', async () => { await Promise.allSettled([...pending]); process.exit(0); });
}

if (command) await cli(); else await rpc();
