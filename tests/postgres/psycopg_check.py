"""Drives CohortDB's PostgreSQL wire protocol with psycopg 3 (run by
tests/postgres.rs): parameterised queries over the extended protocol,
prepared statements (psycopg prepares after 5 executions), a server-side
error with its SQLSTATE, COPY FROM STDIN and COPY TO STDOUT.

Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD.
Prints one line per check; exits non-zero on the first failure.
"""
import sys

import psycopg


def check(name, got, expected):
    if got != expected:
        print(f"FAIL {name}: got {got!r}, expected {expected!r}")
        sys.exit(1)
    print(f"ok {name}")


with psycopg.connect(dbname="cohort", autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS people")
    cur.execute(
        "CREATE TABLE people (id TEXT PRIMARY KEY, country TEXT, age INT, tags SET<TEXT>, ltv FLOAT, vip BOOL)"
    )
    # COPY FROM STDIN (csv with header) through psycopg's copy API.
    with cur.copy("COPY people (id, country, age, tags) FROM STDIN (FORMAT csv, HEADER)") as copy:
        copy.write("id,country,age,tags\n")
        for i in range(1000):
            country = ["FR", "NL", "DE"][i % 3]
            copy.write(f"p{i},{country},{20 + i % 50},\"{{t{i % 4},all}}\"\n")
    check("copy in rowcount", cur.rowcount, 1000)

    # Parameterised queries: str, int, bool and NULL parameters.
    cur.execute("SELECT COUNT(*) FROM people WHERE country = %s", ("FR",))
    check("count FR", cur.fetchone()[0], 334)
    cur.execute("SELECT COUNT(*) FROM people WHERE country = %s AND age >= %s", ("NL", 40))
    expected = sum(1 for i in range(1000) if i % 3 == 1 and 20 + i % 50 >= 40)
    check("count NL age>=40", cur.fetchone()[0], expected)
    cur.execute("INSERT INTO people (id, country, age, vip, ltv) VALUES (%s, %s, %s, %s, %s)",
                ("x'1", "it's", 7, True, 2.5))
    cur.execute("SELECT id, country, age, vip, ltv, tags FROM people WHERE id = %s", ("x'1",))
    check("row round trip", cur.fetchone(), ("x'1", "it's", 7, True, 2.5, None))
    cur.execute("SELECT id, tags FROM people WHERE id = %s", ("p5",))
    check("text[] as list", cur.fetchone(), ("p5", ["all", "t1"]))
    check("column types", [d.type_code for d in cur.description], [25, 1009])

    # The same query many times: psycopg switches to a named prepared statement.
    for country, n in [("FR", 334), ("NL", 333), ("DE", 333)] * 3:
        cur.execute("SELECT COUNT(*) FROM people WHERE country = %s", (country,))
        check(f"prepared count {country}", cur.fetchone()[0], n)

    # Groups stream as rows.
    cur.execute("SELECT country, COUNT(*) FROM people WHERE tags HAS %s GROUP BY country ORDER BY 1", ("t0",))
    check("group by", cur.fetchall(), [("DE", 83), ("FR", 84), ("NL", 83)])

    # An error carries its SQLSTATE and leaves the connection usable.
    try:
        cur.execute("SELECT COUNT(*) FROM people WHERE shoe = %s", ("x",))
        print("FAIL unknown column: no error")
        sys.exit(1)
    except psycopg.Error as e:
        check("unknown column sqlstate", e.sqlstate, "42703")
    cur.execute("SELECT COUNT(*) FROM people")
    check("after error", cur.fetchone()[0], 1001)

    # COPY TO STDOUT.
    with cur.copy("COPY (SELECT id FROM people WHERE country = 'DE') TO STDOUT") as copy:
        ids = sorted(bytes(row).decode().strip() for row in copy)
    check("copy out count", len(ids), 333)
    check("copy out first", ids[0], "p101")

# A transaction as psycopg runs it by default (BEGIN ... COMMIT).
with psycopg.connect(dbname="cohort") as conn:
    with conn.cursor() as cur:
        cur.execute("INSERT INTO people (id, country) VALUES (%s, %s)", ("t1", "FR"))
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM people WHERE country = %s", ("FR",))
        check("after commit", cur.fetchone()[0], 335)

print("all psycopg checks passed")
