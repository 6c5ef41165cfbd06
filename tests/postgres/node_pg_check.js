// Drives CohortDB's PostgreSQL wire protocol with node-postgres (`pg`, run by
// tests/postgres.rs): untyped parameters over the extended protocol (the
// driver sends every value as text with no type), a named prepared statement
// run twice, text[] and int8 results, an error with its SQLSTATE and
// position, and the connection usable after it.
//
// Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD; the `pg`
// package from NODE_PATH. Prints one line per check; exits non-zero on the
// first failure.
const { Client } = require('pg');
const assert = require('assert');

function check(name, got, expected) {
  assert.deepStrictEqual(got, expected, `${name}: got ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
  console.log(`ok ${name}`);
}

(async () => {
  const c = new Client({ database: 'cohort' });
  await c.connect();
  await c.query('DROP TABLE IF EXISTS node_people');
  await c.query('CREATE TABLE node_people (id TEXT PRIMARY KEY, country TEXT, age INT, tags SET<TEXT>)');
  await c.query("INSERT INTO node_people (id, country, age, tags) VALUES ('u1', 'NL', 34, ['tea']), ('u2', 'FR', 41, ['baking', 'tea']), ('u3', 'NL', 29, [])");
  let r = await c.query('SELECT COUNT(*) FROM node_people WHERE country = $1', ['NL']);
  check('count NL (text parameter)', r.rows[0].count, '2');
  r = await c.query('SELECT COUNT(*) FROM node_people WHERE country = $1 AND age >= $2', ['NL', 30]);
  check('count NL age>=30 (number sent untyped)', r.rows[0].count, '1');
  r = await c.query('SELECT id, age, tags FROM node_people WHERE age >= $1', [40]);
  check('row query', r.rows, [{ id: 'u2', age: '41', tags: ['baking', 'tea'] }]);
  check('result types (text, int8, text[])', r.fields.map((f) => f.dataTypeID), [25, 20, 1009]);
  const named = { name: 'by_country', text: 'SELECT COUNT(*) FROM node_people WHERE country = $1' };
  r = await c.query({ ...named, values: ['FR'] });
  check('prepared, first run', r.rows[0].count, '1');
  r = await c.query({ ...named, values: ['NL'] });
  check('prepared, second run', r.rows[0].count, '2');
  try {
    await c.query('SELECT COUNT(*) FROM node_people WHER age > 1');
    throw new Error('the bad statement succeeded');
  } catch (e) {
    check('syntax error SQLSTATE', e.code, '42601');
    check('syntax error position (WHER, 1-based)', e.position, '34');
  }
  r = await c.query('SELECT COUNT(*) FROM node_people');
  check('usable after the error', r.rows[0].count, '3');
  await c.end();
  console.log('all node-postgres checks passed');
})().catch((e) => {
  console.error(`FAIL ${e.message}`);
  process.exit(1);
});
